"""the public postal service: what the applicant asked for, and the shipments owed to the carrier

Revision ID: a7c9e1b3d5f4
Revises: f1b3d5a7c9e2
Create Date: 2026-12-06 02:40:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = 'a7c9e1b3d5f4'
down_revision: Union[str, Sequence[str], None] = 'f1b3d5a7c9e2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('postal_services', sa.JSON(), server_default='[]', nullable=False))
    op.create_table(
        'shipments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dossier_code', sa.String(length=40), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('owed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.String(length=200), nullable=True),
        sa.Column('carrier_id', sa.String(length=64), nullable=True),
        sa.Column('item_code', sa.String(length=32), nullable=True),
        sa.Column('shipment_status', sa.String(length=12), nullable=True),
        sa.Column('ordered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('carrier_id'),
        sa.UniqueConstraint('dossier_code', 'kind'),
    )
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shipments_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_shipments_next_attempt_at'), ['next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shipments_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_shipments_state'))
    op.drop_table('shipments')
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_column('postal_services')
