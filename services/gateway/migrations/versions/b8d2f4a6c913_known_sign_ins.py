"""known sign-ins: an account that signed in from an address lately is not held to the address's
limit of failed logins there (an office behind one NAT)

Revision ID: b8d2f4a6c913
Revises: e5f3a7b9c1d4
Create Date: 2026-12-05 23:10:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'b8d2f4a6c913'
down_revision: Union[str, Sequence[str], None] = 'e5f3a7b9c1d4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('known_sign_ins',
                    sa.Column('key', sa.String(length=64), nullable=False),
                    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('key'))
    op.create_index('ix_known_sign_ins_at', 'known_sign_ins', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_known_sign_ins_at', table_name='known_sign_ins')
    op.drop_table('known_sign_ins')
