"""by-agency counters: report_counts summed over fields, a column per bucket, on day/month/year grains

Filled from report_counts as it stands (so the by-agency report stays right without a replay).

Revision ID: d41c7e2a9f10
Revises: b8d0f2a4c6e5
Create Date: 2026-12-06 03:30:00.000000

"""
from collections import Counter
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'd41c7e2a9f10'
down_revision: Union[str, Sequence[str], None] = 'b8d0f2a4c6e5'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# This migration's own copy (a migration never changes): bucket as the report reads it → column.
BUCKETS = {
    "received.online": "received_online", "received.counter": "received_counter",
    "received.postal": "received_postal", "resolved.early": "resolved_early",
    "resolved.on_time": "resolved_on_time", "resolved.late": "resolved_late",
    "resolved.seconds": "resolved_seconds", "withdrawn": "withdrawn", "stopped": "stopped",
    "open.in.normal": "open_in_normal", "open.in.awaiting_payment": "open_in_awaiting_payment",
    "open.out.normal": "open_out_normal", "open.out.awaiting_payment": "open_out_awaiting_payment",
    "supp.in.normal": "supp_in_normal", "supp.in.awaiting_payment": "supp_in_awaiting_payment",
    "supp.out.normal": "supp_out_normal", "supp.out.awaiting_payment": "supp_out_awaiting_payment",
    "open_due.in": "open_due_in", "open_due.out": "open_due_out", "supp_due.in": "supp_due_in",
    "supp_due.out": "supp_due_out", "now.open_due": "now_open_due", "now.supp_due": "now_supp_due",
}


def upgrade() -> None:
    """Upgrade schema."""
    table = op.create_table('report_agency_counts',
    sa.Column('grain', sa.String(length=5), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('agency_code', sa.String(length=32), nullable=False),
    *(sa.Column(column, sa.BigInteger(), server_default='0', nullable=False) for column in BUCKETS.values()),
    sa.PrimaryKeyConstraint('grain', 'day', 'agency_code')
    )
    counts = sa.table('report_counts', sa.column('grain'), sa.column('day', sa.Date()), sa.column('bucket'),
                      sa.column('agency_code'), sa.column('channel'), sa.column('n'))
    rows: dict[tuple, Counter] = {}
    for row in op.get_bind().execute(
            sa.select(counts.c.grain, counts.c.day, counts.c.bucket, counts.c.agency_code, counts.c.channel,
                      sa.func.sum(counts.c.n).label('n'))
            .where(counts.c.grain.in_(('day', 'month')))
            .group_by(counts.c.grain, counts.c.day, counts.c.bucket, counts.c.agency_code, counts.c.channel)):
        column = BUCKETS.get(f"received.{row.channel}" if row.bucket == "received" else row.bucket)
        if column is None:
            continue
        rows.setdefault((row.grain, row.day, row.agency_code), Counter())[column] += int(row.n)
        if row.grain == 'month':
            rows.setdefault(('year', row.day.replace(month=1, day=1), row.agency_code), Counter())[column] += int(row.n)
    values = [{"grain": grain, "day": day, "agency_code": agency, **{c: found[c] for c in BUCKETS.values()}}
              for (grain, day, agency), found in sorted(rows.items()) if any(found.values())]
    for first in range(0, len(values), 10_000):
        op.bulk_insert(table, values[first:first + 10_000])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('report_agency_counts')
