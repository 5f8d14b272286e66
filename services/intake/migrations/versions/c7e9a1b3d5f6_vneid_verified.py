"""the applicant signed in with VNeID to submit

Revision ID: c7e9a1b3d5f6
Revises: b5d7f9a1c3e6
Create Date: 2026-12-06 06:30:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'c7e9a1b3d5f6'
down_revision: Union[str, Sequence[str], None] = 'b5d7f9a1c3e6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """`vneid_verified`: name and ID number are the identity provider's (the national portal's flag
    TaiKhoanDuocXacThucVoiVNeID); every dossier before it was submitted without a VNeID sign-in."""
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vneid_verified', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_column('vneid_verified')
