"""payment pause, stopped processing, refused result, predicted delay

Revision ID: 9d3f1a7c4e21
Revises: 5b7e2c9d1a40
Create Date: 2026-12-01 20:30:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '9d3f1a7c4e21'
down_revision: Union[str, Sequence[str], None] = '5b7e2c9d1a40'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = (
    ('payment_amount_vnd', sa.BigInteger()), ('payment_note', sa.Text()),
    ('paid_at', sa.DateTime(timezone=True)), ('payment_receipt', sa.String(length=64)),
    ('result_outcome', sa.String(length=10)), ('result_note', sa.Text()),
    ('stopped_at', sa.DateTime(timezone=True)), ('stop_reason', sa.Text()),
    ('proposed_due_at', sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table('dossiers') as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dossiers') as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
