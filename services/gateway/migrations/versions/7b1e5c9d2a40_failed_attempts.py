"""failed attempts: the login throttle's table also throttles guesses at a dossier's proofs

Revision ID: 7b1e5c9d2a40
Revises: 4cb2a4f6c067
Create Date: 2026-12-01 22:40:00

"""
from typing import Sequence, Union

from alembic import op

revision: str = '7b1e5c9d2a40'
down_revision: Union[str, Sequence[str], None] = '4cb2a4f6c067'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    _rename('login_failures', 'failed_attempts')


def downgrade() -> None:
    _rename('failed_attempts', 'login_failures')


def _rename(old: str, new: str) -> None:
    with op.batch_alter_table(old, schema=None) as batch_op:
        batch_op.drop_index(f'ix_{old}_key_at')
    op.rename_table(old, new)
    with op.batch_alter_table(new, schema=None) as batch_op:
        batch_op.create_index(f'ix_{new}_key_at', ['key', 'at'], unique=False)
