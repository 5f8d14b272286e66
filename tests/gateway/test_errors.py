"""The one error table: each exception to its HTTP status and stable code, and the body's shape."""
import json
import sys

import pytest
from nameko.exceptions import RemoteError, UnknownService, deserialize, serialize
from sqlalchemy.exc import OperationalError
from werkzeug import exceptions as http_exceptions

from motcua.errors import Conflict, Forbidden, IllegalTransition, MotcuaError, NotFound, Unauthorized, ValidationFailed
from motcua.faults import TransientFailure, is_transient
from motcua.rpc import encode_reply
from services.gateway.errors import (
    UNAVAILABLE_RETRY_AFTER,
    InvalidJson,
    ServiceUnavailable,
    UnsupportedMediaType,
    error_body,
    retry_after,
)


@pytest.mark.parametrize("exc, status, code", [
    (ValidationFailed("bad", field="applicant.phone"), 400, "validation_error"),
    (InvalidJson("not json"), 400, "invalid_json"),
    (Unauthorized("who are you"), 401, "unauthorized"),
    (Forbidden("not yours"), 403, "forbidden"),
    (NotFound("no such dossier"), 404, "not_found"),
    (http_exceptions.NotFound(), 404, "not_found"),
    (http_exceptions.MethodNotAllowed(["GET"]), 405, "method_not_allowed"),
    (IllegalTransition("already received", details={"allowed": ["refuse"]}), 409, "illegal_transition"),
    (Conflict("duplicate"), 409, "conflict"),
    (http_exceptions.RequestEntityTooLarge(), 413, "payload_too_large"),
    (UnsupportedMediaType("json please"), 415, "unsupported_media_type"),
    (ServiceUnavailable("intake did not answer in time"), 503, "service_unavailable"),
    (UnknownService("intake"), 503, "service_unavailable"),
    (RuntimeError("boom"), 500, "internal_error"),
    (RemoteError("IntegrityError", "duplicate key"), 500, "internal_error"),
    (MotcuaError("a base error nobody should raise"), 500, "internal_error"),
])
def test_each_exception_maps_to_its_status_and_code(exc, status, code):
    got_status, body = error_body(exc)
    assert (got_status, body["error"]["code"]) == (status, code)
    assert set(body["error"]) >= {"code", "message", "field"}


def test_validation_error_names_the_field():
    _, body = error_body(ValidationFailed("must be a Vietnamese mobile number", field="applicant.phone"))
    assert body == {"error": {"code": "validation_error", "message": "must be a Vietnamese mobile number",
                              "field": "applicant.phone"}}


def test_illegal_transition_lists_the_allowed_actions():
    _, body = error_body(IllegalTransition("dossier is received", details={"allowed": ["return", "withdraw"]}))
    assert body["error"]["allowed"] == ["return", "withdraw"]


def test_internal_errors_tell_nothing():
    status, body = error_body(RemoteError("ValueError", "applicant 0912345678 / 001203004567"))
    assert status == 500
    assert body == {"error": {"code": "internal_error", "message": "internal error", "field": None}}


@pytest.mark.parametrize("exc, field", [
    (NotFound("no dossier with this code and key"), None),
    (ValidationFailed("must be 9 or 12 digits", field="applicant.id_number"), "applicant.id_number"),
])
def test_errors_keep_their_field_across_rpc(exc, field):
    remote = deserialize(serialize(exc))
    assert type(remote) is type(exc)
    assert error_body(remote)[1]["error"]["field"] == field


def _database_down() -> OperationalError:
    return OperationalError("SELECT applicant FROM dossiers WHERE phone = %(phone)s", {"phone": "0912345678"},
                            Exception("terminating connection due to administrator command"))


def test_a_service_failure_that_passes_crosses_rpc_as_503_with_retry_after_and_no_sql():
    """A service whose database dropped its connection answers the call with a TransientFailure (its
    cause left behind): the gateway answers 503, asks the client to come back, and quotes no SQL."""
    try:
        raise _database_down()
    except OperationalError:
        *_, body = encode_reply(None, sys.exc_info(), "json", "intake")
    remote = deserialize(json.loads(body)["error"])
    assert type(remote) is TransientFailure and is_transient(remote)
    status, answer = error_body(remote)
    assert (status, answer["error"]["code"]) == (503, "service_unavailable")
    assert "intake" in answer["error"]["message"] and "SELECT" not in json.dumps(answer)
    assert retry_after(remote) == UNAVAILABLE_RETRY_AFTER


def test_the_gateways_own_database_away_is_503_not_500():
    status, answer = error_body(_database_down())
    assert status == 503 and "SELECT" not in json.dumps(answer)
    assert retry_after(_database_down()) == UNAVAILABLE_RETRY_AFTER
    assert retry_after(ServiceUnavailable("intake did not answer in time")) == UNAVAILABLE_RETRY_AFTER
    assert retry_after(NotFound("no such dossier")) is None


def test_a_domain_error_crosses_rpc_as_itself():
    try:
        raise NotFound("no such dossier")
    except NotFound:
        *_, body = encode_reply(None, sys.exc_info(), "json", "intake")
    assert type(deserialize(json.loads(body)["error"])) is NotFound
