"""The HTTP edge helpers: NFC normalisation, JSON bodies, bearer tokens, RPC deadlines."""
import unicodedata

import eventlet
import pytest
from werkzeug.exceptions import NotFound
from werkzeug.routing import Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from motcua.rpc import TimedServiceProxy
from services.gateway.errors import InvalidJson, ServiceUnavailable, UnsupportedMediaType
from services.gateway.http import JsonWebServer, PathIdConverter, bearer_token, nfc, read_json
from services.gateway.rpc import ping_all

COMPOSED = "Nguyễn Thị Ánh"
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)


def request(data=b"", content_type="application/json", headers=None):
    return Request(EnvironBuilder(method="POST", data=data, content_type=content_type,
                                  headers=headers).get_environ())


def test_nfc_normalises_every_string_recursively_keys_included():
    assert DECOMPOSED != COMPOSED
    value = {"applicant": {"full_name": DECOMPOSED, "tags": [DECOMPOSED, 3, None]}, DECOMPOSED: True}
    assert nfc(value) == {"applicant": {"full_name": COMPOSED, "tags": [COMPOSED, 3, None]}, COMPOSED: True}


def test_read_json_normalises_to_nfc():
    body = read_json(request(('{"full_name": "%s"}' % DECOMPOSED).encode()))
    assert body["full_name"] == COMPOSED


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_read_json_wants_a_json_content_type(content_type):
    with pytest.raises(UnsupportedMediaType):
        read_json(request(b'{"a": 1}', content_type=content_type))


def test_read_json_accepts_a_charset_parameter():
    assert read_json(request(b'{"a": 1}', content_type="application/json; charset=utf-8")) == {"a": 1}


@pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe\xfa"])
def test_read_json_refuses_what_is_not_json(data):
    with pytest.raises(InvalidJson):
        read_json(request(data))


@pytest.mark.parametrize("header, token", [
    ("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer abc", "abc"), ("Basic dXNlcjpwdw==", None), ("Bearer ", None),
])
def test_bearer_token(header, token):
    assert bearer_token(request(headers={"Authorization": header})) == token


def test_no_authorization_header_means_no_token():
    assert bearer_token(request()) is None


class SlowService:
    def __init__(self, seconds):
        self.seconds = seconds

    def health(self):
        eventlet.sleep(self.seconds)
        return {"status": "ok"}

    list_agencies = health


def test_a_call_past_the_deadline_is_service_unavailable():
    with pytest.raises(ServiceUnavailable, match="intake did not answer"):
        TimedServiceProxy(SlowService(1), "intake", 0.05, ServiceUnavailable).list_agencies()


def test_health_pings_run_concurrently_and_report_timeouts_and_errors():
    class Broken:
        def health(self):
            raise ConnectionError("down")

    started = eventlet.hubs.get_hub().clock()
    states = ping_all({"a": SlowService(0.2), "b": SlowService(0.2), "slow": SlowService(5), "broken": Broken()},
                      timeout=0.4)
    elapsed = eventlet.hubs.get_hub().clock() - started
    assert states == {"a": "ok", "b": "ok", "slow": "timeout", "broken": "error: ConnectionError"}
    assert elapsed < 1.0


class _Provider:
    def get_url_rule(self):
        return Rule("/api/v1/items/<int:item_id>", methods=["GET"])


def test_a_path_id_beyond_any_database_id_names_no_resource():
    """Found by schemathesis: /deliveries/3060136706720746438656/resend overflowed the database (a 500)."""
    server = JsonWebServer()
    server._providers = [_Provider()]
    urls = server.make_url_map().bind("localhost")
    assert urls.match(f"/api/v1/items/{PathIdConverter.MAX}")[1] == {"item_id": PathIdConverter.MAX}
    with pytest.raises(NotFound):
        urls.match(f"/api/v1/items/{PathIdConverter.MAX + 1}")
