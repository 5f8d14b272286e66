"""token revocations: the gateway's logouts and account changes, refused on direct RPC (motcua.revocation)

Revision ID: e5a7c9b1d3f2
Revises: d7a9c2e4f6b8
Create Date: 2026-12-05 23:40:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'e5a7c9b1d3f2'
down_revision: Union[str, Sequence[str], None] = 'd7a9c2e4f6b8'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('revoked_token_ids',
    sa.Column('token_id', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('token_id')
    )
    with op.batch_alter_table('revoked_token_ids', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revoked_token_ids_expires_at'), ['expires_at'], unique=False)
    op.create_table('account_changes',
    sa.Column('username', sa.String(length=128), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('username')
    )
    with op.batch_alter_table('account_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_changes_changed_at'), ['changed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('account_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_changes_changed_at'))
    op.drop_table('account_changes')
    with op.batch_alter_table('revoked_token_ids', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revoked_token_ids_expires_at'))
    op.drop_table('revoked_token_ids')
