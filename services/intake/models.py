"""Intake's own database: dossiers (hồ sơ), the agencies involved in each, daily code counters.

A dossier is one row: its history, supplement requests, apologies and documents are JSON lists on it, so
one statement reads everything its rules and its view need (`repository.py` maps it to
`domain.Dossier`). `dossier_agencies` is the index staff search is scoped by.
"""
from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase

from motcua.db import ServiceBase, UTCDateTime, reliability_tables
from motcua.decisions import calendar_decisions_table
from motcua.idempotency import command_results_table
from motcua.revocation import revocation_tables
from services.intake.domain import Action, Document, Reschedule, SupplementRequest


class Base(ServiceBase, DeclarativeBase):
    pass


outbox, inbox = reliability_tables(Base.metadata)
command_results = command_results_table(Base.metadata)
revocation_tables(Base.metadata)  # the gateway's revocations, refused on direct RPC (motcua.revocation)


class Records(TypeDecorator):
    """A tuple of the domain's frozen records (history entries, supplement requests…) as a JSON list;
    times as ISO 8601 in UTC, lists back as tuples."""

    impl = JSON
    cache_ok = True

    def __init__(self, record: type):
        super().__init__()
        self.record = record
        self.names = tuple(f.name for f in fields(record))
        self.times = frozenset(f.name for f in fields(record) if "datetime" in str(f.type))

    def process_bind_param(self, value, dialect):
        return [self._entry(record) for record in value]

    def _entry(self, record) -> dict:
        # Field by field rather than dataclasses.asdict, which deep-copies every value on the way.
        entry = {}
        for key in self.names:
            item = getattr(record, key)
            entry[key] = (item.astimezone(timezone.utc).isoformat() if key in self.times and item is not None
                          else list(item) if isinstance(item, tuple) else item)
        return entry

    def process_result_value(self, value, dialect):
        return tuple(self.record(**{key: (datetime.fromisoformat(item) if key in self.times and item is not None
                                          else tuple(item) if isinstance(item, list) else item)
                                    for key, item in entry.items()}) for entry in value or ())


def _when(name: str, **kwargs) -> Column:
    return Column(name, UTCDateTime(), **kwargs)


dossiers = Table(
    "dossiers", Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(40), nullable=False, unique=True),
    Column("version", Integer, nullable=False, server_default="0"),  # one more per event published
    Column("procedure_code", String(20), nullable=False, index=True),
    Column("procedure_version", Integer, nullable=False),
    Column("procedure_name", String(400), nullable=False),
    Column("field_code", String(20), nullable=False),
    Column("agency_code", String(20), nullable=False, index=True),
    Column("channel", String(10), nullable=False),
    Column("status", String(30), nullable=False, index=True),
    Column("status_code", Integer, nullable=False),
    # Personal data stays in intake's database; events carry it only toward notify. ID number and phone
    # encrypted (sealing.py: `<data key id>.<base64url>`; the repository seals and opens them).
    Column("applicant_name", String(200), nullable=False),
    Column("applicant_id_number", String(120), nullable=False),
    Column("applicant_phone", String(120), nullable=False),
    Column("applicant_email", String(200)),
    Column("applicant_address", String(500)),
    Column("applicant_type", String(20), nullable=False, server_default="individual"),
    Column("applicant_tax_code", String(20)),
    Column("vneid_verified", Boolean, nullable=False, server_default=false()),  # submitted signed in with VNeID
    # for staff search without reading personal data in clear: keyed hashes and the folded name
    Column("applicant_id_hash", String(64), index=True),
    Column("applicant_phone_hash", String(64), index=True),
    Column("applicant_name_folded", String(200)),
    Column("form", JSON, nullable=False),
    _when("submitted_at", nullable=False),
    Column("submitted_by", String(120)),
    _when("received_at"),
    _when("due_at"),
    _when("appointed_at"),
    _when("refused_at"),
    Column("refusal_reason", Text),
    _when("result_ready_at"),
    _when("returned_at"),
    Column("return_method", String(10)),
    _when("paused_at"),
    Column("resume_status", String(30)),
    _when("withdrawn_at"),
    Column("withdrawal_reason", Text),
    Column("payment_amount_vnd", BigInteger),
    Column("payment_note", Text),
    _when("paid_at"),
    Column("payment_receipt", String(64)),
    Column("result_outcome", String(10)),
    Column("result_note", Text),
    _when("stopped_at"),
    Column("stop_reason", Text),
    _when("proposed_due_at"),
    Column("delaying_agency_code", String(20)),
    Column("rating", Integer),
    Column("rating_comment", Text),
    _when("rated_at"),
    Column("postal_services", JSON, nullable=False, server_default="[]"),  # "pickup", "delivery" asked by post
    Column("history", Records(Action), nullable=False, server_default="[]"),
    Column("supplements", Records(SupplementRequest), nullable=False, server_default="[]"),
    Column("reschedules", Records(Reschedule), nullable=False, server_default="[]"),
    Column("documents", Records(Document), nullable=False, server_default="[]"),
)

