"""command results: every command idempotent by key (motcua.idempotency)

Revision ID: c3d1e5f7a9b2
Revises: 4271d3f32038
Create Date: 2026-12-05 01:30:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'c3d1e5f7a9b2'
down_revision: Union[str, Sequence[str], None] = '4271d3f32038'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Each command's result by (scope, key), written with its effect; submission's own key columns,
    which only it had (global, so anyone's key answered anyone's dossier), give way to it."""
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
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_column('request_fingerprint')
        batch_op.drop_column('idempotency_key')


def downgrade() -> None:
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('request_fingerprint', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_dossiers_idempotency_key', ['idempotency_key'])
    with op.batch_alter_table('command_results', schema=None) as batch_op:
        batch_op.drop_index('ix_command_results_created_at')
    op.drop_table('command_results')
