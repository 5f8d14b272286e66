"""Which failures pass on their own (retry them later) and which never will (park them at once).

One answer for every part of the kit: the event inbox, the agencies' task consumers, the outbox relay,
the gateway's mapping of a failed call to 503 (try again) or 4xx (your mistake).
"""
from __future__ import annotations

import socket

from marshmallow import ValidationError
from nameko.exceptions import deserialize_to_instance

from motcua.errors import MotcuaError


@deserialize_to_instance
class TransientFailure(Exception):
    """Raised by code that knows its failure will pass (a dependency that is down, a timeout). It
    crosses RPC as itself: a service answers a call that failed for a passing reason with one
    (`motcua.rpc`), which the gateway turns into 503 with Retry-After."""


def _transient_types() -> tuple[type[BaseException], ...]:
    import amqp.exceptions
    import eventlet.timeout
    import kombu.exceptions
    import sqlalchemy.exc
    from nameko.exceptions import RpcTimeout

    return (
        TransientFailure,
        # The database: refused or dropped connections, "too many clients", a pool checkout timeout,
        # a server shutting down, serialization failures and deadlocks (OperationalError covers them).
        sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.DisconnectionError,
        sqlalchemy.exc.TimeoutError, sqlalchemy.exc.PendingRollbackError,
        # The broker and the network.
        kombu.exceptions.OperationalError, amqp.exceptions.ConnectionError,
        amqp.exceptions.RecoverableConnectionError, amqp.exceptions.RecoverableChannelError,
        ConnectionError, socket.timeout, TimeoutError, eventlet.timeout.Timeout, RpcTimeout,
    )


_TRANSIENT: tuple[type[BaseException], ...] | None = None


def is_transient(exc: BaseException) -> bool:
    """True if `exc` (or what it was raised from) is a failure that passes: retry with growing delays.

    A domain error (`MotcuaError`: invalid, not found, illegal transition) or a contract violation never
    passes, whatever caused it."""
    return _kind(exc) == "transient"


def is_poison(exc: BaseException) -> bool:
    """True if `exc` (or what it was raised from) is a domain error or a contract violation: trying again
    can only give the same answer, so the message is parked at once.

    Neither poison nor transient is a bug (an unexpected exception): the kit tries it a few times, then
    parks it."""
    return _kind(exc) == "poison"


def _kind(exc: BaseException | None) -> str | None:
    """'poison' or 'transient' for the first known failure along `exc`'s causes, else None."""
    global _TRANSIENT
    if _TRANSIENT is None:
        _TRANSIENT = _transient_types()
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (MotcuaError, ValidationError)):
            return "poison"
        if isinstance(exc, _TRANSIENT):
            return "transient"
        exc = exc.__cause__ or exc.__context__
    return None
