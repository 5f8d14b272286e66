"""payment orders: online payments through the national payment platform (issue 15)

Revision ID: a3c5e7f9b1d4
Revises: a7c9e1b3d5f4
Create Date: 2026-12-06 02:40:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'a3c5e7f9b1d4'
down_revision: Union[str, Sequence[str], None] = 'a7c9e1b3d5f4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('payment_orders',
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('dossier_code', sa.String(length=64), nullable=False),
    sa.Column('amount_vnd', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('transaction_no', sa.String(length=64), nullable=True),
    sa.Column('receipt_number', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('order_id')
    )
    op.create_index(op.f('ix_payment_orders_dossier_code'), 'payment_orders', ['dossier_code'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_payment_orders_dossier_code'), table_name='payment_orders')
    op.drop_table('payment_orders')