# Agencies involved in a dossier (the receiving one, and each a task was routed to).
dossier_agencies = Table(
    "dossier_agencies", Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("dossier_id", Integer, ForeignKey("dossiers.id"), nullable=False),
    Column("agency_code", String(20), nullable=False),
    UniqueConstraint("dossier_id", "agency_code"),
)

# Shipments owed to the public postal service (bưu chính công ích) and their state at the carrier: the
# connector's queue (services/intake/postal.py). No address or name: those go to the carrier from the
# dossier when the order is made.
shipments = Table(
    "shipments", Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("dossier_code", String(40), nullable=False),
    Column("kind", String(10), nullable=False),  # pickup / delivery
    Column("state", String(12), nullable=False, index=True),  # owed / ordered / rejected
    Column("attempts", Integer, nullable=False, server_default="0"),
    _when("owed_at", nullable=False),
    _when("next_attempt_at", nullable=False, index=True),
    Column("last_error", String(200)),
    Column("carrier_id", String(64), unique=True),  # the carrier's order id (originalID)
    Column("item_code", String(32)),  # the postal item's number (số hiệu bưu gửi)
    Column("shipment_status", String(12)),  # the last news: picked_up, delivered, returned...
    _when("ordered_at"),
    _when("updated_at"),
    UniqueConstraint("dossier_code", "kind"),
)

# Data keys (khoá dữ liệu) of the encrypted columns, each wrapped under the environment's key-encryption
# key; `kek_id` names which (sealing.py).
data_keys = Table(
    "data_keys", Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("wrapped", String(120), nullable=False),
    Column("kek_id", String(16), nullable=False),
    _when("created_at", nullable=False),
)

# The daily sequence behind dossier codes, per receiving agency (restarts every day).
dossier_counters = Table(
    "dossier_counters", Base.metadata,
    Column("agency_code", String(20), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("last_value", Integer, nullable=False, default=0),
)

# The official calendar's decisions the province's admin recorded through the API (on top of
# calendar.yaml's): every intake instance reads them at start and again every few seconds.
# Thanh toán trực tuyến: one row per payment order sent to the national payment platform (payments.py).
payment_orders = Table(
    "payment_orders", Base.metadata,
    Column("order_id", String(40), primary_key=True),
    Column("dossier_code", String(64), nullable=False, index=True),
    Column("amount_vnd", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    # pending, paid, failed, paid_not_due, refund_due, refunded, refund_refused
    Column("status", String(16), nullable=False),
    # what it pays: "obligation" (a step's, status 6) or "fee" (the procedure's fee due at submission)
    Column("purpose", String(16), nullable=False, server_default="obligation"),
    Column("transaction_no", String(64)),
    Column("receipt_number", String(64)),
    _when("created_at", nullable=False),
    _when("settled_at"),
    # a refund due: tried how many times, not before when (one instance's claim, then the backoff), and
    # the platform's refusal once it refused (status refund_refused: the counter refunds by hand)
    Column("refund_attempts", Integer, nullable=False, server_default="0"),
    _when("refund_next_at"),
    Column("refund_note", String(200)),
)

calendar_decisions = calendar_decisions_table(Base.metadata)
