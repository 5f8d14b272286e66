"""run version and the dossier version applied

Each run counts the events it published (`run_version` of the next one is version + 1) and remembers the
newest of intake's events it applied (`dossier_version`) and the newest that paused or resumed its clock
(`clock_version`), so a late, older one is ignored.

Revision ID: 291fee0e4d28
Revises: 7b1e0c5d2a10
Create Date: 2026-12-04 21:21:52.834515

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '291fee0e4d28'
down_revision: Union[str, Sequence[str], None] = '7b1e0c5d2a10'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('dossier_processes') as batch:
        batch.add_column(sa.Column('version', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('dossier_version', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('clock_version', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dossier_processes') as batch:
        batch.drop_column('clock_version')
        batch.drop_column('dossier_version')
        batch.drop_column('version')
