"""events carry their owner's state; the projection is applied event by event

The events stored before intake's carried `dossier_version`, `status`, `status_code`, `due_at` (and
workflow's `run_version`) get them here, per dossier, in the order the old projection folded them and
with the status it gave them, so a replay with the new code gives every dossier the status it had. The
rules below are a frozen copy of that old projection (services/reporting/projections.py before this
revision): they belong to this migration only and never change.

`dossier_facts` gains what is applied event by event (its intake version, its moves, the timeline and
the open supplement request ready for tracking, its number of stored events); its status may be unknown
while only workflow has spoken. Run `make replay` once after this upgrade, before reporting consumes
again: it fills the timeline and the moves of every existing dossier from the backfilled events.

Revision ID: bc9ddcdd0d5a
Revises: a8096112f188
Create Date: 2026-12-05 09:00:00.000000

"""
from itertools import groupby
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'bc9ddcdd0d5a'
down_revision: Union[str, Sequence[str], None] = 'a8096112f188'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BATCH = 500
STATUS_CODES = {
    "submitted": 1, "received": 2, "refused": 3, "processing": 4, "supplement_requested": 5,
    "awaiting_payment": 6, "withdrawn": 7, "stopped": 8, "result_ready": 9, "returned": 10,
}
# Frozen: the old projection's status moves (target, allowed from) and its order of event types at one instant.
_OPEN = (None, "submitted", "received", "processing")
_ENDED = ("refused", "withdrawn", "returned")
_NOT_ENDED = tuple(s for s in STATUS_CODES if s not in _ENDED) + (None,)
MOVES = {
    "dossier_submitted": ("submitted", (None,)),
    "dossier_received": ("received", (None, "submitted")),
    "dossier_refused": ("refused", (None, "submitted")),
    "task_assigned": ("processing", _OPEN),
    "dossier_processing_started": ("processing", _OPEN),
    "task_completed": ("processing", _OPEN),
    "supplement_requested": ("supplement_requested", _OPEN),
    "dossier_supplemented": (None, (None, "supplement_requested")),
    "result_ready": ("result_ready", _NOT_ENDED),
    "dossier_result_ready": ("result_ready", _NOT_ENDED),
    "result_returned": ("returned", tuple(s for s in STATUS_CODES if s not in ("refused", "withdrawn")) + (None,)),
    "dossier_withdrawn": ("withdrawn", tuple(s for s in STATUS_CODES if s not in _ENDED + ("result_ready",))
                          + (None,)),
    "payment_requested": ("awaiting_payment", _OPEN),
    "payment_received": ("processing", (None, "awaiting_payment")),
    "dossier_stopped": ("stopped", _OPEN + ("supplement_requested", "awaiting_payment")),
    "dossier_transferred": ("processing", _OPEN),
    "dossier_rescheduled": ("received", (None,)),
    "task_overdue": ("processing", (None,)),
    "dossier_overdue": ("processing", (None,)),
}
EVENT_ORDER = ("dossier_submitted", "dossier_received", "dossier_refused", "task_completed",
               "task_assigned", "dossier_processing_started", "supplement_requested", "dossier_supplemented",
               "dossier_rescheduled", "task_overdue", "dossier_overdue",
               "payment_requested", "payment_received", "dossier_transferred", "dossier_stopped",
               "result_ready", "dossier_result_ready", "result_returned", "dossier_withdrawn")
_ORDER = {event_type: index for index, event_type in enumerate(EVENT_ORDER)}
# Frozen: the events after which the old projection moved the due date when their move was allowed.
_DUE_WHEN_MOVED = ("dossier_supplemented", "result_ready", "dossier_result_ready", "payment_received")

events = sa.table("events", sa.column("event_id", sa.String), sa.column("event_type", sa.String),
                  sa.column("source", sa.String), sa.column("occurred_at", sa.DateTime(timezone=True)),
                  sa.column("dossier_code", sa.String), sa.column("data", sa.JSON))


def backfill(stored: list) -> list[dict]:
    """One dossier's stored events (rows of `events`) → the new data of those that lack their version."""
    status, due, version, run_version, updates = None, None, 0, 0, []
    for row in sorted(stored, key=lambda r: (r.occurred_at, _ORDER.get(r.event_type, len(_ORDER)), r.event_id)):
        data = dict(row.data)
        target, allowed_from = MOVES.get(row.event_type, (None, ()))
        moved = row.event_type in MOVES and status in allowed_from
        if moved:
            status = target or data.get("status")
        if row.event_type == "dossier_received":
            due = data.get("due_at")
        elif row.event_type == "dossier_rescheduled":
            due = data.get("new_due_at")
        elif row.event_type in _DUE_WHEN_MOVED and moved and data.get("due_at"):
            due = data["due_at"]
        if row.source == "intake" and data.get("dossier_version") is None:
            version += 1
            data.update(dossier_version=version, status=status, status_code=STATUS_CODES.get(status), due_at=due)
            updates.append({"id": row.event_id, "new_data": data})
        elif row.source == "workflow" and data.get("run_version") is None:
            run_version += 1
            data["run_version"] = run_version
            updates.append({"id": row.event_id, "new_data": data})
    return updates


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('dossier_facts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dossier_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('stored_events', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('marks', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('timeline', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('supplement_items', sa.JSON(), nullable=True))
        batch_op.alter_column('status', existing_type=sa.String(length=32), nullable=True)
        batch_op.alter_column('status_code', existing_type=sa.Integer(), nullable=True)

    connection = op.get_bind()
    codes = list(connection.scalars(sa.select(events.c.dossier_code).distinct().order_by(events.c.dossier_code)))
    update = (events.update().where(events.c.event_id == sa.bindparam("id"))
              .values(data=sa.bindparam("new_data", type_=sa.JSON)))
    for start in range(0, len(codes), BATCH):
        rows = connection.execute(sa.select(events).where(events.c.dossier_code.in_(codes[start:start + BATCH]))
                                  .order_by(events.c.dossier_code)).all()
        updates = [change for _, stored in groupby(rows, key=lambda r: r.dossier_code)
                   for change in backfill(list(stored))]
        if updates:
            connection.execute(update, updates)
    op.execute("UPDATE dossier_facts SET stored_events = "
               "(SELECT count(*) FROM events WHERE events.dossier_code = dossier_facts.code)")


def downgrade() -> None:
    """Downgrade schema (the backfilled keys stay in the events: older code ignores unknown keys)."""
    with op.batch_alter_table('dossier_facts', schema=None) as batch_op:
        batch_op.alter_column('status_code', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('status', existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column('supplement_items')
        batch_op.drop_column('timeline')
        batch_op.drop_column('marks')
        batch_op.drop_column('stored_events')
        batch_op.drop_column('dossier_version')
