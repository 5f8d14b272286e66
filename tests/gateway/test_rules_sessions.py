"""The token check's rules and its cache, without a database: what a token's state decides, how long
the gateway may trust what it read, and that a change applied here is never undone by a read that
raced it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from motcua.errors import Unauthorized
from motcua.identity import Caller
from motcua.revocation import AccessCache, TokenState
from services.gateway.sessions import AccountState, judge

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
LEADER = Caller("leader@X", "X", ("leader",), token_id="jti-1", issued_at=T0, expires_at=T0 + timedelta(minutes=15))
ACTIVE = AccountState(active=True, tokens_valid_after=None)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("state, message", [
    (TokenState(True, ACTIVE), "token revoked"),
    (TokenState(False, AccountState(False, None)), "account disabled"),
    (TokenState(False, AccountState(True, T0)), "sign in again"),  # changed in the second it was issued
    (TokenState(False, AccountState(True, T0 + timedelta(minutes=1))), "sign in again"),
    (TokenState(False, None), "no such account"),  # deleted, made up, or an agency system's (no row)
])
def test_a_revoked_or_outdated_token_is_refused(state, message):
    with pytest.raises(Unauthorized, match=message):
        judge(LEADER, state)


def test_reportings_own_token_has_no_account_and_is_still_revocable():
    reporting = Caller("service@reporting", None, ("portal_sync",), token_id="jti-2", issued_at=T0,
                       expires_at=T0 + timedelta(days=90))
    judge(reporting, TokenState(False, None))
    with pytest.raises(Unauthorized, match="token revoked"):
        judge(reporting, TokenState(True, None))
    posing = Caller("service@reporting", "X", ("portal_sync",), token_id="jti-3", issued_at=T0, expires_at=T0)
    with pytest.raises(Unauthorized, match="no such account"):  # with an agency it is no service's token
        judge(posing, TokenState(False, None))


@pytest.mark.parametrize("state", [TokenState(False, ACTIVE),
                                   TokenState(False, AccountState(True, T0 - timedelta(seconds=1)))])
def test_a_current_token_passes(state):
    judge(LEADER, state)


def test_a_state_is_trusted_for_the_ttl_only():
    clock = Clock()
    cache = AccessCache(ttl=5, clock=clock)
    assert cache.known(LEADER) is None
    cache.keep(cache.ticket(), LEADER, TokenState(False, ACTIVE))
    clock.now += 4.9
    assert cache.known(LEADER) == TokenState(False, ACTIVE)
    clock.now += 0.2
    assert cache.known(LEADER) is None


def test_a_revocation_is_known_at_once_and_for_good():
    clock = Clock()
    cache = AccessCache(ttl=5, clock=clock)
    cache.keep(cache.ticket(), LEADER, TokenState(False, ACTIVE))
    cache.revoked(LEADER.token_id, LEADER.expires_at)
    assert cache.known(LEADER).revoked
    clock.now += 3600
    assert cache.known(LEADER).revoked  # no database read needed: a revoked token never comes back


def test_an_account_change_is_read_again_at_once_for_every_token_of_the_account():
    cache = AccessCache(ttl=5, clock=Clock())
    other_session = Caller("leader@X", "X", ("leader",), token_id="jti-2", issued_at=T0)
    for caller in (LEADER, other_session):
        cache.keep(cache.ticket(), caller, TokenState(False, ACTIVE))
    cache.forget_account("leader@X")
    assert cache.known(LEADER) is None and cache.known(other_session) is None


def test_a_read_that_raced_a_change_is_not_kept():
    """Read before a logout committed, kept after it: the old state must not come back."""
    cache = AccessCache(ttl=5, clock=Clock())
    ticket = cache.ticket()  # a request starts reading the state...
    cache.forget_account("leader@X")  # ...meanwhile roles change on this instance
    cache.keep(ticket, LEADER, TokenState(False, ACTIVE))
    assert cache.known(LEADER) is None


def test_the_cache_stays_bounded():
    clock = Clock()
    cache = AccessCache(ttl=5, clock=clock, max_entries=10)
    for n in range(50):
        caller = Caller(f"user{n}", "X", ("specialist",), token_id=f"jti-{n}", issued_at=T0)
        cache.keep(cache.ticket(), caller, TokenState(False, ACTIVE))
    assert len(cache._not_revoked) + len(cache._accounts) <= 10 + 2
