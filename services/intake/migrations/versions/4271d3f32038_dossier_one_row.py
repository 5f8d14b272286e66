"""a dossier in one row: its version, and its history, supplement requests, apologies and documents as JSON

Revision ID: 4271d3f32038
Revises: 9d3f1a7c4e21
Create Date: 2026-12-04 21:22:24.136059

"""
from collections import defaultdict
from datetime import datetime, timezone
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '4271d3f32038'
down_revision: Union[str, Sequence[str], None] = '9d3f1a7c4e21'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Each former child table: its JSON list on the dossier, and the columns that become an entry's keys
# (the table's `doc_key` is the entry's `key`). Times in ISO 8601, UTC.
TIME = sa.DateTime(timezone=True)
CHILDREN = {
    'dossier_actions': ('history', {
        'action': sa.String(40), 'status': sa.String(30), 'status_code': sa.Integer(), 'at': TIME,
        'actor': sa.String(120), 'agency_code': sa.String(20), 'note': sa.Text()}),
    'dossier_supplements': ('supplements', {
        'requested_at': TIME, 'requested_by': sa.String(120), 'agency_code': sa.String(20), 'items': sa.JSON(),
        'note': sa.Text(), 'due_before': TIME, 'supplemented_at': TIME, 'supplemented_by': sa.String(120),
        'due_after': TIME}),
    'dossier_reschedules': ('reschedules', {
        'rescheduled_at': TIME, 'rescheduled_by': sa.String(120), 'agency_code': sa.String(20),
        'old_due_at': TIME, 'new_due_at': TIME, 'reason': sa.Text(), 'late_apology': sa.Boolean()}),
    'dossier_documents': ('documents', {
        'id': sa.Integer(), 'doc_key': sa.String(40), 'filename': sa.String(200), 'content_type': sa.String(60),
        'size': sa.Integer(), 'sha256': sa.String(64), 'uploaded_at': TIME, 'uploaded_by': sa.String(120)}),
}
NULLABLE = {'note', 'due_before', 'supplemented_at', 'supplemented_by', 'due_after'}


def _child_table(name: str, columns: dict) -> sa.Table:
    metadata = sa.MetaData()
    sa.Table('dossiers', metadata, sa.Column('id', sa.Integer(), primary_key=True))  # what the key refers to
    return sa.Table(name, metadata,
                    sa.Column('id', sa.Integer(), primary_key=True),
                    sa.Column('dossier_id', sa.Integer(), sa.ForeignKey('dossiers.id'), nullable=False, index=True),
                    *[sa.Column(column, kind, nullable=column in NULLABLE) for column, kind in columns.items()
                      if column != 'id'])


def _entry_key(column: str) -> str:
    return 'key' if column == 'doc_key' else column


def _to_json(value):
    if isinstance(value, datetime):  # SQLite gives naive UTC times back
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).isoformat()
    return value


def _dossiers(*columns) -> sa.Table:
    return sa.table('dossiers', sa.column('id', sa.Integer()), *columns)


def upgrade() -> None:
    """One statement reads a dossier: the child tables' rows move into JSON lists on it, and `version`
    (one per event published about it, as many as its history entries) counts them."""
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='0', nullable=False))
        for _, (column, _) in CHILDREN.items():
            batch_op.add_column(sa.Column(column, sa.JSON(), server_default='[]', nullable=False))

    connection = op.get_bind()
    lists: dict[int, dict[str, list]] = defaultdict(lambda: {column: [] for column, _ in CHILDREN.values()})
    for table_name, (column, columns) in CHILDREN.items():
        table = _child_table(table_name, columns)
        for row in connection.execute(sa.select(table).order_by(table.c.id)).mappings():
            lists[row['dossier_id']][column].append(
                {_entry_key(name): _to_json(row[name]) for name in columns})
    if lists:
        target = _dossiers(sa.column('version', sa.Integer()),
                           *[sa.column(column, sa.JSON()) for column, _ in CHILDREN.values()])
        connection.execute(
            target.update().where(target.c.id == sa.bindparam('dossier_id'))
            .values(version=sa.bindparam('new_version'),  # a bound name may not be the column's own
                    **{column: sa.bindparam(f'new_{column}', type_=sa.JSON()) for column, _ in CHILDREN.values()}),
            [{'dossier_id': dossier_id, 'new_version': len(entries['history']),
              **{f'new_{column}': entries[column] for column in entries}} for dossier_id, entries in lists.items()])

    for table_name in CHILDREN:
        op.drop_table(table_name)


def downgrade() -> None:
    connection = op.get_bind()
    source = _dossiers(*[sa.column(column, sa.JSON()) for column, _ in CHILDREN.values()])
    rows = connection.execute(sa.select(source)).mappings().all()
    for table_name, (column, columns) in CHILDREN.items():
        table = _child_table(table_name, columns)
        table.create(connection)
        if table_name == 'dossier_actions':
            op.create_index('ix_dossier_actions_at', 'dossier_actions', ['at'])
        values = [{'dossier_id': row['id'],
                   **{name: (datetime.fromisoformat(entry[_entry_key(name)])
                             if isinstance(kind, sa.DateTime) and entry[_entry_key(name)] else entry[_entry_key(name)])
                      for name, kind in columns.items()}}
                  for row in rows for entry in row[column] or []]
        if values:
            connection.execute(table.insert(), values)
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        for column, _ in reversed(list(CHILDREN.values())):
            batch_op.drop_column(column)
        batch_op.drop_column('version')
