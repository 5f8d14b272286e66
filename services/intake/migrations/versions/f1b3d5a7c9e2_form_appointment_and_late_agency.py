"""form 01's appointment and form 04's agency

Revision ID: f1b3d5a7c9e2
Revises: f2b4d6a8c0e1
Create Date: 2026-12-06 00:15:00.000000

"""
from datetime import datetime
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'f1b3d5a7c9e2'
down_revision: Union[str, Sequence[str], None] = 'f2b4d6a8c0e1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """`appointed_at`: the appointment form 01 states, fixed at reception (a dossier received before it
    takes the earliest appointment still known: the first apology's old date, else its due date).
    `delaying_agency_code`: the late step's agency workflow foresaw, in whose name form 04 is issued."""
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('appointed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delaying_agency_code', sa.String(length=20), nullable=True))
    dossiers = sa.table('dossiers', sa.column('id', sa.Integer), sa.column('received_at'),
                        sa.column('due_at', sa.DateTime(timezone=True)), sa.column('reschedules', sa.JSON),
                        sa.column('appointed_at', sa.DateTime(timezone=True)))
    connection = op.get_bind()
    rows = connection.execute(sa.select(dossiers.c.id, dossiers.c.due_at, dossiers.c.reschedules)
                              .where(dossiers.c.received_at.is_not(None))).all()
    for row in rows:
        apologies = row.reschedules or []
        first = datetime.fromisoformat(apologies[0]["old_due_at"]) if apologies else row.due_at
        connection.execute(dossiers.update().where(dossiers.c.id == row.id).values(appointed_at=first))


def downgrade() -> None:
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_column('delaying_agency_code')
        batch_op.drop_column('appointed_at')
