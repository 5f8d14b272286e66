"""The gateway's HTTP edge against a network attacker: where a login may send the officer back to,
the client address and scheme behind trusted proxies only, the headers of every answer, and bodies
too large or too deeply nested to parse."""
from __future__ import annotations

import re

import pytest
import requests

from services.gateway.pages_http import safe_next
from tests.security.conftest import COMMUNE

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
