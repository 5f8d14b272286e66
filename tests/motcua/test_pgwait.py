"""`motcua.pgwait`: psycopg's waits ask the kernel first and the hub only when the socket is not
ready, on real PostgreSQL: answers come back whole, and a statement PostgreSQL takes its time over
still lets the other greenthreads run."""
from __future__ import annotations

import time

import eventlet
import psycopg
import pytest
from psycopg import waiting

from motcua import pgwait
from tests.infra import PG_ADMIN_URL

DSN = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def ready_first(postgres, monkeypatch):
    monkeypatch.setattr(waiting, "wait", pgwait.wait_ready_first)


def test_statements_big_answers_and_commits_come_back_whole(ready_first):
    with psycopg.connect(DSN) as connection:
        rows = connection.execute("SELECT n, repeat('x', 1000) FROM generate_series(1, 5000) AS n").fetchall()
        assert [n for n, _text in rows] == list(range(1, 5001)) and all(len(text) == 1000 for _n, text in rows)
        connection.execute("CREATE TEMP TABLE t (n int)")
        connection.cursor().executemany("INSERT INTO t VALUES (%s)", [(n,) for n in range(300)])
        connection.commit()
        assert connection.execute("SELECT count(*), sum(n) FROM t").fetchone() == (300, sum(range(300)))


def test_a_slow_statement_lets_other_greenthreads_run(ready_first):
    ticks = []

    def ticker():
        for _ in range(10):
            ticks.append(time.monotonic())
            eventlet.sleep(0.02)

    with psycopg.connect(DSN) as connection:
        other = eventlet.spawn(ticker)
        started = time.monotonic()
        connection.execute("SELECT pg_sleep(0.3)")
        finished = time.monotonic()
        other.wait()
    assert sum(started < tick < finished for tick in ticks) >= 5  # the hub ran it meanwhile
