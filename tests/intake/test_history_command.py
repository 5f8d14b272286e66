"""`motcua history import` as an operator runs it, on SQLite: with the broker away the dossiers still go
in and their events wait in intake's outbox for intake's relays (nothing lost); a file that cannot be
read is said so, exit 2."""
from __future__ import annotations

import json

from sqlalchemy import create_engine, func, select

from motcua import cli, migrate
from services.intake.models import dossiers, outbox
from tests import infra
from tests.intake import published_table as table


def test_with_the_broker_away_the_events_wait_in_the_outbox(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate.upgrade("intake", url)
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in table.history_rows()[:30]),
                    encoding="utf-8")
    for name, value in (("INTAKE_DB_URL", url), ("AMQP_URI", f"amqp://guest:guest@127.0.0.1:{infra.free_port()}/"),
                        ("MOTCUA_CATALOG_DIR", str(table.catalogue(tmp_path / "catalog")))):
        monkeypatch.setenv(name, value)
    assert cli.main(["history", "import", str(path)]) == 0
    out = capsys.readouterr().out
    engine = create_engine(url)
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(dossiers)).scalar_one()
        waiting = connection.execute(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
                                     ).scalar_one()
    engine.dispose()
    assert stored == 30 and waiting > 30
    assert f"imported 30 dossier(s); 0 already there (skipped); 0 row(s) refused; {waiting} event(s) left for " \
           "intake's relay to publish" in out


def test_a_file_that_cannot_be_read_is_said_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INTAKE_DB_URL", f"sqlite:///{tmp_path / 'intake.db'}")
    assert cli.main(["history", "import", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
