"""The bench's probe, loaded into every service process by `bench/` only (never by production).

Python imports `sitecustomize` at start-up from the first directory on sys.path that has one; the bench
puts this directory first on PYTHONPATH and names an output directory in MOTCUA_PROBE_DIR. Without that
variable this module does nothing. It works the same for any version of Motcua's code, which knows
nothing of it: it hooks the libraries, not the services.

- SQLAlchemy (every Engine and pool): statements by verb and by text, commits and rollbacks (listed
  with the statements by the first frame outside the libraries that ended the transaction), pool
  pre-pings, rollbacks the pool does when a connection comes back with a transaction open, new
  connections.
- py-amqp (under kombu and nameko): messages published (events, RPC requests and replies, dead letters)
  and delivered, by exchange.
- With MOTCUA_PROBE_PROFILE set: a CPU-time sampler (ITIMER_PROF, every MOTCUA_PROBE_INTERVAL seconds of
  the process's CPU time) recording the interrupted greenthread's stack: CPU seconds by function, self
  and inclusive. Waiting is not sampled (the timer only runs while the process uses CPU), unlike
  py-spy's wall-clock view of a busy machine.

On SIGUSR1 the cumulative counters go to `<MOTCUA_PROBE_DIR>/<pid>.json` (written whole, then renamed;
`dumps` counts the writes, so the bench knows when its request was served). Counters are never reset:
the bench subtracts two dumps.
"""
from __future__ import annotations

import os

PROBE_DIR = os.environ.get("MOTCUA_PROBE_DIR")


