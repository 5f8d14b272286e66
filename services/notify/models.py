"""notify's database: the delivery log (one row per message owed to a person or system) and the
citizens' notification choices per dossier. Plain tables: the repositories (repository.py) read and
write them with one statement per batch; the rules live in delivery.py."""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase

from motcua.db import ServiceBase, UTCDateTime, reliability_tables
from motcua.idempotency import command_results_table
from motcua.revocation import revocation_tables


class Base(ServiceBase, DeclarativeBase):
    pass


reliability_tables(Base.metadata)
command_results_table(Base.metadata)  # its own commands (an officer's re-send) by idempotency key
revocation_tables(Base.metadata)  # the gateway's revocations, refused on direct RPC (motcua.revocation)

_ID = BigInteger().with_variant(Integer, "sqlite")

# One message to one recipient on one channel for one event (services/notify/delivery.py): the
# unique key makes it once. The key is a keyed SHA-256 of the address; people see it masked. The
# address itself is kept only until the message is delivered (needed for the retries), then erased
# with the content (`context`: the template variables, or the webhook's event).
deliveries = Table(
    "deliveries", Base.metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("dossier_code", String(64), nullable=False, index=True),
    Column("agency_code", String(64)),
    Column("channel", String(16), nullable=False),
    Column("provider", String(64)),
    Column("recipient_hash", String(64), nullable=False),
    Column("recipient_masked", String(320), nullable=False),
    Column("address", String(2048)),
    Column("context", JSON),
    Column("status", String(32), nullable=False),
    Column("reason", String(128)),  # skip reason, or the last failure (never personal data)
    Column("attempts", Integer, nullable=False, default=0),
    Column("resends", Integer, nullable=False, default=0),
    Column("segments", Integer),
    Column("next_attempt_at", UTCDateTime()),
    Column("lease_until", UTCDateTime()),
    Column("provider_ref", String(128), index=True),
    Column("sent_at", UTCDateTime()),
    Column("dead_lettered_at", UTCDateTime(), index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),
    UniqueConstraint("event_id", "channel", "recipient_hash", name="uq_deliveries_key"),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
)
DELIVERY_KEY = ("event_id", "channel", "recipient_hash")

# A citizen's choice for one channel of one dossier, as recorded (append-only: the latest counts).
# `legal_basis` is why notify may message at all (the public service the citizen asked for);
# `source` is where the choice was made; the row is the record of consent or of opting out.
preferences = Table(
    "preferences", Base.metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("dossier_code", String(64), nullable=False, index=True),
    Column("channel", String(16), nullable=False),
    Column("opted_out", Boolean, nullable=False),
    Column("legal_basis", Text, nullable=False),
    Column("source", String(64), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
)
