"""Chống dò mật khẩu: too many failed logins for a username, or from an address, within the window
and every login for it is 429 with Retry-After, even with the right password; shared through the
gateway's database; audited."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from motcua import migrate
from motcua.errors import Unauthorized
from motcua.identity import Caller
from services.gateway import sessions, throttle
from services.gateway.models import LoginFailure, RevokedToken
from tests.security.conftest import COMMUNE, OTHER_COMMUNE, THROTTLE, audit_entries, login

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
POLICY = throttle.ThrottlePolicy(max_per_username=3, max_per_address=5, window=timedelta(minutes=5))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def session(request, tmp_path):
    """The gateway's migrated database on both backends (the throttle is shared through it)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
        migrate.upgrade("gateway", url)
    else:
        url = request.getfixturevalue("pg_urls")["gateway"]
    engine = create_engine(url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_the_limit_per_username_holds_until_the_oldest_failures_leave_the_window(session):
    limits = throttle.keys(POLICY, "s", "leader@X", "10.0.0.1")
    for minute in range(3):
        assert throttle.retry_after(session, POLICY, limits, T0 + timedelta(minutes=minute)) is None
        throttle.record_failure(session, POLICY, limits, T0 + timedelta(minutes=minute))
    # the 3rd failure was at 08:02; the first leaves the window at 08:05
    assert throttle.retry_after(session, POLICY, limits, T0 + timedelta(minutes=2, seconds=30)) == 150
    assert throttle.retry_after(session, POLICY, limits, T0 + timedelta(minutes=5, seconds=1)) is None
    # another username from another address is not affected
    assert throttle.retry_after(session, POLICY, throttle.keys(POLICY, "s", "leader@Y", "10.0.0.2"), T0) is None


def test_the_limit_per_address_catches_many_usernames(session):
    for n in range(5):
        throttle.record_failure(session, POLICY, throttle.keys(POLICY, "s", f"user{n}", "10.0.0.9"), T0)
    assert throttle.retry_after(session, POLICY, throttle.keys(POLICY, "s", "fresh-name", "10.0.0.9"),
                                T0 + timedelta(seconds=1)) == 299


def test_usernames_are_counted_without_case_and_never_stored_in_clear(session):
    throttle.record_failure(session, POLICY, throttle.keys(POLICY, "s", "Leader@X", None), T0)
    assert session.scalars(select(LoginFailure.key)).all() == [throttle.keys(POLICY, "s", "leader@x", None).popitem()[0]]
    assert all("leader" not in key.lower() for key in session.scalars(select(LoginFailure.key)))


def test_brute_force_over_http_is_throttled_even_with_the_right_password(api):
    user = f"receptionist@{COMMUNE}"
    for _ in range(THROTTLE["LOGIN_MAX_FAILURES"]):
        response = login(api, user, "wrong-password")
        assert response.status_code == 401
    response = login(api, user, "demo")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_requests"
    assert 1 <= int(response.headers["Retry-After"]) <= THROTTLE["LOGIN_WINDOW_SECONDS"]
    # another officer (same address, under its own limit) still signs in
    assert login(api, f"leader@{COMMUNE}").status_code == 200
    entries = [e for e in audit_entries(api, username=user, action="auth.token")]
    assert [e.outcome for e in entries][-4:] == ["denied"] * 4
    assert entries[-1].detail.startswith("throttled")
    assert all(e.remote_addr == "127.0.0.1" for e in entries)


def test_unknown_usernames_count_too(api):
    for _ in range(THROTTLE["LOGIN_MAX_FAILURES"]):
        assert login(api, "nobody@nowhere", "guess").status_code == 401
    assert login(api, "nobody@nowhere", "guess").status_code == 429


def test_what_was_typed_for_an_unknown_account_is_never_audited_in_clear(api):
    typed = "038190012345"  # a citizen's ID number typed into the officers' login
    assert login(api, typed, "guess").status_code == 401
    assert audit_entries(api, username=typed) == []
    [entry] = audit_entries(api, username=throttle.pseudonym(api.secret, typed))
    assert (entry.outcome, entry.action) == ("denied", "auth.token")


def test_one_address_trying_many_usernames_is_throttled(api):
    for n in range(THROTTLE["LOGIN_MAX_FAILURES_PER_ADDRESS"]):
        assert login(api, f"guess{n}@{OTHER_COMMUNE}", "guess").status_code == 401
    assert login(api, f"leader@{OTHER_COMMUNE}").status_code == 429


def test_a_successful_login_forgets_the_usernames_failures(api):
    user = f"specialist@{COMMUNE}"
    for _ in range(THROTTLE["LOGIN_MAX_FAILURES"] - 1):
        login(api, user, "wrong-password")
    assert login(api, user).status_code == 200
    for _ in range(THROTTLE["LOGIN_MAX_FAILURES"] - 1):
        assert login(api, user, "wrong-password").status_code == 401
    assert login(api, user).status_code == 200


def test_revocations_are_kept_until_the_token_expires_then_purged(session):
    caller = Caller("leader@X", "X", ("leader",), token_id="j1", issued_at=T0, expires_at=T0 + timedelta(minutes=15))
    sessions.check_current(session, caller)
    sessions.revoke(session, caller, T0 + timedelta(minutes=1))
    sessions.revoke(session, caller, T0 + timedelta(minutes=2))  # twice: still one row
    with pytest.raises(Unauthorized, match="revoked"):
        sessions.check_current(session, caller)
    assert sessions.purge_expired(session, T0 + timedelta(minutes=10)) == 0
    assert sessions.purge_expired(session, T0 + timedelta(minutes=16)) == 1
    assert session.scalars(select(RevokedToken)).all() == []
