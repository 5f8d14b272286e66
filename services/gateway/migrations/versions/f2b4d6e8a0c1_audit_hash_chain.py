"""the audit log as a hash chain: each row's chain_seq and chain_hash (services/gateway/audit.py)

Revision ID: f2b4d6e8a0c1
Revises: b8d2f4a6c913
Create Date: 2026-12-05 23:40:00.000000

Links the rows it finds in their id order, a batch at a time, under this environment's GATEWAY_AUDIT_KEY
(the migration needs it, as the gateway does).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from motcua.db import UTCDateTime
from services.gateway import audit

# revision identifiers, used by Alembic.
revision: str = 'f2b4d6e8a0c1'
down_revision: Union[str, Sequence[str], None] = 'b8d2f4a6c913'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BATCH = 1000
SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
AUDIT_LOG = sa.Table('audit_log', sa.MetaData(), sa.Column('id', SEQ, primary_key=True),
                     sa.Column('at', UTCDateTime()),  # aware, as the gateway hashed it
                     *[sa.Column(name, sa.String()) for name in audit.CHAINED if name != 'at'],
                     sa.Column('chain_seq', SEQ), sa.Column('chain_hash', sa.String(64)))


def upgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chain_seq', SEQ, nullable=True))
        batch_op.add_column(sa.Column('chain_hash', sa.String(length=64), nullable=True))
    connection, key = op.get_bind(), audit.chain_key()
    last_id, seq, previous = 0, 0, ''
    while rows := connection.execute(sa.select(AUDIT_LOG).where(AUDIT_LOG.c.id > last_id)
                                     .order_by(AUDIT_LOG.c.id).limit(BATCH)).all():
        links = []
        for row in rows:
            seq += 1
            previous = audit.link(key, previous, seq, row._mapping)
            links.append({'row_id': row.id, 'chain_seq': seq, 'chain_hash': previous})
        connection.execute(sa.update(AUDIT_LOG).where(AUDIT_LOG.c.id == sa.bindparam('row_id')), links)
        last_id = rows[-1].id
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.alter_column('chain_seq', existing_type=SEQ, nullable=False)
        batch_op.alter_column('chain_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index('ux_audit_log_chain_seq', ['chain_seq'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ux_audit_log_chain_seq')
        batch_op.drop_column('chain_hash')
        batch_op.drop_column('chain_seq')
