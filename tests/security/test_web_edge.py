"""The gateway's HTTP edge against a network attacker: where a login may send the officer back to,
the client address and scheme behind trusted proxies only, the headers of every answer, and bodies
too large or too deeply nested to parse."""
from __future__ import annotations

import re

import pytest
import requests

from motcua import embedded
from motcua.config import catalog_dir
from services.gateway.accounts import seed_demo_accounts
from services.gateway.pages_http import safe_next
from services.gateway.proxies import Proxies, trusted_networks
from tests.infra import gateway_token, migrated_sqlite_urls
from tests.security.conftest import COMMUNE, OTHER_COMMUNE, THROTTLE, audit_entries, bearer, login

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
HOME = "/can-bo"  # a receptionist's landing page


@pytest.mark.parametrize("target", [
    "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example",
    "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example", "/\\/evil.example",
    "\\/evil.example", " //evil.example", "/ /evil.example", "https://evil.example", "http:evil.example",
    "javascript:alert(1)", "data:text/html,x", "evil.example", "/\x00/evil.example", "/\x7f/evil.example",
    "/\u3000/evil.example", "/can-bo\t", "", None,
])
def test_only_a_path_of_this_site_is_a_place_to_return_to(target):
    assert safe_next(target, HOME) == HOME


@pytest.mark.parametrize("target", ["/can-bo/viec", "/can-bo/ho-so/H56-2026-000001?da=tiep-nhan",
                                    "/lanh-dao?from=2026-01-01&to=2026-12-31", "/", "/can-bo/tim?q=Tr%E1%BA%A7n"])
def test_a_path_of_this_site_is_returned_to(target):
    assert safe_next(target, HOME) == target


def console_login(api, next_target: str) -> requests.Response:
    """The console's login form posted with `tiep` (where to return to) as the browser sends it."""
    http = requests.Session()
    form = http.get(f"{api.url}/can-bo/dang-nhap", params={"tiep": next_target}, timeout=30)
    return http.post(f"{api.url}/can-bo/dang-nhap", allow_redirects=False, timeout=30,
                     data={"username": f"receptionist@{COMMUNE}", "password": "demo", "tiep": next_target,
                           "csrf": CSRF.search(form.text).group(1)})


def test_the_login_does_not_send_the_officer_to_another_site(api):
    """The reported redirect: `?tiep=/%09/evil.example` sent the officer to `//evil.example`."""
    for target in ("/\t/evil.example", "/\\evil.example", "//evil.example", "https://evil.example"):
        answer = console_login(api, target)
        assert (answer.status_code, answer.headers["Location"]) == (303, HOME), target
    assert console_login(api, "/can-bo/viec").headers["Location"] == "/can-bo/viec"


