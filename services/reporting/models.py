"""Reporting's database: the event store and the projections rebuilt from it."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from motcua.db import ServiceBase, reliability_tables
from motcua.revocation import revocation_tables


# DeclarativeBase again: ServiceBase is abstract, so a metadata is only made for a direct subclass.
class Base(ServiceBase, DeclarativeBase):
    pass


reliability_tables(Base.metadata)
revocation_tables(Base.metadata)  # the gateway's revocations, refused on direct RPC (motcua.revocation)


class StoredEvent(Base):
    """Every event reporting heard, append-only, in its wire form minus personal data (`contact`)."""

    __tablename__ = "events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    dossier_code: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[dict]


class DossierFact(Base):
    """One row per dossier (hồ sơ): the facts the report and public tracking need, nothing personal;
    each event is applied to it as it comes (services/reporting/facts.py)."""

    __tablename__ = "dossier_facts"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency_code: Mapped[str | None] = mapped_column(String(32), index=True)  # receiving agency
    procedure_code: Mapped[str | None] = mapped_column(String(32))
    procedure_name: Mapped[str | None] = mapped_column(String(500))
    field_code: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(16))
    submitted_at: Mapped[datetime | None]
    received_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    processing_started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]  # result ready
    returned_at: Mapped[datetime | None]
    refused_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None] = mapped_column(index=True)  # finished_at, else withdrawn_at, else stopped
    paused_at: Mapped[datetime | None]  # when the latest supplement was asked (the clock stopped)
    pause_ended_at: Mapped[datetime | None]  # when that pause ended (supplied, withdrawn); None: still on
    overdue_noticed_at: Mapped[datetime | None]  # workflow's first overdue notice (task or dossier)
    supplements: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # supplement requests so far
    # early / on_time / late: finished date against due date, both local dates (needs the time zone,
    # so it is computed when projecting rather than in the report's SQL).
    timeliness: Mapped[str | None] = mapped_column(String(8))
    # Intake's word, from its newest event (None while only other services' events were heard).
    status: Mapped[str | None] = mapped_column(String(32), index=True)
    status_code: Mapped[int | None] = mapped_column(Integer)
    dossier_version: Mapped[int | None] = mapped_column(Integer)  # that newest intake event's dossier_version
    # What the row reflects (public tracking's answer says it): every intake event up to this
    # dossier_version, every workflow event up to this run_version applied (facts.py); None: none yet
    # (or a row from before these columns, until a replay: it claims nothing, which is safe).
    applied_dossier_version: Mapped[int | None] = mapped_column(Integer)
    applied_run_version: Mapped[int | None] = mapped_column(Integer)
    run_versions_ahead: Mapped[list | None] = mapped_column(JSON)  # applied past a missing one (normally null)
    current_agency_code: Mapped[str | None] = mapped_column(String(32))
    current_step: Mapped[str | None] = mapped_column(String(200))
    applicant_masked: Mapped[str | None] = mapped_column(String(200))
    tracking_key: Mapped[str | None] = mapped_column(String(64))  # keyed hash, never the phone digits
    stored_events: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # its version for DVCQG
    # The dossier's moves, one per intake event and per move of its run, in version order (facts.py).
    marks: Mapped[list | None] = mapped_column(JSON)
    # Ready for public tracking: [{at (local ISO), status, agency_code, step?}] in the order things happened.
    timeline: Mapped[list | None] = mapped_column(JSON)
    supplement_items: Mapped[list | None] = mapped_column(JSON)  # what the latest supplement request lists


class PortalPush(Base):
    """The national portal (DVCQG) re-send queue: one row per dossier, the version to push (its number of
    stored events) and how far the push got. Errors are an HTTP status or an error class, never data."""

    __tablename__ = "dvcqg_pushes"

    dossier_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)  # the dossier's version to push
    pushed_version: Mapped[int | None] = mapped_column(Integer)  # the last version the portal accepted
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending / pushed / rejected
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # failed tries of `version`
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)
    last_error: Mapped[str | None] = mapped_column(String(200))
    pushed_at: Mapped[datetime | None]
    reconciled_at: Mapped[datetime | None] = mapped_column(index=True)


class ReportCount(Base):
    """Pre-aggregated counters of the standard report (services/reporting/aggregates.py)."""

    __tablename__ = "report_counts"

    grain: Mapped[str] = mapped_column(String(5), primary_key=True)  # "day", or "month" (day = the 1st)
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # local date in the province's time zone
    bucket: Mapped[str] = mapped_column(String(32), primary_key=True)
    agency_code: Mapped[str] = mapped_column(String(32), primary_key=True)  # receiving agency
    field_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


# The by-agency counters' buckets, one column each (aggregates.AGENCY_BUCKETS names them in this order):
# what `aggregates.cells` reads, received per channel, and the leaders' summed processing seconds.
AGENCY_COLUMNS = (
    "received_online", "received_counter", "received_postal",
    "resolved_early", "resolved_on_time", "resolved_late", "resolved_seconds", "withdrawn", "stopped",
    "open_in_normal", "open_in_awaiting_payment", "open_out_normal", "open_out_awaiting_payment",
    "supp_in_normal", "supp_in_awaiting_payment", "supp_out_normal", "supp_out_awaiting_payment",
    "open_due_in", "open_due_out", "supp_due_in", "supp_due_out", "now_open_due", "now_supp_due",
)


class ReportAgencyCount(Base):
    """The by-agency report's counters (aggregates.py): `report_counts` summed over fields, one row per
    agency × grain × period with a column per bucket, so a period's report reads a few dozen rows per
    agency whatever the number of dossiers and fields."""

    __tablename__ = "report_agency_counts"

    grain: Mapped[str] = mapped_column(String(5), primary_key=True)  # "day", "month" or "year" (its 1st day)
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # local date in the province's time zone
    agency_code: Mapped[str] = mapped_column(String(32), primary_key=True)  # receiving agency
    locals().update({name: mapped_column(name, BigInteger, nullable=False, default=0, server_default="0")
                     for name in AGENCY_COLUMNS})
