"""`python -m motcua.migrate wait`: a new pod waits for its release's migration job (deploy/k8s)."""
import subprocess
import sys

from motcua import migrate
from motcua.config import ROOT


def test_a_schema_behind_is_waited_for_and_one_at_head_is_ready(tmp_path):
    url = f"sqlite:///{tmp_path / 'notify.db'}"
    assert not migrate.schema_ready("notify", url)  # empty: the job has not run
    waited = subprocess.run([sys.executable, "-m", "motcua.migrate", "wait", "notify", "--timeout", "0.5"],
                            env={"NOTIFY_DB_URL": url, "PATH": "/usr/bin:/bin"}, cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert waited.returncode == 1 and "has the migration job run?" in waited.stderr
    migrate.upgrade("notify", url)
    assert migrate.schema_ready("notify", url)


def test_a_schema_ahead_of_the_image_is_ready(tmp_path):
    """A release rolled back after its migration ran: its pods start on the newer schema."""
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'notify.db'}"
    migrate.upgrade("notify", url)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    engine.dispose()
    assert migrate.schema_ready("notify", url)


def test_an_unreachable_database_is_not_ready():
    assert not migrate.schema_ready("notify", "postgresql+psycopg://nobody@127.0.0.1:1/none")
