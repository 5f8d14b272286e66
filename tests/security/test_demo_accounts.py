"""Demo accounts do not survive a switch to production: seeded in development, then started with
`MOTCUA_ENV=production`, the gateway refuses to start (saying how to remove them) while any demo
account or an account with the demo password is left; `motcua accounts` removes them and creates
the platform's own admin."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select, text

from motcua import migrate, seed
from motcua.config import ROOT, catalog_dir
from motcua.errors import ValidationFailed
from services.gateway import accounts, users
from services.gateway.accounts import hash_password, seed_demo_accounts, session_on
from services.gateway.models import User

STRONG_SECRET = "b5c1f0e2a9d84e7f8c3b6a1d2e4f7a9c0b1d3e5f7a9c2b4d6e8f0a1c3e5b7d9f"


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    """A gateway database seeded in development: the demo accounts with the demo password."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade("gateway", url)
    monkeypatch.delenv("MOTCUA_ENV", raising=False)
    assert seed_demo_accounts(url, catalog_dir()) > 0
    return url


def motcua(*args: str, db_url: str, stdin: str = "", timeout: float = 90) -> subprocess.CompletedProcess:
    """A Motcua command in production, on the seeded database (and nothing else of a platform)."""
    env = {**os.environ, "MOTCUA_ENV": "production", "GATEWAY_DB_URL": db_url, "MOTCUA_SECRET": STRONG_SECRET,
           "MOTCUA_VAR_DIR": db_url.removeprefix("sqlite:///").rsplit("/", 1)[0],  # the other services' files
           "AMQP_URI": "amqp://guest:guest@127.0.0.1:1//"}  # no broker: a start that got that far fails
    return subprocess.run([sys.executable, "-m", *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def usernames(url: str) -> set[str]:
    with session_on(url) as session:
        return set(session.scalars(select(User.username)))


def test_production_refuses_to_start_the_gateway_while_demo_accounts_exist(seeded):
    started = motcua("motcua.run", "gateway", db_url=seeded)
    assert started.returncode == 1
    assert "MOTCUA_ENV=production refuses to start while demo accounts" in started.stderr
    assert "admin" in started.stderr and "`motcua accounts remove-demo`" in started.stderr
    assert "`motcua accounts add-admin <username>`" in started.stderr


def test_the_embedded_run_and_the_supervisor_refuse_before_any_service_starts(seeded, monkeypatch):
    """Both seed first (`seed_demo`, before spawning or serving anything): in production it refuses."""
    monkeypatch.setenv("MOTCUA_ENV", "production")
    monkeypatch.setenv("GATEWAY_DB_URL", seeded)
    with pytest.raises(SystemExit, match="remove them with `motcua accounts remove-demo`"):
        seed.seed_demo()


def test_removing_the_demo_accounts_lets_production_start(seeded, monkeypatch):
    created = motcua("motcua.cli", "accounts", "add-admin", "chief.admin", db_url=seeded,
                     stdin="a-long-private-password\n")
    assert created.returncode == 0, created.stderr
    removed = motcua("motcua.cli", "accounts", "remove-demo", db_url=seeded)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith("removed ") and "admin" in removed.stdout
    assert usernames(seeded) == {"chief.admin"}
    monkeypatch.setenv("MOTCUA_ENV", "production")
    accounts.refuse_demo_accounts(seeded, catalog_dir())  # no refusal left
    with session_on(seeded) as session:
        assert accounts.authenticate(session, "chief.admin", "a-long-private-password").roles == ("admin",)


def test_the_demo_password_is_found_under_any_name(seeded):
    """Accounts seeded from another catalogue carry the demo password under names this one does not know."""
    with session_on(seeded) as session:
        session.execute(User.__table__.delete())
        shared = hash_password("demo")
        session.add_all([User(username=name, password_hash=shared, roles=["leader"]) for name in ("old.x", "old.y")])
        session.add(User(username="own.admin", password_hash=hash_password("demo-but-unique"), roles=["admin"]))
        session.commit()
        assert accounts.demo_leftovers(session, catalog_dir()) == ["old.x", "old.y"]
    assert accounts.remove_demo_accounts(seeded, catalog_dir()) == ["old.x", "old.y"]
    assert usernames(seeded) == {"own.admin"}
    with session_on(seeded) as session:  # their tokens end at every service too (relayed from the outbox)
        announced = session.execute(text("SELECT payload FROM outbox WHERE event_type = 'account_changed'")).scalars()
        assert sorted(json.loads(payload)["data"]["username"] for payload in announced) == ["old.x", "old.y"]


def test_an_admin_is_refused_as_the_accounts_api_refuses_it(seeded):
    with pytest.raises(ValidationFailed) as refused:
        users.add_admin(seeded, "chief", "short")
    assert refused.value.field == "password"
    taken = motcua("motcua.cli", "accounts", "add-admin", "admin", db_url=seeded, stdin="a-long-private-password\n")
    assert taken.returncode == 1 and "refused: username" in taken.stderr
