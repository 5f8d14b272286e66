"""Push instead of polling: a long poll on a resource's ETag.

A client that has a dossier (or its task inbox) sends back its `ETag` in `If-None-Match` with
`Prefer: wait=<seconds>` (RFC 7240). While the answer would be the same, the request is held (outside
any worker: no database connection, no RPC, no worker slot) until the gateway learns that the
resource changed (intake's dossier events, workflow's task events, broadcast to every gateway
instance), then it is run again and answers 200 with the new body and ETag; or, when the wait ends,
304. An answer to a request that asked to wait says `Preference-Applied: wait`.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Callable

from eventlet.event import Event as GreenEvent
from eventlet.timeout import Timeout
from werkzeug.wrappers import Request, Response

MAX_WAIT_SECONDS = 30.0
HOLD_UNTIL = "motcua.hold_until"  # the request's environ: when its wait ends (a held request runs again)
_WAIT = re.compile(r"^\s*wait\s*=\s*\"?(\d+(?:\.\d+)?)\"?\s*$", re.IGNORECASE)


def requested_wait(request: Request, cap: float = MAX_WAIT_SECONDS) -> float | None:
    """The seconds `Prefer: wait=N` asks for (at most `cap`), None without it."""
    for header in request.headers.getlist("Prefer"):
        for preference in header.split(","):
            found = _WAIT.match(preference.split(";", 1)[0])
            if found:
                return min(float(found[1]), cap)
    return None


def etag_of(body: bytes, version: int | None = None) -> str:
    """A strong ETag: the answer's bytes (exact: views differ by the caller's roles), led by the
    resource's version where it has one (`"v7-…"`, readable in logs and tests)."""
    digest = hashlib.blake2b(body, digest_size=12).hexdigest()
    return f'"v{version}-{digest}"' if version is not None else f'"{digest}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison of `If-None-Match` with the current ETag."""
    if not if_none_match:
        return False
    bare = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == bare for tag in (t.strip() for t in if_none_match.split(",")))


class ChangeFeed:
    """What changed, as events tell: a sequence of (key, version) notices, and the held requests
    waiting on keys. `position()` before reading a resource, then `wait(keys, position, …)`: a change
    noticed in between is not missed. Recent notices are remembered (`memory` keys); for an older
    position than the forgotten ones, a wait answers "changed" (run again: never a missed change)."""

    def __init__(self, memory: int = 10_000):
        self.memory = memory
        self._position = 0
        self._forgotten = 0  # the newest position no longer remembered
        self._notices: OrderedDict[Hashable, tuple[int, int | None]] = OrderedDict()
        self._waiters: dict[Hashable, set["_Waiter"]] = {}

    def position(self) -> int:
        return self._position

    def notice(self, key: Hashable, version: int | None = None) -> None:
        """`key` changed (to `version`, where the resource has versions)."""
        self._position += 1
        self._notices.pop(key, None)
        self._notices[key] = (self._position, version)
        if len(self._notices) > self.memory:
            _key, (forgotten, _version) = self._notices.popitem(last=False)
            self._forgotten = max(self._forgotten, forgotten)
        for waiter in tuple(self._waiters.get(key, ())):
            waiter.offer(version)

    def changed_since(self, keys: Iterable[Hashable], position: int, version: int | None = None) -> bool:
        if position < self._forgotten:
            return True
        for key in keys:
            noticed = self._notices.get(key)
            if noticed is not None and noticed[0] > position and _newer(noticed[1], version):
                return True
        return False

    def wait(self, keys: tuple[Hashable, ...], position: int, version: int | None, seconds: float) -> bool:
        """Block (this greenthread) until one of `keys` changes after `position` beyond `version`,
        or `seconds` pass; True if it changed."""
        if self.changed_since(keys, position, version):
            return True
        if seconds <= 0:
            return False
        waiter = _Waiter(version)
        for key in keys:
            self._waiters.setdefault(key, set()).add(waiter)
        try:
            with Timeout(seconds, False):
                return waiter.event.wait()
            return False
        finally:
            for key in keys:
                held = self._waiters.get(key)
                if held is not None:
                    held.discard(waiter)
                    if not held:
                        del self._waiters[key]

    def held(self) -> int:
        """How many requests are waiting now."""
        return len({waiter for waiters in self._waiters.values() for waiter in waiters})


def _newer(noticed: int | None, known: int | None) -> bool:
    return noticed is None or known is None or noticed > known


class _Waiter:
    def __init__(self, version: int | None):
        self.version = version
        self.event = GreenEvent()

    def offer(self, version: int | None) -> None:
        if _newer(version, self.version) and not self.event.ready():
            self.event.send(True)


@dataclass
class Held:
    """A route's answer that is not ready: the web app holds the request, outside the worker, until
    `wait()` says the resource changed (the route runs again) or the wait ends (`not_modified`)."""

    feed: ChangeFeed
    keys: tuple[Hashable, ...]
    position: int
    version: int | None
    until: float
    not_modified: Response

    def wait(self, clock: Callable[[], float] = time.monotonic) -> bool:
        return self.feed.wait(self.keys, self.position, self.version, self.until - clock())


def answer(request: Request, payload, feed: ChangeFeed, keys: tuple[Hashable, ...], position: int,
           version: int | None = None, cap: float = MAX_WAIT_SECONDS,
           clock: Callable[[], float] = time.monotonic) -> Response | Held:
    """The route's JSON answer with its ETag: 304 if the client has it already, held while it asks to
    wait for a change (`position`: the feed's, taken before the payload was read)."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    etag = etag_of(body, version)
    headers = {"ETag": etag}
    wait = requested_wait(request, cap)
    if wait is not None:
        headers["Preference-Applied"] = "wait"
    if not matches(request.headers.get("If-None-Match"), etag):
        return Response(body, status=200, headers=headers, mimetype="application/json")
    not_modified = Response(status=304, headers=headers)
    if wait is None:
        return not_modified
    until = request.environ.setdefault(HOLD_UNTIL, clock() + wait)
    if until <= clock():
        return not_modified
    return Held(feed, keys, position, version, until, not_modified)
