"""Public tracking's edge cache without a database or a broker: an answer is given from it only while no
newer version of the dossier was announced, to the key reporting accepted; an answer behind what was
announced is never kept; whatever may have missed an announcement is forgotten."""
from __future__ import annotations

import json

import pytest

from motcua.errors import WrongKey
from services.gateway.tracking import Tracked, TrackingCache

CODE, OTHER = "000.20.01.H56-260302-0001", "000.20.01.H56-260302-0002"
KEY = "4321"


class Reporting:
    """Reporting's `track`, counted: the answer it gives now (its versions), or a wrong key."""

    def __init__(self, dossier_version: int = 2, run_version: int = 1):
        self.calls = 0
        self.versions = (dossier_version, run_version)
        self.while_asked = None  # something that happens while reporting is being asked

    def ask(self, code: str = CODE, key: str = KEY):
        def answer():
            self.calls += 1
            if self.while_asked:
                self.while_asked()
            if key != KEY:
                raise WrongKey("no dossier with this code and key")
            dossier_version, run_version = self.versions
            return {"code": code, "status": "processing", "current_agency_code": "000.12.01.H56",
                    "dossier_version": dossier_version, "run_version": run_version}
        return answer


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def counted():
    return []


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cache(counted, clock):
    cache = TrackingCache("secret", size=3, max_age=300, memory=5, clock=clock, count=counted.append)
    cache.hearing()  # the broadcast consumer is connected
    return cache


def track(cache: TrackingCache, reporting: Reporting, code: str = CODE, key: str = KEY) -> Tracked:
    return cache.track(code, key, reporting.ask(code, key))


def test_an_answer_is_given_again_without_asking_reporting_serialized_once(cache, counted):
    reporting = Reporting()
    first = track(cache, reporting)
    again = track(cache, reporting)
    assert reporting.calls == 1 and again is first and counted == ["miss", "hit"]
    assert json.loads(again.body) == again.payload and again.payload["current_agency_code"] == "000.12.01.H56"


@pytest.mark.parametrize("announced", [{"dossier_version": 3}, {"run_version": 2}])
def test_a_newer_version_announced_sends_the_next_request_to_reporting(cache, counted, announced):
    reporting = Reporting(dossier_version=2, run_version=1)
    track(cache, reporting)
    cache.announced(CODE, dossier_version=2, run_version=1)  # what the answer reflects already: still good
    cache.announced(OTHER, dossier_version=9, run_version=9)  # another dossier's
    track(cache, reporting)
    assert reporting.calls == 1
    cache.announced(CODE, **announced)
    reporting.versions = (3, 2)
    track(cache, reporting)
    track(cache, reporting)
    assert reporting.calls == 2 and counted == ["miss", "hit", "stale", "hit"]


def test_an_answer_behind_what_was_announced_is_not_kept(cache, counted):
    cache.announced(CODE, run_version=2)  # heard before reporting applied it
    reporting = Reporting(dossier_version=2, run_version=1)
    track(cache, reporting)
    track(cache, reporting)
    assert reporting.calls == 2 and len(cache) == 0
    reporting.versions = (2, 2)  # reporting caught up
    track(cache, reporting)
    track(cache, reporting)
    assert reporting.calls == 3 and counted == ["miss", "miss", "miss", "hit"]


def test_an_announcement_heard_while_reporting_answers_keeps_its_older_answer_out(cache):
    reporting = Reporting(dossier_version=2, run_version=1)
    reporting.while_asked = lambda: cache.announced(CODE, dossier_version=3)
    track(cache, reporting)
    reporting.while_asked = None
    track(cache, reporting)
    assert reporting.calls == 2


def test_announcements_in_any_order_keep_the_newest_of_each_kind(cache):
    reporting = Reporting(dossier_version=4, run_version=3)
    for dossier_version, run_version in ((4, None), (None, 3), (2, None), (None, 1)):
        cache.announced(CODE, dossier_version=dossier_version, run_version=run_version)
    track(cache, reporting)
    track(cache, reporting)
    assert reporting.calls == 1  # 4 and 3 are what it reflects; the late 2 and 1 lower nothing