@pytest.mark.parametrize("opening, closing, levels", [("[", "]", 200_000), ('{"a":', "}", 150_000)])
def test_json_nested_200000_levels_deep_is_refused_before_parsing(api, opening, closing, levels):
    """It answered 500: the parser's recursion overflowed (objects: fewer levels fit in the size limit)."""
    body = opening * levels + "1" + closing * levels
    response = requests.post(f"{api.url}/api/v1/auth/token", data=body, timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert "nests deeper than" in response.json()["error"]["message"]


def test_brackets_inside_strings_are_text_not_nesting(api):
    text = '[{"x": "]]]}}}' + "[" * 100 + '\\"' + "{" * 100 + '"}]'
    response = requests.post(f"{api.url}/api/v1/auth/token", data=text, timeout=30,
                             headers={"Content-Type": "application/json"})
    # parsed: then refused by the schema (a list, not the login's object), never as nesting or JSON
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_a_multipart_dossier_part_is_bounded_alike(api):
    response = requests.post(f"{api.url}/api/v1/dossiers", timeout=30,
                             files={"dossier": (None, "[" * 200_000 + "]" * 200_000, "application/json")})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_json")


def test_an_oversize_body_is_refused_before_it_is_read(api):
    response = requests.post(f"{api.url}/api/v1/auth/token", data=b"[" + b"1," * 600_000 + b"1]", timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == {"code": "payload_too_large", "message": "request body too large",
                                        "field": None}


PROXY = "10.1.2.3"


def resolved(peer: str, forwarded_for: str | None = None, proto: str | None = None,
             trusted: str = f"{PROXY}, 192.168.0.0/24") -> tuple[str, str]:
    environ = {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http"}
    if forwarded_for is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded_for
    if proto is not None:
        environ["HTTP_X_FORWARDED_PROTO"] = proto
    Proxies(trusted_networks(trusted)).resolve(environ)
    return environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]


def test_forwarding_headers_are_believed_from_trusted_proxies_only():
    # anyone may send them: from a client that is not a trusted proxy they change nothing
    assert resolved("203.0.113.7", "198.51.100.1", "https") == ("203.0.113.7", "http")
    assert resolved("203.0.113.7", "198.51.100.1", "https", trusted="") == ("203.0.113.7", "http")
    # from the proxy: the client it was connected from, and the scheme it was reached over
    assert resolved(PROXY, "198.51.100.1", "https") == ("198.51.100.1", "https")
    # a chain of trusted proxies is walked from the right; what the client wrote on the left is ignored
    assert resolved(PROXY, "6.6.6.6, 198.51.100.1, 192.168.0.9", "https") == ("198.51.100.1", "https")
    assert resolved(PROXY, "evil, 198.51.100.1") == ("198.51.100.1", "http")
    # what no proxy writes (not an address) proves nothing: the proxy stays the client
    assert resolved(PROXY, "198.51.100.1, not-an-address") == (PROXY, "http")
    assert resolved(PROXY, None, "ftp") == (PROXY, "http")
    # every hop a trusted proxy: the left-most is the client
    assert resolved(PROXY, "192.168.0.5, 192.168.0.9") == ("192.168.0.5", "http")
    assert resolved("2001:db8::1", "198.51.100.1", trusted="2001:db8::/32") == ("198.51.100.1", "http")


def test_a_trusted_proxies_setting_that_is_not_addresses_stops_the_start():
    with pytest.raises(SystemExit, match="MOTCUA_TRUSTED_PROXIES: 'proxy.local' is not an IP address"):
        trusted_networks("10.0.0.0/8, proxy.local")


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory):
    """A gateway behind a TLS-terminating proxy on this machine (127.0.0.1 trusted); services mocked."""
    from tests.security.conftest import mocked_gateway

    embedded.install()
    urls = migrated_sqlite_urls(tmp_path_factory.mktemp("proxied"))
    seed_demo_accounts(urls["gateway"], catalog_dir())
    gateway = mocked_gateway(urls, TRUSTED_PROXIES="127.0.0.1")
    yield gateway
    gateway.container.stop()


def forwarded(client: str, proto: str = "https") -> dict:
    return {"X-Forwarded-For": client, "X-Forwarded-Proto": proto}


def test_a_client_cannot_name_its_own_address_without_a_trusted_proxy(api):
    """Rotating X-Forwarded-For must not escape the limit per address, nor forge the audit log's address."""
    for n in range(THROTTLE["LOGIN_MAX_FAILURES_PER_ADDRESS"]):
        requests.post(f"{api.url}/api/v1/auth/token", json={"username": f"guess{n}@x", "password": "guess"},
                      headers=forwarded(f"198.51.100.{n}"), timeout=30)
    answer = requests.post(f"{api.url}/api/v1/auth/token", json={"username": "guess-again@x", "password": "guess"},
                           headers=forwarded("198.51.100.200"), timeout=30)
    assert answer.status_code == 429
    assert {entry.remote_addr for entry in audit_entries(api, action="auth.token")} == {"127.0.0.1"}


def test_behind_a_trusted_proxy_each_client_has_its_own_address(behind_proxy):
    for n in range(THROTTLE["LOGIN_MAX_FAILURES_PER_ADDRESS"]):
        requests.post(f"{behind_proxy.url}/api/v1/auth/token", json={"username": f"guess{n}@x", "password": "guess"},
                      headers=forwarded("198.51.100.1"), timeout=30)
    still_guessing = requests.post(f"{behind_proxy.url}/api/v1/auth/token", headers=forwarded("198.51.100.1"),
                                   json={"username": "one-more@x", "password": "guess"}, timeout=30)
    assert still_guessing.status_code == 429
    # another client of the same proxy is not the guesser
    other = requests.post(f"{behind_proxy.url}/api/v1/auth/token", headers=forwarded("198.51.100.2"),
                          json={"username": f"leader@{OTHER_COMMUNE}", "password": "demo"}, timeout=30)
    assert other.status_code == 200
    addresses = {entry.remote_addr for entry in audit_entries(behind_proxy, action="auth.token")}
    assert addresses == {"198.51.100.1", "198.51.100.2"}


def session_cookie(target, headers: dict | None = None) -> tuple[str, requests.Response]:
    """The console's login; its nonce cookie sent back by hand (a browser would over HTTPS, and the
    test's client connects over plain HTTP, over which a cookie marked `Secure` is not sent back)."""
    form = requests.get(f"{target.url}/can-bo/dang-nhap", headers=headers, timeout=30)
    answer = requests.post(f"{target.url}/can-bo/dang-nhap", allow_redirects=False, timeout=30,
                           headers=headers, cookies={"motcua_login": form.cookies["motcua_login"]},
                           data={"username": f"receptionist@{COMMUNE}", "password": "demo",
                                 "csrf": CSRF.search(form.text).group(1)})
    assert answer.status_code == 303, answer.text
    return answer.headers["Set-Cookie"], answer


def test_behind_a_tls_proxy_the_session_cookie_is_secure_and_hsts_is_sent(behind_proxy):
    cookie, answer = session_cookie(behind_proxy, forwarded("198.51.100.3"))
    assert "motcua_session=" in cookie and "Secure" in cookie
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_a_client_claiming_https_itself_gets_neither(api):
    cookie, answer = session_cookie(api, forwarded("198.51.100.3"))
    assert "Secure" not in cookie and "Strict-Transport-Security" not in answer.headers


def test_in_production_the_session_cookie_is_always_secure_and_hsts_always_sent(api, monkeypatch):
    monkeypatch.setenv("MOTCUA_ENV", "production")
    cookie, answer = session_cookie(api)
    assert "Secure" in cookie and answer.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" in requests.get(f"{api.url}/api/v1/agencies", timeout=30).headers


def test_answers_carrying_personal_data_are_not_kept_nor_sniffed(api):
    api.intake.get_dossier.return_value = {"code": "H56-1", "applicant": {"id_number": "038190012345"}}
    headers = bearer(gateway_token(f"receptionist@{COMMUNE}", COMMUNE, "receptionist"))
    answers = {
        "a dossier": requests.get(f"{api.url}/api/v1/dossiers/H56-1", headers=headers, timeout=30),
        "an error": requests.get(f"{api.url}/api/v1/dossiers/H56-1", timeout=30),
        "no such route": requests.get(f"{api.url}/api/v1/no-such-thing", timeout=30),
        "a token": login(api, f"leader@{COMMUNE}"),
        "a page": requests.get(f"{api.url}/can-bo/dang-nhap", timeout=30),
    }
    for what, answer in answers.items():
        assert answer.headers["Cache-Control"] == "no-store", what
        assert answer.headers["X-Content-Type-Options"] == "nosniff", what
        assert "Strict-Transport-Security" not in answer.headers, what  # plain HTTP, not production


def test_static_assets_may_be_kept(api):
    answer = requests.get(f"{api.url}/static/motcua.css", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "public, max-age=3600"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


@pytest.fixture
def short_sessions(tmp_path):
    """A gateway (services mocked) whose staff tokens live 4 seconds."""
    from tests.security.conftest import mocked_gateway
    embedded.install()
    urls = migrated_sqlite_urls(tmp_path)
    seed_demo_accounts(urls["gateway"], catalog_dir())
    gateway = mocked_gateway(urls, TOKEN_TTL_SECONDS=4)
    yield gateway
    gateway.container.stop()


def test_an_active_officers_session_slides_revoking_the_old_token_and_keeping_the_forms(short_sessions):
    import time
    http = requests.Session()
    form = http.get(f"{short_sessions.url}/can-bo/dang-nhap", timeout=30)
    http.post(f"{short_sessions.url}/can-bo/dang-nhap", timeout=30, allow_redirects=False, data={
        "username": f"receptionist@{COMMUNE}", "password": "demo", "csrf": CSRF.search(form.text).group(1)})
    old, search = http.cookies["motcua_session"], f"{short_sessions.url}/can-bo/tim-kiem"
    csrf = CSRF.search(http.get(search, timeout=30).text).group(1)
    time.sleep(2.5)  # past half the token's life, the officer still at work
    page = http.get(search, timeout=30, allow_redirects=False)
    assert page.status_code == 200 and "motcua_session=" in page.headers["Set-Cookie"]
    assert http.cookies["motcua_session"] != old
    assert CSRF.search(page.text).group(1) == csrf  # a form rendered before the renewal is still good
    assert "phiên đăng nhập đến " in page.text  # every page says until when, and that it slides
    alone = requests.get(search, cookies={"motcua_session": old}, allow_redirects=False, timeout=30)
    assert alone.status_code == 303 and "/can-bo/dang-nhap" in alone.headers["Location"]  # the old one revoked
    [renewal] = audit_entries(short_sessions, action="auth.renew")
    assert renewal.username == f"receptionist@{COMMUNE}"
    time.sleep(2.5)  # 5 s after signing in: the first token would have expired, the session has not
    assert http.get(search, timeout=30, allow_redirects=False).status_code == 200


def console_sign_in(target, http: requests.Session, tiep: str = "") -> requests.Response:
    form = http.get(f"{target.url}/can-bo/dang-nhap", params={"tiep": tiep} if tiep else None, timeout=30)
    return http.post(f"{target.url}/can-bo/dang-nhap", timeout=30, allow_redirects=False, data={
        "username": f"receptionist@{COMMUNE}", "password": "demo", "tiep": tiep,
        "csrf": CSRF.search(form.text).group(1)})


def test_stay_signed_in_renews_now_revoking_the_old_token(short_sessions):
    """'Tiếp tục làm việc' (static/session.js posts it for JSON): a new token before half its life, the
    old one refused, audited; the page runs only the gateway's own script (CSP), and says when to warn."""
    http, search = requests.Session(), f"{short_sessions.url}/can-bo/tim-kiem"
    console_sign_in(short_sessions, http)
    page = http.get(search, timeout=30)
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'; connect-src 'self'" in policy and "unsafe" not in policy
    assert "default-src 'none'" in policy and "form-action 'self'" in policy
    assert '<script src="/static/session.js" defer></script>' in page.text and "<script>" not in page.text
    assert re.search(r'id="session-warning" hidden data-expires-in="[34]" data-warn-before="120"', page.text)
    script = requests.get(f"{short_sessions.url}/static/session.js", timeout=30)
    assert script.headers["Content-Type"].startswith("text/javascript") and "Tiếp tục làm việc" in script.text
    public = requests.get(f"{short_sessions.url}/can-bo/dang-nhap", timeout=30)
    assert "script-src" not in public.headers["Content-Security-Policy"]  # no session, no script

    old = http.cookies["motcua_session"]
    renewed = http.post(f"{short_sessions.url}/can-bo/phien", data={"csrf": CSRF.search(page.text).group(1)},
                        headers={"Accept": "application/json"}, timeout=30)
    assert renewed.status_code == 200 and renewed.json()["expires_in"] == 4
    assert re.fullmatch(r"\d\d:\d\d", renewed.json()["ends_at"])
    assert http.cookies["motcua_session"] != old
    alone = requests.get(search, cookies={"motcua_session": old}, allow_redirects=False, timeout=30)
    assert alone.status_code == 303 and "/can-bo/dang-nhap" in alone.headers["Location"]
    assert http.get(search, timeout=30, allow_redirects=False).status_code == 200
    assert [e.username for e in audit_entries(short_sessions, action="auth.renew")] == [f"receptionist@{COMMUNE}"]

    forged = http.post(f"{short_sessions.url}/can-bo/phien", data={"csrf": "x"}, timeout=30, allow_redirects=False)
    assert forged.status_code == 403  # a form of another site: refused, nothing renewed
    without_script = http.post(f"{short_sessions.url}/can-bo/phien", data={"csrf": CSRF.search(page.text).group(1)},
                               headers={"Referer": search}, timeout=30, allow_redirects=False)
    assert (without_script.status_code, without_script.headers["Location"]) == (303, "/can-bo/tim-kiem")
    assert len(audit_entries(short_sessions, action="auth.renew")) == 2


def test_a_long_input_posted_after_the_session_ended_is_there_after_signing_in_again(short_sessions):
    """Kept server-side, not in a cookie: 20,000 characters come back whole, on the page they were typed on."""
    import time
    http, search = requests.Session(), f"{short_sessions.url}/can-bo/tim-kiem"
    console_sign_in(short_sessions, http)
    csrf = CSRF.search(http.get(search, timeout=30).text).group(1)
    time.sleep(4.5)  # the token has expired
    name = "Nguyễn Văn " + "A" * 20_000
    posted = http.post(search, data={"csrf": csrf, "name": name, "status": "received"}, timeout=30,
                       headers={"Referer": search}, allow_redirects=False)
    assert posted.status_code == 303 and posted.headers["Location"] == "/can-bo/dang-nhap?tiep=%2Fcan-bo%2Ftim-kiem"
    cookie = next(c for c in http.cookies if c.name == "motcua_pending")
    assert len(cookie.value) < 100 and cookie.path == "/can-bo"  # a name, not the input
    assert console_sign_in(short_sessions, http, "/can-bo/tim-kiem").headers["Location"] == "/can-bo/tim-kiem"
    page = http.get(search, timeout=30)
    assert f'name="name" value="{name}"' in page.text and "Nội dung bạn đã nhập được giữ lại" in page.text
    assert "motcua_pending=;" in page.headers["Set-Cookie"]  # shown once
    assert f'value="{name}"' not in http.get(search, timeout=30).text

    stranger = requests.post(search, data={"csrf": "forged", "name": "x"}, cookies={"motcua_sid": "s"},
                             timeout=30, allow_redirects=False)
    assert stranger.status_code == 303 and "motcua_pending" not in stranger.headers.get("Set-Cookie", "")
