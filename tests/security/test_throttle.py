"""Chống dò: too many failed logins for a username, or wrong proofs of a dossier (its tracking key,
the applicant's ID number), or failures from one address, within the window, and every try at it
is 429 with Retry-After, even a right one; shared through the gateway's database; logins audited."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.orm import Session

from motcua import migrate
from motcua.db import UnitOfWork
from motcua.errors import Forbidden, NotFound, Unauthorized, WrongKey
from motcua.identity import Caller
from services.gateway import sessions, throttle
from services.gateway.dependencies import engine_of, reads_of
from services.gateway.models import Base, FailedAttempt, KnownSignIn, RevokedToken, User
from tests.infra import migrated_sqlite_urls
from tests.security.conftest import (
    APPLICANT,
    mocked_gateway,
    COMMUNE,
    OTHER_COMMUNE,
    THROTTLE,
    audit_entries,
    forget_failed_attempts,
    login,
    signed_in,
    submit,
)

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
POLICY = throttle.ThrottlePolicy("login", max_per_subject=3, max_per_address=5, window=timedelta(minutes=5))


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
        throttle.record_failure(session, limits, T0 + timedelta(minutes=minute))
    # the 3rd failure was at 08:02; the first leaves the window at 08:05
    assert throttle.retry_after(session, POLICY, limits, T0 + timedelta(minutes=2, seconds=30)) == 150
    assert throttle.retry_after(session, POLICY, limits, T0 + timedelta(minutes=5, seconds=1)) is None
    # another username from another address is not affected
    assert throttle.retry_after(session, POLICY, throttle.keys(POLICY, "s", "leader@Y", "10.0.0.2"), T0) is None


def test_a_claim_writes_the_try_until_the_limit_then_nothing_and_purges_expired_rows(session):
    limits = throttle.keys(POLICY, "s", "leader@X", "10.0.0.1")
    throttle.record_failure(session, limits, T0 - throttle.RETENTION - timedelta(minutes=1))  # long expired
    throttle._last_purge.clear()  # as in a process started a moment ago
    claims = [throttle.claim(session, POLICY, limits, T0 + timedelta(seconds=n)) for n in range(4)]
    assert [(claim.retry_after, len(claim.rows)) for claim in claims[:3]] == [(None, 2)] * 3  # subject and address
    assert claims[3] == throttle.Claim(retry_after=300 - 3)  # the first of the window's 3 leaves at T0 + 5 min
    written = session.execute(select(FailedAttempt.id, FailedAttempt.at)).all()
    assert sorted(id_ for id_, _ in written) == sorted(id_ for claim in claims for id_ in claim.rows)
    assert min(at for _, at in written) == T0  # the expired rows were purged by the first claim


def test_the_limit_per_address_catches_many_usernames(session):
    for n in range(5):
        throttle.record_failure(session, throttle.keys(POLICY, "s", f"user{n}", "10.0.0.9"), T0)
    assert throttle.retry_after(session, POLICY, throttle.keys(POLICY, "s", "fresh-name", "10.0.0.9"),
                                T0 + timedelta(seconds=1)) == 299


def test_usernames_are_counted_without_case_and_never_stored_in_clear(session):
    throttle.record_failure(session, throttle.keys(POLICY, "s", "Leader@X", None), T0)
    assert session.scalars(select(FailedAttempt.key)).all() == [throttle.keys(POLICY, "s", "leader@x", None).popitem()[0]]
    assert all("leader" not in key.lower() for key in session.scalars(select(FailedAttempt.key)))


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
    [entry] = audit_entries(api, username=throttle.pseudonym(api.container.config["THROTTLE_KEY"], typed))
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
    uow = UnitOfWork(session, "gateway", Base.metadata)
    with pytest.raises(Unauthorized, match="no such account"):
        sessions.check_current(session.connection(), caller)
    session.add(User(username="leader@X", password_hash="-", agency_code="X", roles=["leader"]))
    session.flush()
    sessions.check_current(session.connection(), caller)
    sessions.revoke(uow, caller, T0 + timedelta(minutes=1))
    sessions.revoke(uow, caller, T0 + timedelta(minutes=2))  # twice: still one row
    with pytest.raises(Unauthorized, match="revoked"):
        sessions.check_current(session.connection(), caller)
    assert sessions.purge_expired(uow, T0 + timedelta(minutes=10)) == 0
    assert sessions.purge_expired(uow, T0 + timedelta(minutes=16)) == 1
    assert session.scalars(select(RevokedToken)).all() == []


def withdraw(target, code: str, id_number: str, key: str = APPLICANT["phone"][-4:]) -> requests.Response:
    return requests.post(f"{target.url}/api/v1/dossiers/{code}/withdraw", json={"key": key, "id_number": id_number},
                         timeout=30)


def track(target, code: str, key: str) -> requests.Response:
    return requests.get(f"{target.url}/api/v1/track/{code}", params={"key": key}, timeout=30)


def test_guessing_an_applicants_id_number_is_throttled_per_dossier(platform):
    """Without an account, the ID number is what lets one withdraw a dossier: it must not be enumerable."""
    forget_failed_attempts(platform)
    target, other = submit(platform)["code"], submit(platform)["code"]
    for guess in range(THROTTLE["PROOF_MAX_FAILURES"]):
        response = withdraw(platform, target, f"03819000{guess:04d}")
        assert (response.status_code, response.json()["error"]["field"]) == (403, "id_number")
    response = withdraw(platform, target, APPLICANT["id_number"])  # the right one, too late
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "too_many_requests"
    assert 1 <= int(response.headers["Retry-After"]) <= THROTTLE["PROOF_WINDOW_SECONDS"]
    assert withdraw(platform, other, APPLICANT["id_number"]).json()["status"] == "withdrawn"
    # a known ID number tried across dossiers' codes: without each one's tracking key, a miss like any
    # other, counted against the dossier, never a hint that the code is the person's
    forget_failed_attempts(platform)  # the address's count (its own test below)
    third = submit(platform)["code"]
    for _ in range(THROTTLE["PROOF_MAX_FAILURES"]):
        response = withdraw(platform, third, APPLICANT["id_number"], key="0000")
        assert (response.status_code, response.json()["error"]["field"]) == (404, "code")
    assert withdraw(platform, third, APPLICANT["id_number"]).status_code == 429
    # the throttled dossier was not touched: still waiting at the counter
    staff = signed_in(platform, f"receptionist@{COMMUNE}")
    assert requests.get(f"{platform.url}/api/v1/dossiers/{target}", headers=staff,
                        timeout=30).json()["status"] == "submitted"
    forget_failed_attempts(platform)


def test_the_counter_acting_for_the_applicant_is_not_throttled(platform):
    forget_failed_attempts(platform)
    code = submit(platform)["code"]
    for guess in range(THROTTLE["PROOF_MAX_FAILURES"]):
        assert withdraw(platform, code, f"03819000{guess:04d}").status_code == 403
    staff = signed_in(platform, f"receptionist@{COMMUNE}")
    response = requests.post(f"{platform.url}/api/v1/dossiers/{code}/withdraw", json={}, headers=staff, timeout=30)
    assert response.json()["status"] == "withdrawn", response.text
    forget_failed_attempts(platform)


def test_guessing_a_tracking_key_is_throttled_and_a_right_key_does_not_reset_the_count(api):
    """The misses only leave with the window: a right key in between must not let the guessing go on."""
    api.reporting.track.side_effect = WrongKey("no dossier with this code and key")
    code = "000.20.01.H56-261201-0001"
    for _ in range(THROTTLE["PROOF_MAX_FAILURES"] - 1):
        assert track(api, code, "0000").status_code == 404
    api.reporting.track.side_effect = None
    api.reporting.track.return_value = {"code": code, "procedure_code": "1.012786", "status": "processing"}
    assert track(api, code, "4321").status_code == 200
    api.reporting.track.side_effect = WrongKey("no dossier with this code and key")
    assert track(api, code, "0000").status_code == 404  # the last miss the window allows
    response = track(api, code, "4321")
    assert response.status_code == 429 and "Retry-After" in response.headers
    assert api.reporting.track.call_count == THROTTLE["PROOF_MAX_FAILURES"] + 1  # the throttled try never left


def test_a_key_holder_cannot_reset_the_id_number_count_by_tracking(api):
    """Knowing the tracking key, one could track between wrong ID numbers; each track is a right
    proof of the key, and it must not forget the wrong ID numbers."""
    api.reporting.track.return_value = {"code": "X", "procedure_code": "1.012786", "status": "supplement_requested"}
    api.intake.withdraw_dossier.side_effect = Forbidden("the ID number does not match this dossier",
                                                        field="id_number")
    code = "000.20.01.H56-261201-0002"
    for guess in range(THROTTLE["PROOF_MAX_FAILURES"] - 1):
        assert withdraw(api, code, f"03819000{guess:04d}").status_code == 403
        assert track(api, code, "4321").status_code == 200
    assert withdraw(api, code, "038190009999").status_code == 403  # the last miss the window allows
    assert withdraw(api, code, APPLICANT["id_number"]).status_code == 429


def test_one_address_guessing_across_many_dossiers_is_throttled(api):
    api.reporting.track.side_effect = WrongKey("no dossier with this code and key")
    for n in range(THROTTLE["PROOF_MAX_FAILURES_PER_ADDRESS"]):
        assert track(api, f"000.20.01.H56-261201-{n:04d}", "0000").status_code == 404
    assert track(api, "000.20.01.H56-261201-9999", "0000").status_code == 429
    # the same address's notification choices go through the same proof
    response = requests.get(f"{api.url}/api/v1/track/000.20.01.H56-261201-9999/notifications",
                            params={"key": "0000"}, timeout=30)
    assert response.status_code == 429


def test_proof_keys_hold_the_address_at_the_dossier_tighter_and_the_owner_to_nothing():
    policy = throttle.ThrottlePolicy.for_dossier_proofs(
        {**THROTTLE, "PROOF_MAX_FAILURES_PER_DOSSIER": 10})
    limits = throttle.proof_keys(policy, "s", "CODE-1", "198.51.100.7")
    assert sorted(limits.values()) == sorted([THROTTLE["PROOF_MAX_FAILURES"], 10,
                                              THROTTLE["PROOF_MAX_FAILURES_PER_ADDRESS"]])
    assert list(throttle.proof_keys(policy, "s", "CODE-1", None).values()) == [10]
    assert set(throttle.proof_keys(policy, "s", "CODE-1", "198.51.100.7", owner=True).values()) == {None}
    assert throttle.proof_keys(policy, "s", "CODE-1", "198.51.100.8").keys() != limits.keys()


@pytest.fixture
def behind_proxy(tmp_path):
    """A gateway (services mocked) behind a trusted proxy: X-Forwarded-For names each client."""
    from motcua import embedded
    embedded.install()
    gateway = mocked_gateway(migrated_sqlite_urls(tmp_path), TRUSTED_PROXIES="127.0.0.1",
                             PROOF_MAX_FAILURES_PER_DOSSIER=6)
    yield gateway
    gateway.container.stop()


def test_a_strangers_wrong_keys_lock_out_only_the_stranger_and_never_the_owners_browser(behind_proxy):
    gateway, code, right = behind_proxy, "000.20.01.H56-261201-0100", "4321"
    gateway.reporting.track.side_effect = lambda c, key: (
        {"code": c, "procedure_code": "1.012786", "status": "processing"} if key == right else (_ for _ in ()).throw(
            WrongKey("no dossier with this code and key")))

    def page(address: str, key: str, owner: requests.Session | None = None) -> requests.Response:
        return (owner or requests).get(f"{gateway.url}/tra-cuu", params={"code": code, "key": key}, timeout=30,
                                       headers={"X-Forwarded-For": address})

    owner = requests.Session()
    assert page("203.0.113.10", right, owner).status_code == 200  # the owner's browser proved the key
    for guess in range(THROTTLE["PROOF_MAX_FAILURES"]):
        assert page("198.51.100.7", f"{guess:04d}").status_code == 404
    stopped = page("198.51.100.7", right)  # the guesser is stopped, even with the right key
    assert stopped.status_code == 429 and "Vui lòng thử lại sau 1 phút." in stopped.text
    assert page("203.0.113.11", right).status_code == 200  # the owner on another device: not locked out
    for guess in range(THROTTLE["PROOF_MAX_FAILURES"]):  # many addresses guessing together ...
        assert page("198.51.100.8", f"{guess + 10:04d}").status_code in (404, 429)
    assert page("203.0.113.12", right).status_code == 429  # ... lock the dossier for every new browser
    assert page("203.0.113.10", right, owner).status_code == 200  # but never the owner's own
    assert page("203.0.113.10", "9999", owner).status_code == 404  # which still needs the right key


def test_dossier_codes_are_never_stored_in_clear(api):
    api.reporting.track.side_effect = WrongKey("no dossier with this code and key")
    code = "000.20.01.H56-261201-0042"
    track(api, code, "0000")
    engine = create_engine(api.db_url)
    with Session(engine) as session:
        keys = session.scalars(select(FailedAttempt.key)).all()
    engine.dispose()
    assert len(keys) == 3 and all(code not in key and "127.0.0.1" not in key for key in keys)  # dossier, pair, address


def test_tracking_with_the_right_key_costs_one_statement_and_writes_nothing(api):
    api.reporting.track.return_value = {"code": "X", "procedure_code": "1.012786", "status": "processing"}
    statements = []
    # The gateway's outbox relay looks for unpublished rows every second on the same engine: not tracking's.
    listener = lambda *args: "outbox" not in args[2] and statements.append(args[2])  # noqa: E731
    reads = reads_of(api.container)  # on SQLite an option of the service's engine, which sees its statements
    engines = [engine_of(api.container), *([reads.engine] if reads.own else [])]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", listener)
    try:
        for _ in range(10):
            assert track(api, "000.20.01.H56-261201-0077", "4321").status_code == 200
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) == 10 and all(s.lstrip().upper().startswith("SELECT") for s in statements), statements
    assert api.reporting.track.call_count == 10


def test_an_unknown_code_is_no_guess_at_a_dossier(api):
    """Tracking a dossier submitted a moment ago, before reporting has it, must not lock its owner out."""
    api.reporting.track.side_effect = NotFound("no dossier with this code and key")
    for _ in range(THROTTLE["PROOF_MAX_FAILURES"] + 1):
        assert track(api, "000.20.01.H56-261201-0007", "4321").status_code == 404


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def gateway_on(request, tmp_path):
    """The gateway over real HTTP on each backend (services mocked), with the demo accounts."""
    from motcua import embedded
    from motcua.config import catalog_dir
    from services.gateway.accounts import seed_demo_accounts
    from tests.infra import migrated_sqlite_urls
    from tests.security.conftest import mocked_gateway

    embedded.install()
    urls = migrated_sqlite_urls(tmp_path) if request.param == "sqlite" else request.getfixturevalue("pg_urls")
    seed_demo_accounts(urls["gateway"], catalog_dir())
    gateway = mocked_gateway(urls)
    yield gateway
    gateway.container.stop()


def test_concurrent_wrong_passwords_are_counted_before_any_is_evaluated(gateway_on):
    """The reported race: 40 wrong passwords at once against a limit of 5, and 14 were evaluated."""
    import eventlet

    user = f"leader@{COMMUNE}"
    answers = list(eventlet.GreenPool(40).imap(lambda n: login(gateway_on, user, f"wrong-{n}").status_code,
                                              range(40)))
    assert sorted(set(answers)) == [401, 429]
    assert answers.count(401) == THROTTLE["LOGIN_MAX_FAILURES"]  # evaluated: no more than the limit
    assert login(gateway_on, user).status_code == 429  # the right password too, until the window passes
    engine = create_engine(gateway_on.db_url)
    with Session(engine) as session:  # a key holds its limit of rows, no more
        assert sorted(session.scalars(select(func.count()).select_from(FailedAttempt).group_by(FailedAttempt.key))) \
               == [THROTTLE["LOGIN_MAX_FAILURES"]] * 2
    engine.dispose()


def test_one_guesser_behind_an_offices_address_does_not_lock_its_officers_out(api):
    """An office behind one NAT: an account that signed in from the address lately is held to its own
    limit only there; accounts never used from it, and the guesser, still meet the address's limit."""
    officer, colleague = f"leader@{COMMUNE}", f"specialist@{OTHER_COMMUNE}"
    assert login(api, officer).status_code == 200  # a morning's sign-in: known at this address
    for n in range(THROTTLE["LOGIN_MAX_FAILURES_PER_ADDRESS"]):
        assert login(api, f"guess{n}@{OTHER_COMMUNE}", "guess").status_code == 401
    assert login(api, f"guess-more@{OTHER_COMMUNE}", "guess").status_code == 429  # the guesser is stopped
    assert login(api, colleague).status_code == 429  # never signed in from here: the address's limit holds
    assert login(api, officer).status_code == 200  # the officer still signs in
    for _ in range(THROTTLE["LOGIN_MAX_FAILURES"]):  # and the officer's account keeps its own limit
        assert login(api, officer, "wrong-password").status_code == 401
    assert login(api, officer).status_code == 429


def test_known_sign_ins_are_keyed_hashes_and_expire(session):
    policy, now = POLICY, T0
    claimed = throttle.claim(session, policy, throttle.keys(policy, "s", "Leader@X", "10.0.0.1"), now)
    throttle.signed_in(session, policy, "s", "Leader@X", "10.0.0.1", claimed, now)
    assert session.scalars(select(FailedAttempt)).all() == []  # a right password's try is no failure
    [key] = session.scalars(select(KnownSignIn.key)).all()
    assert "leader" not in key.lower() and "10.0.0.1" not in key
    assert throttle.known_here(session, policy, "s", "leader@x", "10.0.0.1", now + throttle.KNOWN_FOR / 2)
    assert not throttle.known_here(session, policy, "s", "leader@x", "10.0.0.2", now)
    assert not throttle.known_here(session, policy, "s", "leader@x", "10.0.0.1", now + throttle.KNOWN_FOR)