def _install() -> None:
    import importlib.abc
    import importlib.util
    import json
    import signal
    import sys
    import time
    from collections import Counter

    statements: Counter = Counter()      # by verb: SELECT, INSERT, …
    statement_texts: Counter = Counter()  # by the statement's first 160 characters
    database: Counter = Counter()        # commits, rollbacks, pre_pings, reset_rollbacks, connects
    published: Counter = Counter()       # by exchange ("" is the default exchange: RPC replies, retries)
    delivered: Counter = Counter()       # by the exchange the message was published to
    samples_self: Counter = Counter()
    samples_inclusive: Counter = Counter()
    state = {"dumps": 0, "samples": 0, "sampled": 0.0, "last": time.process_time(), "collecting": False}
    GC = "(garbage collection: the cyclic collector)"
    path = os.path.join(PROBE_DIR, f"{os.getpid()}.json")
    roots = [p.rstrip("/") + "/" for p in sys.path if p.endswith("site-packages")]

    def hook_sqlalchemy(_module) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        from sqlalchemy.engine.default import DefaultDialect
        from sqlalchemy.pool import Pool

        @event.listens_for(Engine, "before_cursor_execute")
        def on_statement(_conn, _cursor, statement, _parameters, _context, _executemany):
            statements[statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"] += 1
            statement_texts[statement[:160]] += 1

        def caller_site() -> str:
            """The innermost frame outside the libraries (site-packages, the standard library): who ended
            the transaction."""
            frame = sys._getframe(2)
            while frame is not None:
                name = frame.f_code.co_filename
                if not any(name.startswith(root) for root in roots) and "/lib/python" not in name:
                    return f"{'/'.join(name.split('/')[-2:])}:{frame.f_code.co_name}"
                frame = frame.f_back
            return "?"

        # Listed with the statements (the profiles' "top SQL"), not counted among them.
        @event.listens_for(Engine, "commit")
        def on_commit(_conn):
            database["commits"] += 1
            statement_texts[f"(COMMIT from {caller_site()})"] += 1

        @event.listens_for(Engine, "rollback")
        def on_rollback(_conn):
            database["rollbacks"] += 1
            statement_texts[f"(ROLLBACK from {caller_site()})"] += 1

        @event.listens_for(Pool, "connect")
        def on_connect(_dbapi_connection, _record):
            database["connects"] += 1

        @event.listens_for(Pool, "reset")
        def on_reset(dbapi_connection, _record, reset_state):
            # The pool rolls back a connection returned with its transaction open; psycopg skips the
            # round trip when none is open (transaction_status 0, IDLE), so only the others count.
            status = getattr(getattr(dbapi_connection, "info", None), "transaction_status", None)
            if not reset_state.transaction_was_reset and status != 0:
                database["reset_rollbacks"] += 1

        ping = DefaultDialect._do_ping_w_event

        def counted_ping(self, dbapi_connection):
            database["pre_pings"] += 1
            return ping(self, dbapi_connection)

        DefaultDialect._do_ping_w_event = counted_ping

    def hook_amqp(module) -> None:
        channel = module.Channel
        publish, deliver, get = channel._basic_publish, channel._on_basic_deliver, channel.basic_get

        # basic_publish_confirm (confirmed channels) calls _basic_publish: patching both names counts
        # every publish once, confirmed or not.
        def counted_publish(self, msg, exchange="", *args, **kwargs):
            published[exchange] += 1
            return publish(self, msg, exchange, *args, **kwargs)

        def counted_deliver(self, consumer_tag, delivery_tag, redelivered, exchange, routing_key, msg):
            delivered[exchange] += 1
            return deliver(self, consumer_tag, delivery_tag, redelivered, exchange, routing_key, msg)

        def counted_get(self, *args, **kwargs):
            message = get(self, *args, **kwargs)
            if message is not None:
                delivered[(message.delivery_info or {}).get("exchange", "")] += 1
            return message

        channel._basic_publish = channel.basic_publish = counted_publish
        channel._on_basic_deliver = counted_deliver  # bound per channel in _setup_listeners, after this
        channel.basic_get = counted_get

    hooks = {"sqlalchemy": hook_sqlalchemy, "amqp.channel": hook_amqp}

    class AfterImport(importlib.abc.MetaPathFinder):
        """Runs a hook once a module has executed: the probe never imports a library itself, so
        eventlet's monkey-patching still comes first in the service's own start-up."""

        def find_spec(self, name, import_path, target=None):
            if name not in hooks:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, import_path, target)
                if spec is not None and spec.loader is not None:
                    break
            else:
                return None
            execute, hook = spec.loader.exec_module, hooks.pop(name)

            def exec_module(module):
                execute(module)
                hook(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, AfterImport())

    places: dict = {}

    def where(code) -> str:
        place = places.get(code)
        if place is None:
            place = places[code] = _place(code)
        return place

    def _place(code) -> str:
        filename = code.co_filename
        for root in roots:
            if filename.startswith(root):
                filename = filename[len(root):]
                break
        else:
            cwd = os.getcwd() + "/"
            filename = filename[len(cwd):] if filename.startswith(cwd) else filename
        return f"{filename}:{code.co_qualname}"

    def sample(_signum, frame) -> None:
        # Weighted by the CPU time since the last sample: timer signals that arrive while a C call
        # runs are merged into one, and that call's time belongs to the frame that made it.
        now = time.process_time()
        weight, state["last"] = now - state["last"], now
        state["samples"] += 1
        state["sampled"] += weight
        if frame is None:
            return
        if state["collecting"]:  # the collector's C time, noticed in a weakref or gc callback: its own entry
            samples_self[GC] += weight
            samples_inclusive[GC] += weight
        else:
            samples_self[where(frame.f_code)] += weight
        seen = set()
        while frame is not None:
            seen.add(frame.f_code)
            frame = frame.f_back
        for code in seen:
            samples_inclusive[where(code)] += weight

    def dump(_signum, _frame) -> None:
        state["dumps"] += 1
        # dict() copies in C: a sample arriving meanwhile cannot change a dict under iteration.
        figures = {
            "pid": os.getpid(), "argv": sys.argv, "dumps": state["dumps"], "samples": state["samples"],
            "sampled_seconds": state["sampled"], "interval": interval, "statements": dict(statements), "statement_texts": dict(statement_texts),
            "database": dict(database), "published": dict(published), "delivered": dict(delivered),
            "samples_self": dict(samples_self), "samples_inclusive": dict(samples_inclusive),
        }
        with open(path + ".tmp", "w") as out:
            json.dump(figures, out)
        os.replace(path + ".tmp", path)

    signal.signal(signal.SIGUSR1, dump)
    interval = float(os.environ.get("MOTCUA_PROBE_INTERVAL", "0.005"))
    if os.environ.get("MOTCUA_PROBE_PROFILE"):
        import atexit

        import gc

        def collecting(phase, _info) -> None:
            state["collecting"] = phase == "start"

        gc.callbacks.insert(0, collecting)
        signal.signal(signal.SIGPROF, sample)
        signal.setitimer(signal.ITIMER_PROF, interval, interval)
        # Disarmed before the interpreter restores default handlers, whose SIGPROF would kill it.
        atexit.register(signal.setitimer, signal.ITIMER_PROF, 0)


if PROBE_DIR:
    _install()
