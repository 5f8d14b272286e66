"""The envelope every event travels in: id, type, version, source, time, and the typed data."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from motcua.contracts.events import schema_for


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = fields.Str(required=True)
    event_type = fields.Str(required=True)
    version = fields.Int(required=True)
    source = fields.Str(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    data = fields.Dict(required=True)


envelope_schema = EnvelopeSchema()


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    version: int
    source: str
    occurred_at: datetime
    data: dict = field(default_factory=dict)


def make_event(source: str, event_type: str, data: dict, occurred_at: datetime | None = None) -> dict:
    """Serialize an event for the wire, validating `data` against its versioned schema."""
    version, schema = schema_for(event_type)
    wire_data = schema.dump(data)
    errors = schema.validate(wire_data)
    if errors:
        raise ValueError(f"event {event_type} v{version} does not match its contract: {errors}")
    return envelope_schema.dump({
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "version": version,
        "source": source,
        "occurred_at": occurred_at or datetime.now(timezone.utc),
        "data": wire_data,
    })


def parse_event(payload: dict) -> Event:
    """Load an event from the wire; raises marshmallow.ValidationError on a malformed one."""
    envelope = envelope_schema.load(payload)
    version, schema = schema_for(envelope["event_type"])
    if envelope["version"] > version:
        raise ValidationError({"version": [f"unsupported version {envelope['version']} (know {version})"]})
    return Event(**{**envelope, "data": schema.load(envelope["data"])})
