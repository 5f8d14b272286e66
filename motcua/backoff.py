"""One backoff formula for every retry in Motcua: exponential, capped, half of it random.

`backoff(attempt, base, cap)` is how long to wait after the `attempt`-th failure (1 for the first):
`base·2^(attempt-1)` seconds, at most `cap`, of which the lower half is fixed and the upper half
random ("equal jitter"). Many clients failing at once spread out instead of retrying together, and
none retries sooner than half the delay. `jitter` (a number in [0, 1), `random.random()` by default)
is injectable so tests and fakes get a fixed delay.
"""
from __future__ import annotations

import random

_MAX_DOUBLINGS = 62  # 2^62·base exceeds any cap; a bigger exponent would only overflow the float


def backoff(attempt: int, base: float, cap: float, jitter: float | None = None) -> float:
    """Seconds to wait before try `attempt + 1`, after `attempt` failures (attempt ≥ 1)."""
    doublings = min(max(attempt - 1, 0), _MAX_DOUBLINGS)
    delay = min(cap, base * 2 ** doublings)
    share = random.random() if jitter is None else jitter
    return delay / 2 + share * delay / 2
