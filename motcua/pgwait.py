"""How a service waits for PostgreSQL under eventlet: ask the kernel first, the hub only if it must.

psycopg drives each statement as a generator that says which readiness of the connection's socket it
needs next (writable to send, readable for the answer). Its `wait_select` (the one safe under eventlet,
STACK.md trap 1) hands every such wait to eventlet's green `select`: listeners registered with the hub, a
switch to it and back, even when the socket is ready already, as it nearly always is to send and as it
often is when an answer has arrived. `wait_ready_first` asks the kernel first (a real `select` with a
zero timeout, which cannot block) and goes through the hub only when the socket is not ready, so other
greenthreads run while PostgreSQL works, as before. Measured on this 2-core machine (four greenthreads,
4,000 statements and commits): 0.17–0.24 ms of CPU per statement and commit against 0.25–0.28 ms.
"""
from __future__ import annotations

import select
from time import monotonic

import psycopg
from eventlet.patcher import original
from psycopg import waiting
from psycopg.waiting import READY_R, READY_W, WAIT_R, WAIT_W

_kernel_select = original("select").select  # never patched: with a zero timeout it only asks


def wait_ready_first(gen, fileno: int, interval: float = 0.0, timeout: float | None = None):
    """psycopg's `wait_select`, but a socket that is ready already is used without a hub switch."""
    deadline = None if timeout is None else monotonic() + timeout
    sockets = (fileno,)
    try:
        wanted = next(gen)
        while True:
            readable = sockets if wanted & WAIT_R else ()
            writable = sockets if wanted & WAIT_W else ()
            ready_r, ready_w, broken = _kernel_select(readable, writable, sockets, 0)
            if not (ready_r or ready_w or broken):
                wait = interval if deadline is None else max(0.0, min(interval, deadline - monotonic()))
                ready_r, ready_w, broken = select.select(readable, writable, sockets, wait)  # green: the hub
            if broken:
                waiting._check_fd_closed(fileno)
                raise psycopg.OperationalError("connection socket closed")
            wanted = gen.send((READY_R if ready_r else 0) | (READY_W if ready_w else 0))
            if deadline is not None and monotonic() >= deadline:
                raise psycopg.errors._WaitTimeout("wait timeout expired")
    except StopIteration as done:
        return done.value


def install() -> None:
    """Every psycopg connection of this process waits with `wait_ready_first` (after monkey-patching)."""
    waiting.wait = wait_ready_first
