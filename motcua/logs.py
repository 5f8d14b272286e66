"""Log lines: one JSON object a line, with the service and the trace id of the work it belongs to.

A trace id is made where work enters the platform (an HTTP request, a timer, a batch of events whose
messages carry none) and travels with it: as nameko context data on every RPC call (its proxies send
context data as `nameko.*` headers), and as the `nameko.trace_id` header of every event the work emits
(the outbox keeps it with the row; motcua.outbox). A handler applying an event logs under the event's
trace. Grep one id across every service's log to follow a dossier's request end to end.

Errors a caller made (`MotcuaError`: the 4xx family) are logged at INFO in one line without a traceback;
nameko logs every exception raised in an entrypoint as an ERROR with its traceback, which buried the real
faults under each rejected form. Log lines never carry personal data (docs/security.md): messages name
codes and ids, never names, numbers or addresses.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid

from nameko.extensions import DependencyProvider

TRACE_KEY = "trace_id"  # in nameko context data, and so the `nameko.trace_id` message header
TRACE_HEADER = f"nameko.{TRACE_KEY}"
_current = threading.local()  # green-local once eventlet has patched threading (motcua.run does first)
# `scheme://user:password@`: nameko masks the password of a broker URI's first address only, and prints
# a failover list (`amqp://…;amqp://…`) with the others in clear.
_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@;]+:)[^\s@;]+@")


def without_credentials(text: str) -> str:
    """`text` with every URI's password replaced by `********`."""
    return _CREDENTIALS.sub(r"\1********@", text)


def new_trace() -> str:
    return uuid.uuid4().hex


def current_trace() -> str | None:
    return getattr(_current, "trace_id", None)


def current_service() -> str | None:
    return getattr(_current, "service", None)


def set_trace(trace_id: str | None, service: str | None = None) -> None:
    _current.trace_id = trace_id
    if service is not None:
        _current.service = service


def trace_of_headers(headers: dict | None) -> str | None:
    return (headers or {}).get(TRACE_HEADER)


class Tracing(DependencyProvider):
    """Every worker of the service runs under a trace: the caller's (RPC context data, an event's
    header), else a new one; RPC calls it makes pass it on (nameko sends context data as headers)."""

    def worker_setup(self, worker_ctx):
        trace = worker_ctx.data.get(TRACE_KEY) or new_trace()
        worker_ctx.data[TRACE_KEY] = trace  # `data`: `context_data` is a copy made from it at each call
        set_trace(trace, worker_ctx.container.service_name)

    def worker_teardown(self, worker_ctx):
        set_trace(None)
        _current.service = None


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "service", "trace_id", "logger", "message"[, "exception"]}`, one line each."""

    def __init__(self, process_services: str = ""):
        super().__init__()
        self.process_services = process_services  # for lines outside any worker (start, relays, timers)

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": current_service() or self.process_services,
            "trace_id": current_trace(),
            "logger": record.name,
            "message": without_credentials(record.getMessage()),
        }
        if record.exc_info:
            line["exception"] = without_credentials(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Plain lines for a person at a terminal, passwords masked as in the JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        return without_credentials(super().format(record))


class ClientErrorsAtInfo(logging.Filter):
    """On nameko's container logger: an entrypoint that answered its caller with a `MotcuaError` (a 4xx)
    is one INFO line, `<service>.<method> answered <code>: <message>`; any other exception stays as
    nameko logs it. An event handler's MotcuaError is not a caller's mistake (it is retried, then
    parked), so it stays an ERROR too."""

    def filter(self, record: logging.LogRecord) -> bool:
        from motcua.bus import ReliableEventHandler
        from motcua.errors import MotcuaError

        exc = record.exc_info[1] if record.exc_info else None
        worker_ctx = record.args[0] if isinstance(record.args, tuple) and record.args else None
        entrypoint = getattr(worker_ctx, "entrypoint", None)
        if (not isinstance(exc, MotcuaError) or entrypoint is None
                or isinstance(entrypoint, ReliableEventHandler) or record.levelno < logging.WARNING):
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg = "%s.%s answered %s: %s"
        record.args = (worker_ctx.container.service_name, entrypoint.method_name, exc.code, exc)
        record.exc_info = record.exc_text = None
        return True


def configure(level: str, fmt: str, process_services: str) -> None:
    """The root logger's one handler on stderr: JSON lines (`MOTCUA_LOG_FORMAT=json`, the default) or
    plain text for a person at a terminal (`text`)."""
    handler = logging.StreamHandler()
    if fmt == "text":
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    elif fmt == "json":
        handler.setFormatter(JsonFormatter(process_services))
    else:
        raise SystemExit(f"MOTCUA_LOG_FORMAT must be 'json' or 'text', not {fmt!r}")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("nameko.containers").addFilter(ClientErrorsAtInfo())
