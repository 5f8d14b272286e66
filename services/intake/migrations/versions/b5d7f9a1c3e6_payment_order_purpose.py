"""payment orders' purpose: a step's obligation or the procedure's fee due at submission (issue 15)

Revision ID: b5d7f9a1c3e6
Revises: a3c5e7f9b1d4
Create Date: 2026-12-06 03:30:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'b5d7f9a1c3e6'
down_revision: Union[str, Sequence[str], None] = 'a3c5e7f9b1d4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Every order made before paid a step's obligation (status 6): the fee at submission was counter-only.
    op.add_column('payment_orders', sa.Column('purpose', sa.String(length=16), nullable=False,
                                              server_default='obligation'))


def downgrade() -> None:
    op.drop_column('payment_orders', 'purpose')
