"""Versioned contracts of every event and RPC payload; agencies' own workers import these too."""
from motcua.contracts.envelope import Event, envelope_schema, make_event, parse_event  # noqa: F401
from motcua.contracts.events import EVENT_SCHEMAS, schema_for  # noqa: F401
