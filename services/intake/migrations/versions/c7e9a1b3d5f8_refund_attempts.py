"""refunds claimed and paced: attempts, the next attempt's time, the platform's refusal

Revision ID: c7e9a1b3d5f8
Revises: c7e9a1b3d5f6
Create Date: 2026-12-06 06:30:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'c7e9a1b3d5f8'
down_revision: Union[str, Sequence[str], None] = 'c7e9a1b3d5f6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # An order due a refund is claimed by one instance until `refund_next_at` (then tried again after a
    # growing delay); a refusal by the platform is kept in `refund_note` with status `refund_refused`.
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refund_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('refund_next_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('refund_note', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.drop_column('refund_note')
        batch_op.drop_column('refund_next_at')
        batch_op.drop_column('refund_attempts')
