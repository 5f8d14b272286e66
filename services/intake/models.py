"""Intake's own database: dossiers (hồ sơ), their history, daily code counters."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from motcua.db import ServiceBase, reliability_tables


class Base(ServiceBase, DeclarativeBase):
    pass


outbox, inbox = reliability_tables(Base.metadata)


class Dossier(Base):
    __tablename__ = "dossiers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    procedure_code: Mapped[str] = mapped_column(String(20), index=True)
    procedure_version: Mapped[int]
    procedure_name: Mapped[str] = mapped_column(String(400))
    field_code: Mapped[str] = mapped_column(String(20))
    agency_code: Mapped[str] = mapped_column(String(20), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(30), index=True)
    status_code: Mapped[int]
    # Personal data stays in intake's database; events carry it only toward notify.
    applicant_name: Mapped[str] = mapped_column(String(200))
    applicant_id_number: Mapped[str] = mapped_column(String(20))
    applicant_phone: Mapped[str] = mapped_column(String(20))
    applicant_email: Mapped[str | None] = mapped_column(String(200))
    applicant_address: Mapped[str | None] = mapped_column(String(500))
    applicant_type: Mapped[str] = mapped_column(String(20), default="individual", server_default="individual")
    applicant_tax_code: Mapped[str | None] = mapped_column(String(20))
    # for staff search without reading personal data in clear: keyed hashes and the folded name
    applicant_id_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    applicant_phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    applicant_name_folded: Mapped[str | None] = mapped_column(String(200))
    form: Mapped[dict]
    submitted_at: Mapped[datetime]
    submitted_by: Mapped[str | None] = mapped_column(String(120))
    received_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    refused_at: Mapped[datetime | None]
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    result_ready_at: Mapped[datetime | None]
    returned_at: Mapped[datetime | None]
    return_method: Mapped[str | None] = mapped_column(String(10))
    # while a supplement is awaited (status 5): since when, and the status the dossier resumes
    paused_at: Mapped[datetime | None]
    resume_status: Mapped[str | None] = mapped_column(String(30))
    withdrawn_at: Mapped[datetime | None]
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)
    # a step's financial obligation (nghĩa vụ tài chính, status 6): the amount, and the payment confirmed
    payment_amount_vnd: Mapped[int | None] = mapped_column(BigInteger)
    payment_note: Mapped[str | None] = mapped_column(Text)
    paid_at: Mapped[datetime | None]
    payment_receipt: Mapped[str | None] = mapped_column(String(64))
    # the result: "approved" (the document asked for) or "refused" by a step, with its reason
    result_outcome: Mapped[str | None] = mapped_column(String(10))
    result_note: Mapped[str | None] = mapped_column(Text)
    # processing stopped by a step (dừng xử lý, status 8, form 05)
    stopped_at: Mapped[datetime | None]
    stop_reason: Mapped[str | None] = mapped_column(Text)
    # workflow predicted a late result: the appointment form 04 should propose, before the due date
    proposed_due_at: Mapped[datetime | None]
    # satisfaction (đánh giá mức độ hài lòng), once, after the result was returned
    rating: Mapped[int | None]
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))

    history: Mapped[list["DossierAction"]] = relationship(
        back_populates="dossier", order_by="DossierAction.id", cascade="all, delete-orphan")
    agencies: Mapped[list["DossierAgency"]] = relationship(cascade="all, delete-orphan")
    supplements: Mapped[list["DossierSupplement"]] = relationship(
        order_by="DossierSupplement.id", cascade="all, delete-orphan")
    documents: Mapped[list["DossierDocument"]] = relationship(
        order_by="DossierDocument.id", cascade="all, delete-orphan")
    reschedules: Mapped[list["DossierReschedule"]] = relationship(
        order_by="DossierReschedule.id", cascade="all, delete-orphan")


class DossierAction(Base):
    """Every decision on a dossier: who, when, which agency (nhật ký xử lý)."""

    __tablename__ = "dossier_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(30))
    status_code: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(120))
    agency_code: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)

    dossier: Mapped[Dossier] = relationship(back_populates="history")


class DossierSupplement(Base):
    """A supplement request (form 02, every missing item at once) and its answer."""

    __tablename__ = "dossier_supplements"

    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), index=True)
    requested_at: Mapped[datetime]
    requested_by: Mapped[str] = mapped_column(String(120))
    agency_code: Mapped[str] = mapped_column(String(20))
    items: Mapped[list] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    due_before: Mapped[datetime | None]
    supplemented_at: Mapped[datetime | None]
    supplemented_by: Mapped[str | None] = mapped_column(String(120))
    due_after: Mapped[datetime | None]


class DossierReschedule(Base):
    """An apology with a new appointment date (form 04): who, when, why, from which date to which."""

    __tablename__ = "dossier_reschedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), index=True)
    rescheduled_at: Mapped[datetime]
    rescheduled_by: Mapped[str] = mapped_column(String(120))
    agency_code: Mapped[str] = mapped_column(String(20))
    old_due_at: Mapped[datetime]
    new_due_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    late_apology: Mapped[bool]  # issued after the old appointment had passed (the law asks for before)


class DossierDocument(Base):
    """An uploaded document (thành phần hồ sơ): its bytes are in the blob store under its SHA-256."""

    __tablename__ = "dossier_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), index=True)
    doc_key: Mapped[str] = mapped_column(String(40))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(60))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime]
    uploaded_by: Mapped[str] = mapped_column(String(120))


class DossierAgency(Base):
    """Agencies involved in a dossier (receiving, and each one a task was routed to)."""

    __tablename__ = "dossier_agencies"
    __table_args__ = (UniqueConstraint("dossier_id", "agency_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"))
    agency_code: Mapped[str] = mapped_column(String(20))


class DossierCounter(Base):
    """The daily sequence behind dossier codes, per receiving agency (restarts every day)."""

    __tablename__ = "dossier_counters"

    agency_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, default=0)


Index("ix_dossier_actions_at", DossierAction.at)
