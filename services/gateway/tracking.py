"""Public tracking's edge cache: reporting's answer kept at the gateway until a newer version is heard of.

Exact, not a guess with a lifetime. Reporting's answer says what it reflects (`dossier_version`,
`run_version`: every intake and workflow event of the dossier up to them). The gateway hears every
intake and workflow event about a dossier (broadcast to each instance) and remembers, per code, the
newest of each version announced. An answer is given from here only while no newer version has been
announced, to a key whose keyed digest is the one reporting accepted (the key is never kept in clear);
otherwise reporting is asked again, and its answer is kept only if it is not behind what was announced
(an event heard before reporting applied it must not leave an old answer here).

What the gateway could not hear is handled by forgetting: while its broadcast consumer is not
connected nothing is answered from here nor kept, and every (re)connection starts empty (its queue is
gone with the connection, and announcements with it). An entry is also dropped after `max_age`
seconds, a safety net. The announced versions are remembered for the `memory` most recently announced
dossiers: one announced before those is taken as applied by reporting (it is that many dossiers old).

The throttle of wrong keys stays in front of this (`GatewayService.proving`): a right key is answered
from here only once the dossier is not locked.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_SIZE = 4096
DEFAULT_MAX_AGE_SECONDS = 300.0
DEFAULT_MEMORY = 50_000
OUTCOMES = ("hit", "miss", "stale")  # stale: found, but a newer version was announced, or it aged


@dataclass(frozen=True, slots=True)
class Tracked:
    """A tracking answer as reporting gave it (the portal's page renders it) and serialized once (the
    API sends these bytes)."""

    payload: dict
    body: bytes

    @classmethod
    def of(cls, payload: dict) -> "Tracked":
        return cls(payload, json.dumps(payload, ensure_ascii=False).encode())


@dataclass(slots=True)
class _Entry:
    tracked: Tracked
    key_digest: bytes
    dossier_version: int
    run_version: int
    stored_at: float


class TrackingCache:
    """Tracking answers by dossier code, bounded (least recently used goes first). One per gateway
    instance, shared by its workers (greenthreads: no call here yields)."""

    def __init__(self, secret: str, size: int = DEFAULT_SIZE, max_age: float = DEFAULT_MAX_AGE_SECONDS,
                 memory: int = DEFAULT_MEMORY, clock: Callable[[], float] = time.monotonic,
                 count: Callable[[str], None] = lambda outcome: None):
        self.size, self.max_age, self.memory = size, max_age, memory
        self._mac = hmac.new(secret.encode(), b"tracking-key:", hashlib.sha256)
        self._clock = clock
        self._count = count
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._announced: OrderedDict[str, tuple[int, int]] = OrderedDict()  # code → newest (dossier, run)
        self._hearing = False
        self._generation = 0

    def track(self, code: str, key: str, ask: Callable[[], dict]) -> Tracked:
        """The answer to `code` with `key`: from here when it is current, else `ask()` (reporting's
        `track`, which raises on a wrong key), kept when it may be."""
        entry = self._entries.get(code)
        if entry is not None and hmac.compare_digest(entry.key_digest, self._digest(code, key)):
            if self._current(code, entry):
                self._entries.move_to_end(code)
                self._count("hit")
                return entry.tracked
            del self._entries[code]
            self._count("stale")
        else:
            self._count("miss")
        generation = self._generation
        tracked = Tracked.of(ask())
        self._keep(generation, code, key, tracked)
        return tracked

    def heard(self, data: dict) -> None:
        """The data of an event about a dossier: intake's (`code`, `dossier_version`) or workflow's
        (`dossier_code`, `run_version`)."""
        if isinstance(data.get("dossier_code"), str):
            self.announced(data["dossier_code"], run_version=_version(data.get("run_version")))
        elif isinstance(data.get("code"), str):
            self.announced(data["code"], dossier_version=_version(data.get("dossier_version")))

    def announced(self, code: str, dossier_version: int | None = None, run_version: int | None = None) -> None:
        """An event about dossier `code` was heard: intake's `dossier_version`, or workflow's
        `run_version`. One without its version (stored before versions existed) drops the entry."""
        if dossier_version is None and run_version is None:
            self._entries.pop(code, None)
            return
        dossier, run = self._announced.pop(code, (0, 0))
        self._announced[code] = (max(dossier, dossier_version or 0), max(run, run_version or 0))
        if len(self._announced) > self.memory:
            forgotten, _versions = self._announced.popitem(last=False)
            self._entries.pop(forgotten, None)  # never an entry whose announcements are forgotten

    def hearing(self) -> None:
        """The broadcast consumer is (re)connected: announcements are heard from now on; what was kept
        before may have missed some."""
        self._restart(hearing=True)

    def deaf(self) -> None:
        """The broadcast consumer lost its connection: announcements are being missed."""
        self._restart(hearing=False)

    def __len__(self) -> int:
        return len(self._entries)

    def _restart(self, hearing: bool) -> None:
        self._hearing = hearing
        self._generation += 1  # an answer asked for before this is not kept
        self._entries.clear()

    def _current(self, code: str, entry: _Entry) -> bool:
        dossier, run = self._announced.get(code, (0, 0))
        return (entry.dossier_version >= dossier and entry.run_version >= run
                and self._clock() - entry.stored_at < self.max_age)

    def _keep(self, generation: int, code: str, key: str, tracked: Tracked) -> None:
        dossier_version = tracked.payload.get("dossier_version")
        run_version = tracked.payload.get("run_version")
        if generation != self._generation or not self._hearing or self.size <= 0:
            return
        if not isinstance(dossier_version, int) or not isinstance(run_version, int):
            return  # a reporting that does not say what its answer reflects
        dossier, run = self._announced.get(code, (0, 0))
        if dossier_version < dossier or run_version < run:
            return  # reporting has not applied an event the gateway heard of
        self._entries[code] = _Entry(tracked, self._digest(code, key), dossier_version, run_version, self._clock())
        self._entries.move_to_end(code)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def _digest(self, code: str, key: str) -> bytes:
        mac = self._mac.copy()
        mac.update(f"{code}\x00{key}".encode())
        return mac.digest()


def _version(value) -> int | None:
    return value if type(value) is int and value > 0 else None
