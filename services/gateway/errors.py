"""The one table from exceptions to HTTP statuses and stable error codes.

Remote errors arrive as the motcua.errors instances themselves (nameko deserializes them), a failure
that will pass as `motcua.faults.TransientFailure`; the gateway's own passing failures (its database
away) are 503 too, answered with Retry-After. Anything else is a 500 "internal_error" that tells the
client nothing more.
"""
from __future__ import annotations

from nameko.exceptions import UnknownService
from werkzeug import exceptions as http_exceptions

from motcua.errors import Conflict, Forbidden, IllegalTransition, MotcuaError, NotFound, Unauthorized, ValidationFailed
from motcua.faults import TransientFailure, is_transient


class GatewayError(MotcuaError):
    """An error of the HTTP edge itself; never crosses RPC."""


class InvalidJson(GatewayError):
    pass


class UnsupportedMediaType(GatewayError):
    pass


class ServiceUnavailable(GatewayError):
    """A service did not answer in time, or is not running."""


class AuditUnavailable(ServiceUnavailable):
    """The audit log could not store the row of an action or a read: the request fails rather than
    answer as if audited (a read's data is not given out)."""


class TooManyRequests(GatewayError):
    """Too many failed tries (chống dò: logins, proofs of a dossier): try again after `retry_after` s."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = max(1, int(retry_after))


ERRORS: dict[type[BaseException], tuple[int, str]] = {
    ValidationFailed: (400, "validation_error"),
    InvalidJson: (400, "invalid_json"),
    Unauthorized: (401, "unauthorized"),
    Forbidden: (403, "forbidden"),
    NotFound: (404, "not_found"),
    http_exceptions.NotFound: (404, "not_found"),
    http_exceptions.MethodNotAllowed: (405, "method_not_allowed"),
    IllegalTransition: (409, "illegal_transition"),
    Conflict: (409, "conflict"),
    http_exceptions.RequestEntityTooLarge: (413, "payload_too_large"),
    UnsupportedMediaType: (415, "unsupported_media_type"),
    TooManyRequests: (429, "too_many_requests"),
    ServiceUnavailable: (503, "service_unavailable"),
    UnknownService: (503, "service_unavailable"),
    TransientFailure: (503, "service_unavailable"),
}
INTERNAL = (500, "internal_error")
UNAVAILABLE = ERRORS[ServiceUnavailable]
# Seconds a client is asked to wait after a 503: a dropped database connection is replaced on the next
# call, and a longer outage is met by the client's own growing delays.
UNAVAILABLE_RETRY_AFTER = 2

# Route-level errors come from werkzeug, whose own messages are HTML-minded: say it plainly.
_ROUTE_MESSAGES = {
    http_exceptions.NotFound: "no such resource",
    http_exceptions.MethodNotAllowed: "method not allowed on this resource",
    http_exceptions.RequestEntityTooLarge: "request body too large",
}


def status_and_code(exc: BaseException) -> tuple[int, str]:
    """The most specific entry of the table for `exc` (IllegalTransition before Conflict)."""
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return UNAVAILABLE if is_transient(exc) else INTERNAL


def retry_after(exc: BaseException) -> int | None:
    """The Retry-After (seconds) of the answer to `exc`: a throttle's own wait, a short one after a
    503, none otherwise."""
    if isinstance(exc, TooManyRequests):
        return exc.retry_after
    return UNAVAILABLE_RETRY_AFTER if status_and_code(exc) == UNAVAILABLE else None


def error_body(exc: BaseException) -> tuple[int, dict]:
    """(HTTP status, `{"error": {"code", "message", "field"[, "allowed"][, "missing"]}}`) for any exception."""
    status, code = status_and_code(exc)
    if (status, code) == INTERNAL:
        error = {"code": code, "message": "internal error", "field": None}
    elif isinstance(exc, MotcuaError):
        error = {"code": code, "message": exc.message, "field": exc.field}
    elif isinstance(exc, UnknownService):
        error = {"code": code, "message": "a service is not running", "field": None}
    elif isinstance(exc, TransientFailure):
        error = {"code": code, "message": str(exc), "field": None}
    elif (status, code) == UNAVAILABLE:  # the gateway's own: its message may quote SQL
        error = {"code": code, "message": "the gateway cannot answer just now: try again shortly", "field": None}
    else:
        message = next((m for cls, m in _ROUTE_MESSAGES.items() if isinstance(exc, cls)), code)
        error = {"code": code, "message": message, "field": None}
    if isinstance(exc, IllegalTransition):
        error["allowed"] = list(exc.details.get("allowed", []))
    if isinstance(exc, ValidationFailed) and exc.details.get("missing"):
        error["missing"] = [{"key": d["key"], "name": d["name"]} for d in exc.details["missing"]]
    return status, {"error": error}
