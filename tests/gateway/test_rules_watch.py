"""Long polls' rules without a database or a broker: the Prefer header, ETags and their matching, and
the change feed that held requests wait on (a change is never missed, nor an old one taken for new)."""
from __future__ import annotations

import eventlet
import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import watch
from services.gateway.watch import ChangeFeed, Held, etag_of, matches, requested_wait


def request(**headers) -> Request:
    return Request(EnvironBuilder(path="/api/v1/dossiers/X", headers=headers).get_environ())


@pytest.mark.parametrize("prefer, wait", [
    (None, None), ("wait=20", 20.0), ("respond-async, wait=5", 5.0), ("wait=600", 30.0), ('wait="2.5"', 2.5),
    ("return=minimal", None), ("wait=soon", None),
])
def test_prefer_wait_is_read_and_capped(prefer, wait):
    assert requested_wait(request(**({"Prefer": prefer} if prefer else {})), cap=30) == wait


def test_etags_are_exact_and_carry_the_version_where_there_is_one():
    assert etag_of(b'{"a": 1}', 7).startswith('"v7-') and etag_of(b'{"a": 1}') != etag_of(b'{"a": 2}')
    tag = etag_of(b"x", 3)
    assert matches(tag, tag) and matches(f"W/{tag}", tag) and matches(f'"other", {tag}', tag) and matches("*", tag)
    assert not matches(None, tag) and not matches('"other"', tag)


def test_a_change_between_reading_and_waiting_is_not_missed():
    feed = ChangeFeed()
    position = feed.position()  # taken before the read
    feed.notice(("dossier", "A"), version=8)  # arrives while the read is under way
    assert feed.wait((("dossier", "A"),), position, version=7, seconds=0.01) is True


def test_an_old_version_wakes_nobody():
    feed = ChangeFeed()
    position = feed.position()
    feed.notice(("dossier", "A"), version=7)  # the version the client has already
    assert feed.wait((("dossier", "A"),), position, version=7, seconds=0.01) is False


def test_a_waiter_wakes_on_its_key_only():
    feed = ChangeFeed()
    woken = eventlet.spawn(feed.wait, (("tasks", "X"),), feed.position(), None, 5)
    eventlet.sleep(0)
    assert feed.held() == 1
    feed.notice(("tasks", "Y"))
    eventlet.sleep(0.01)
    assert not woken.dead
    feed.notice(("tasks", "X"))
    assert woken.wait() is True and feed.held() == 0


def test_the_wait_ends_unchanged():
    feed = ChangeFeed()
    assert feed.wait((("tasks", "X"),), feed.position(), None, seconds=0.05) is False and feed.held() == 0


def test_a_position_older_than_what_is_remembered_counts_as_changed():
    feed = ChangeFeed(memory=2)
    position = feed.position()
    for code in "ABC":
        feed.notice(("dossier", code))
    assert feed.changed_since((("dossier", "Z"),), position)  # A was forgotten: it might have been Z
    assert not feed.changed_since((("dossier", "Z"),), feed.position())


def test_an_unchanged_answer_is_held_until_its_wait_ends_then_304():
    feed, clock = ChangeFeed(), [100.0]
    body = {"code": "A", "dossier_version": 3}
    first = watch.answer(request(), body, feed, (("dossier", "A"),), 0, version=3, clock=lambda: clock[0])
    assert first.status_code == 200 and "Preference-Applied" not in first.headers
    etag = first.headers["ETag"]
    assert watch.answer(request(**{"If-None-Match": etag}), body, feed, (), 0, version=3).status_code == 304
    polled = request(**{"If-None-Match": etag, "Prefer": "wait=20"})
    held = watch.answer(polled, body, feed, (("dossier", "A"),), 0, version=3, clock=lambda: clock[0])
    assert isinstance(held, Held) and held.until == 120.0
    assert held.not_modified.status_code == 304 and held.not_modified.headers["Preference-Applied"] == "wait"
    clock[0] = 121.0  # run again after the wait: unchanged, so 304 without holding again
    assert watch.answer(polled, body, feed, (("dossier", "A"),), 0, version=3, clock=lambda: clock[0]).status_code == 304
    changed = watch.answer(polled, {**body, "dossier_version": 4}, feed, (), 0, version=4)
    assert changed.status_code == 200 and changed.headers["Preference-Applied"] == "wait"
    assert changed.headers["ETag"] != etag
