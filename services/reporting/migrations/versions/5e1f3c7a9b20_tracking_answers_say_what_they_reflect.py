"""tracking answers say what they reflect

`dossier_facts` gains the versions its row reflects, for public tracking's answer (the gateway caches an
answer until it hears of a newer version): `applied_dossier_version` and `applied_run_version`, every
intake / workflow event of the dossier up to them applied, and `run_versions_ahead`, the run's versions
applied past a missing one. Rows from before are left empty, which claims nothing (the gateway caches
their answers only while it hears of no change); `make replay` fills them.

Revision ID: 5e1f3c7a9b20
Revises: bc9ddcdd0d5a
Create Date: 2026-12-08 10:00:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '5e1f3c7a9b20'
down_revision: Union[str, Sequence[str], None] = 'bc9ddcdd0d5a'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('dossier_facts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('applied_dossier_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('applied_run_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('run_versions_ahead', sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('dossier_facts', schema=None) as batch_op:
        batch_op.drop_column('run_versions_ahead')
        batch_op.drop_column('applied_run_version')
        batch_op.drop_column('applied_dossier_version')
