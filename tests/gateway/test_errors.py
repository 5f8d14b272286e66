"""The one error table: each exception to its HTTP status and stable code, and the body's shape."""
import pytest
from nameko.exceptions import RemoteError, UnknownService, deserialize, serialize
from werkzeug import exceptions as http_exceptions

from motcua.errors import Conflict, Forbidden, IllegalTransition, MotcuaError, NotFound, Unauthorized, ValidationFailed
from services.gateway.errors import InvalidJson, ServiceUnavailable, UnsupportedMediaType, error_body


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
