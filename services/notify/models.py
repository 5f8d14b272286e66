"""notify's database: the delivery log (one row per message owed to a person or system) and the
citizens' notification choices per dossier."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from motcua.db import ServiceBase, reliability_tables

# The delivery lifecycle (GOV.UK Notify's): created → sending → delivered | temporary-failure |
# permanent-failure | technical-failure; or skipped (no usable address, opted out).
# temporary-failure is tried again at `next_attempt_at` until the last try, then dead-lettered.
# A `sending` row with `sent_at` set was accepted by a provider that sends a delivery receipt later.
CREATED, SENDING, DELIVERED = "created", "sending", "delivered"
TEMPORARY, PERMANENT, TECHNICAL, SKIPPED = "temporary-failure", "permanent-failure", "technical-failure", "skipped"
STATUSES = (CREATED, SENDING, DELIVERED, TEMPORARY, PERMANENT, TECHNICAL, SKIPPED)
FINAL_STATUSES = (DELIVERED, PERMANENT, TECHNICAL, SKIPPED)


class Base(ServiceBase, DeclarativeBase):
    pass


reliability_tables(Base.metadata)


class Delivery(Base):
    """One message to one recipient on one channel for one event; the unique key makes it once."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("event_id", "channel", "recipient_hash", name="uq_deliveries_key"),
                      Index("ix_deliveries_due", "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64))
    dossier_code: Mapped[str] = mapped_column(String(64), index=True)
    agency_code: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(64))
    # The key is a keyed SHA-256 of the address; people see it masked. The address itself is kept
    # only until the message is delivered (needed for the retries), then erased with the content.
    recipient_hash: Mapped[str] = mapped_column(String(64))
    recipient_masked: Mapped[str] = mapped_column(String(320))
    address: Mapped[str | None] = mapped_column(String(2048))
    context: Mapped[dict | None]  # the template variables (or the webhook's event), erased once delivered
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(128))  # skip reason, or the last failure (never personal data)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    resends: Mapped[int] = mapped_column(Integer, default=0)
    segments: Mapped[int | None] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    provider_ref: Mapped[str | None] = mapped_column(String(128), index=True)
    sent_at: Mapped[datetime | None]
    dead_lettered_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class Preference(Base):
    """A citizen's choice for one channel of one dossier, as recorded (append-only: the latest counts).

    `legal_basis` is why notify may message at all (the public service the citizen asked for);
    `source` is where the choice was made; the row is the record of consent or of opting out.
    """

    __tablename__ = "preferences"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    dossier_code: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    opted_out: Mapped[bool] = mapped_column(Boolean)
    legal_basis: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime]
