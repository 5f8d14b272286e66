"""kept inputs: a console form's input posted after the session ended, kept server-side for the page
it was on until the officer signs in again

Revision ID: c4e6a8b0d2f1
Revises: a3c5e7f9b1d2
Create Date: 2026-12-06 06:30:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'c4e6a8b0d2f1'
down_revision: Union[str, Sequence[str], None] = 'a3c5e7f9b1d2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('kept_inputs',
                    sa.Column('id', sa.String(length=64), nullable=False),
                    sa.Column('username', sa.String(length=128), nullable=True),
                    sa.Column('page', sa.String(length=2048), nullable=False),
                    sa.Column('action', sa.String(length=2048), nullable=False),
                    sa.Column('fields', sa.JSON(), nullable=False),
                    sa.Column('left_out', sa.JSON(), nullable=False),
                    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_kept_inputs_expires_at', 'kept_inputs', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_kept_inputs_expires_at', table_name='kept_inputs')
    op.drop_table('kept_inputs')
