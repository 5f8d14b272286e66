"""command results: the gateway's own commands (accounts) idempotent by key (motcua.idempotency)

Revision ID: e5f3a7b9c1d4
Revises: 7b1e5c9d2a40
Create Date: 2026-12-05 01:30:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'e5f3a7b9c1d4'
down_revision: Union[str, Sequence[str], None] = '7b1e5c9d2a40'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Each account command's result by (scope, key), written with its effect."""
    op.create_table('command_results',
    sa.Column('scope', sa.String(length=160), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('command', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key')
    )
    with op.batch_alter_table('command_results', schema=None) as batch_op:
        batch_op.create_index('ix_command_results_created_at', ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('command_results', schema=None) as batch_op:
        batch_op.drop_index('ix_command_results_created_at')
    op.drop_table('command_results')