def test_a_wrong_key_never_gets_the_cached_answer_and_is_not_kept(cache, counted):
    reporting = Reporting()
    track(cache, reporting)
    for wrong in ("0000", "4322", ""):
        with pytest.raises(WrongKey):
            track(cache, reporting, key=wrong)
    assert reporting.calls == 4 and counted == ["miss"] * 4
    track(cache, reporting)
    assert reporting.calls == 4 and counted[-1] == "hit"  # the right key's answer is still there


def test_the_key_is_kept_only_as_a_keyed_digest(cache):
    track(cache, Reporting())
    entry = cache._entries[CODE]
    assert KEY.encode() not in entry.key_digest and len(entry.key_digest) == 32
    other = TrackingCache("another secret")
    assert other._digest(CODE, KEY) != entry.key_digest


def test_nothing_is_kept_or_given_while_the_broadcasts_are_not_heard(counted, clock):
    cache = TrackingCache("secret", clock=clock, count=counted.append)  # not connected yet
    reporting = Reporting()
    track(cache, reporting)
    track(cache, reporting)
    assert reporting.calls == 2 and len(cache) == 0
    cache.hearing()
    track(cache, reporting)
    cache.deaf()  # the connection is lost: announcements are being missed
    track(cache, reporting)
    assert reporting.calls == 4 and len(cache) == 0


def test_a_reconnection_forgets_every_answer_and_an_answer_asked_before_it(cache):
    reporting = Reporting()
    track(cache, reporting)
    cache.hearing()  # reconnected: what was published meanwhile was never heard
    track(cache, reporting)
    assert reporting.calls == 2
    reporting.while_asked = cache.hearing  # a reconnection while reporting answers
    track(cache, reporting, code=OTHER)
    reporting.while_asked = None
    track(cache, reporting, code=OTHER)
    assert reporting.calls == 4


def test_an_answer_is_given_at_most_max_age_seconds(cache, clock, counted):
    reporting = Reporting()
    track(cache, reporting)
    clock.now += 299
    track(cache, reporting)
    clock.now += 1
    track(cache, reporting)
    assert reporting.calls == 2 and counted == ["miss", "hit", "stale"]


def test_the_least_recently_used_answer_goes_first(cache):
    reporting = Reporting()
    codes = [f"000.20.01.H56-260302-{n:04d}" for n in range(4)]
    for code in codes[:3]:
        track(cache, reporting, code)
    track(cache, reporting, codes[0])  # used again: the second is now the oldest
    track(cache, reporting, codes[3])  # one too many (size 3)
    assert reporting.calls == 4 and set(cache._entries) == {codes[0], codes[2], codes[3]}


def test_an_answer_whose_announcements_are_forgotten_goes_with_them(cache):
    reporting = Reporting()
    track(cache, reporting)
    cache.announced(CODE, dossier_version=2)
    for n in range(5):  # the memory holds 5 dossiers' announcements
        cache.announced(f"000.20.01.H56-260302-{n + 10:04d}", dossier_version=1)
    assert CODE not in cache._entries


def test_events_are_read_as_intake_and_workflow_publish_them(cache):
    reporting = Reporting(dossier_version=2, run_version=1)
    track(cache, reporting)
    cache.heard({"code": CODE, "status": "processing", "dossier_version": 2})
    cache.heard({"dossier_code": CODE, "task_id": "t", "run_version": 1})
    cache.heard({"dossier_code": OTHER, "run_version": 5})
    cache.heard({"code": CODE, "dossier_version": True})  # not a version: drops the answer, version unknown
    track(cache, reporting)
    assert reporting.calls == 2
    cache.heard({"dossier_code": CODE, "run_version": 2})
    track(cache, reporting)
    assert reporting.calls == 3


def test_a_reporting_that_does_not_say_its_versions_is_asked_every_time(cache):
    calls = []

    def old_reporting():
        calls.append(1)
        return {"code": CODE, "status": "processing"}

    for _ in range(2):
        cache.track(CODE, KEY, old_reporting)
    assert len(calls) == 2


def test_a_size_of_zero_keeps_nothing(counted, clock):
    cache = TrackingCache("secret", size=0, clock=clock, count=counted.append)
    cache.hearing()
    reporting = Reporting()
    track(cache, reporting)
    track(cache, reporting)
    assert reporting.calls == 2
