"""applicants' ID numbers and phones encrypted at rest (envelope encryption, services/intake/sealing.py)

Revision ID: d7a9c2e4f6b8
Revises: c3d1e5f7a9b2
Create Date: 2026-12-05 23:20:00.000000

Makes the table's first data key, wrapped under this environment's INTAKE_DATA_KEY (the migration needs
it, as intake does), and encrypts every existing row's ID number and phone with it, a batch at a time.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from services.intake import sealing

# revision identifiers, used by Alembic.
revision: str = 'd7a9c2e4f6b8'
down_revision: Union[str, Sequence[str], None] = 'c3d1e5f7a9b2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BATCH = 1000
CLEAR, SEALED = sa.String(length=20), sa.String(length=120)
_metadata = sa.MetaData()
DATA_KEYS = sa.Table('data_keys', _metadata,
                     sa.Column('id', sa.Integer(), primary_key=True),
                     sa.Column('wrapped', sa.String(length=120), nullable=False),
                     sa.Column('kek_id', sa.String(length=16), nullable=False),
                     sa.Column('created_at', sa.DateTime(timezone=True), nullable=False))
DOSSIERS = sa.Table('dossiers', _metadata, sa.Column('id', sa.Integer(), primary_key=True),
                    sa.Column('code', sa.String(40)),
                    *[sa.Column(column, sa.String(120)) for column in sealing.SEALED_COLUMNS])


def _rewrite(connection, change) -> None:
    """Each dossier's personal columns replaced by `change(code, column, value)`, BATCH rows at a time."""
    last = 0
    while rows := connection.execute(sa.select(DOSSIERS).where(DOSSIERS.c.id > last)
                                     .order_by(DOSSIERS.c.id).limit(BATCH)).all():
        connection.execute(sa.update(DOSSIERS).where(DOSSIERS.c.id == sa.bindparam('row_id')),
                           [{'row_id': row.id, **{column: change(row.code, column, getattr(row, column))
                                                  for column in sealing.SEALED_COLUMNS}} for row in rows])
        last = rows[-1].id


def _resize(kind_from, kind_to) -> None:
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        for column in sealing.SEALED_COLUMNS:
            batch_op.alter_column(column, existing_type=kind_from, type_=kind_to, existing_nullable=False)


def upgrade() -> None:
    DATA_KEYS.create(op.get_bind())
    _resize(CLEAR, SEALED)
    key_id, key = sealing.new_data_key(op.get_bind(), DATA_KEYS, sealing.environment_kek())
    _rewrite(op.get_bind(), lambda code, column, value: sealing.seal(key_id, key, column, code, value))


def downgrade() -> None:
    connection = op.get_bind()
    kek = sealing.environment_kek()
    keys = {row.id: sealing.unwrap(kek, row.wrapped, row.kek_id) for row in connection.execute(sa.select(DATA_KEYS))}
    _rewrite(connection, lambda code, column, value: sealing.open_sealed(keys, column, code, value))
    _resize(SEALED, CLEAR)
    op.drop_table('data_keys')
