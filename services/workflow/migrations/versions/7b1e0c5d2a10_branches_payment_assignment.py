"""branches, payment pause, assignment, hand-over origin, step documents, delay prediction

Revision ID: 7b1e0c5d2a10
Revises: 02401d24dff7
Create Date: 2026-12-01 20:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '7b1e0c5d2a10'
down_revision: Union[str, Sequence[str], None] = '02401d24dff7'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('dossier_processes') as batch:
        batch.add_column(sa.Column('resume_after_step', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('delay_predicted_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('tasks') as batch:
        batch.add_column(sa.Column('assignee', sa.String(length=120), nullable=True))
        batch.add_column(sa.Column('from_agency_code', sa.String(length=20), nullable=True))
        batch.add_column(sa.Column('documents', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tasks') as batch:
        batch.drop_column('documents')
        batch.drop_column('from_agency_code')
        batch.drop_column('assignee')
    with op.batch_alter_table('dossier_processes') as batch:
        batch.drop_column('delay_predicted_at')
        batch.drop_column('resume_after_step')
