"""Citizens sign in with VNeID (OpenID Connect, authorization code + PKCE) against the local provider
(motcua/simulators/oidc.py), end to end over HTTP (embedded bus, SQLite): "my dossiers" as intake authorises
it, a submission without retyping name and ID number, a withdrawal without the tracking key; a forged
ID token, a callback not ours, a provider down, slow or answering garbage are refused (and audited)."""
from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from motcua.metrics import metrics_for
from motcua.simulators.oidc import OidcSimulator
from tests.documents import form_files, required_documents, required_uploads
from tests.infra import gateway_token, intake_behind_gateway

BINH, AN = "038190012345", "001085004321"  # the simulator's test citizens
PROCEDURE = "1.012786"
DOCUMENTS = required_uploads(PROCEDURE)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    provider = OidcSimulator().start()
    settings = {"VNEID_ISSUER": provider.issuer, "VNEID_TIMEOUT_SECONDS": "1"}
    with intake_behind_gateway(tmp_path_factory, "gateway-vneid", settings) as (url, _intake, gateway, _config):
        admin = gateway_token("admin", None, "admin", ttl=600)
        yield SimpleNamespace(url=url, provider=provider, gateway=gateway, admin={"Authorization": f"Bearer {admin}"})
    provider.stop()


def start(api) -> tuple[requests.Session, str]:
    """The browser's first two hops: our login route, then the provider's authorization endpoint."""
    browser = requests.Session()
    login = browser.get(f"{api.url}/api/v1/auth/vneid/login", allow_redirects=False, timeout=10)
    assert login.status_code == 302, login.text
    authorize = login.headers["Location"]
    asked = parse_qs(urlsplit(authorize).query)
    assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"][0] and asked["nonce"][0]
    return browser, authorize


def sign_in(api, citizen: str) -> tuple[requests.Session, requests.Response]:
    browser, authorize = start(api)
    consent = browser.get(f"{authorize}&login_hint={citizen}", allow_redirects=False, timeout=10)
    assert consent.status_code == 302
    return browser, browser.get(consent.headers["Location"], allow_redirects=False, timeout=10)


def token_of(api, citizen: str) -> dict:
    _, callback = sign_in(api, citizen)
    assert callback.status_code == 200, callback.text
    return {"Authorization": f"Bearer {callback.json()['access_token']}"}


def denied_sign_ins(api) -> int:
    answer = requests.get(f"{api.url}/api/v1/audit", params={"action": "auth.vneid", "outcome": "denied"},
                          headers=api.admin, timeout=10).json()
    return answer["total"]


def test_a_citizen_signs_in_submits_without_retyping_sees_their_dossiers_and_withdraws_without_the_key(api):
    binh = token_of(api, BINH)
    submitted = requests.post(f"{api.url}/api/v1/dossiers", headers=binh, timeout=10, json={
        "procedure_code": PROCEDURE, "channel": "online", "documents": DOCUMENTS, "applicant": {"phone": "0987654321"}})
    assert submitted.status_code == 201, submitted.text
    dossier = submitted.json()
    assert (dossier["applicant"]["full_name"], dossier["applicant"]["id_number"]) == ("Trần Thị Bình", BINH)
    # A name typed over the identity's is not taken: the verified one is.
    typed = requests.post(f"{api.url}/api/v1/dossiers", headers=binh, timeout=10, json={
        "procedure_code": PROCEDURE, "channel": "online", "documents": DOCUMENTS,
        "applicant": {"full_name": "Người Khác", "id_number": AN, "phone": "0987654321"}})
    assert typed.json()["applicant"]["id_number"] == BINH
    # An anonymous submission of someone else's is not hers; one made for her anonymously is.
    for id_number in (AN, BINH):
        anonymous = requests.post(f"{api.url}/api/v1/dossiers", timeout=10, json={
            "procedure_code": PROCEDURE, "channel": "online", "documents": DOCUMENTS,
            "applicant": {"full_name": "Ai Đó", "id_number": id_number, "phone": "0911111111"}})
        assert anonymous.status_code == 201, anonymous.text  # anonymous submission stays possible

    mine = requests.get(f"{api.url}/api/v1/me/dossiers", headers=binh, timeout=10)
    assert mine.status_code == 200, mine.text
    assert mine.json()["total"] == 3 and dossier["code"] in {d["code"] for d in mine.json()["items"]}

    own = requests.get(f"{api.url}/api/v1/dossiers/{dossier['code']}", headers=binh, timeout=10)
    assert own.status_code == 200 and own.json()["applicant"]["id_number"] == BINH
    an = token_of(api, AN)
    assert requests.get(f"{api.url}/api/v1/me/dossiers", headers=an, timeout=10).json()["total"] == 1
    assert requests.get(f"{api.url}/api/v1/dossiers/{dossier['code']}", headers=an, timeout=10).status_code == 404
    # Her dossier is not his to withdraw: answered as an unknown code.
    foreign = requests.post(f"{api.url}/api/v1/dossiers/{dossier['code']}/withdraw", headers=an, timeout=10,
                            json={"reason": "không cần nữa"})
    assert foreign.status_code == 404, foreign.text
    withdrawn = requests.post(f"{api.url}/api/v1/dossiers/{dossier['code']}/withdraw", headers=binh, timeout=10,
                              json={"reason": "Tôi nộp nhầm thủ tục"})
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"

    # A citizen is no officer: staff routes refuse her.
    search = requests.post(f"{api.url}/api/v1/dossiers/search", headers=binh, json={}, timeout=10)
    assert search.status_code == 403
    registry = metrics_for(api.gateway).registry
    assert registry.get_sample_value("motcua_oidc_logins_total", {"provider": "vneid", "outcome": "signed_in"}) >= 2


def test_my_dossiers_needs_a_citizen(api):
    officer = {"Authorization": f"Bearer {gateway_token('receptionist@000.20.01.H56', '000.20.01.H56', 'receptionist')}"}
    assert requests.get(f"{api.url}/api/v1/me/dossiers", headers=officer, timeout=10).status_code == 403
    assert requests.get(f"{api.url}/api/v1/me/dossiers", timeout=10).status_code == 401


def test_a_forged_id_token_is_refused_and_audited(api):
    before = denied_sign_ins(api)
    api.provider.forge = True
    try:
        _, callback = sign_in(api, BINH)
    finally:
        api.provider.forge = False
    assert callback.status_code == 401, callback.text
    assert "signature" in callback.json()["error"]["message"]
    assert denied_sign_ins(api) == before + 1
    registry = metrics_for(api.gateway).registry
    assert registry.get_sample_value("motcua_oidc_logins_total", {"provider": "vneid", "outcome": "refused"}) >= 1


def test_a_callback_not_started_here_or_with_another_state_is_refused_and_audited(api):
    before = denied_sign_ins(api)
    browser, authorize = start(api)
    consent = requests.get(f"{authorize}&login_hint={BINH}", allow_redirects=False, timeout=10)
    callback = consent.headers["Location"]
    # another browser (no cookie: a link an attacker sends), then the right browser with a changed state
    assert requests.get(callback, allow_redirects=False, timeout=10).status_code == 401
    changed = callback.replace("state=", "state=x")
    assert browser.get(changed, allow_redirects=False, timeout=10).status_code == 401
    assert denied_sign_ins(api) == before + 2


@pytest.mark.parametrize("fault", ["down", "slow", "garbage"])
def test_a_provider_down_slow_or_answering_garbage_is_503(api, fault):
    browser, authorize = start(api)
    consent = browser.get(f"{authorize}&login_hint={BINH}", allow_redirects=False, timeout=10)
    api.provider.faults.play(fault, seconds=2.0)
    try:
        callback = browser.get(consent.headers["Location"], allow_redirects=False, timeout=20)
    finally:
        api.provider.faults.clear()
    assert callback.status_code == 503, callback.text
    assert "Retry-After" in callback.headers


def test_staff_single_sign_on_takes_the_accounts_roles_and_refuses_an_unknown_officer(api, monkeypatch):
    from services.gateway.api_vneid import OidcProviders
    from services.gateway.vneid import OidcClient, OidcMetrics, OidcSettings
    from prometheus_client import CollectorRegistry
    providers = next(d for d in api.gateway.dependencies if isinstance(d, OidcProviders))
    monkeypatch.setenv("STAFF_OIDC_ISSUER", api.provider.issuer)
    settings = OidcSettings.from_env("STAFF_OIDC", "staff-sso",
                                     f"{api.url}/api/v1/auth/staff-sso/callback")
    monkeypatch.setitem(providers.clients, "staff-sso", OidcClient(settings, OidcMetrics(CollectorRegistry())))

    def sso(username):
        browser = requests.Session()
        login = browser.get(f"{api.url}/api/v1/auth/staff-sso/login", allow_redirects=False, timeout=10)
        consent = browser.get(f"{login.headers['Location']}&login_hint={username}", allow_redirects=False, timeout=10)
        return browser.get(consent.headers["Location"], allow_redirects=False, timeout=10)

    signed_in = sso("receptionist@000.20.01.H56")
    assert signed_in.status_code == 200, signed_in.text
    officer = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    search = requests.post(f"{api.url}/api/v1/dossiers/search", headers=officer, json={}, timeout=10)
    assert search.status_code == 200, search.text  # the account's own role and agency
    assert sso("former@000.20.01.H56").status_code == 401  # the provider knows them, Motcua has no account


def test_a_citizen_supplements_without_the_tracking_key(api):
    import base64
    binh = token_of(api, BINH)
    code = requests.post(f"{api.url}/api/v1/dossiers", headers=binh, timeout=10, json={
        "procedure_code": PROCEDURE, "channel": "online", "documents": DOCUMENTS, "applicant": {"phone": "0987654321"}}).json()["code"]
    counter = {"Authorization": f"Bearer {gateway_token('receptionist@000.20.01.H56', '000.20.01.H56', 'receptionist')}"}
    asked = requests.post(f"{api.url}/api/v1/dossiers/{code}/request-supplement", headers=counter, timeout=10,
                          json={"items": ["Giấy xác nhận niêm yết"]})
    assert asked.status_code == 200, asked.text
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    supplied = requests.post(f"{api.url}/api/v1/dossiers/{code}/supplement", headers=binh, timeout=10, json={
        "documents": [{"key": "xac_nhan_niem_yet", "filename": "niem-yet.png",
                       "content_base64": base64.b64encode(png).decode()}]})
    assert supplied.status_code == 200, supplied.text
    assert supplied.json()["history"][-1]["actor"] == "applicant"


def test_the_portals_vneid_button_signs_the_browser_in_and_lands_on_my_dossiers(api):
    """Issue 15: the portal offers "Đăng nhập bằng VNeID" when VNeID is configured; a sign-in started there
    comes back to the same callback, which sets the citizen's cookie and lands on "my dossiers"."""
    home = requests.get(f"{api.url}/", timeout=10)
    assert home.status_code == 200 and 'href="/dang-nhap-vneid">Đăng nhập bằng VNeID' in home.text
    assert requests.get(f"{api.url}/ho-so-cua-toi", allow_redirects=False, timeout=10).headers["Location"] \
        == "/dang-nhap-vneid"  # no session: to the sign-in
    anonymous = requests.post(f"{api.url}/api/v1/dossiers", timeout=10, json={  # made for An at a counter's pace
        "procedure_code": PROCEDURE, "channel": "online", "documents": DOCUMENTS,
        "applicant": {"full_name": "Nguyễn Văn An", "id_number": AN, "phone": "0911111111"}})
    assert anonymous.status_code == 201, anonymous.text

    browser = requests.Session()
    login = browser.get(f"{api.url}/dang-nhap-vneid", allow_redirects=False, timeout=10)
    assert login.status_code == 302 and login.headers["Location"].startswith(api.provider.issuer)
    consent = browser.get(f"{login.headers['Location']}&login_hint={AN}", allow_redirects=False, timeout=10)
    callback = browser.get(consent.headers["Location"], allow_redirects=False, timeout=10)
    assert callback.status_code == 303, callback.text
    assert callback.headers["Location"] == "/ho-so-cua-toi"
    cookie = next(c for c in browser.cookies if c.name == "motcua_citizen")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.path == "/"
    mine = browser.get(f"{api.url}/ho-so-cua-toi", timeout=10)
    assert mine.status_code == 200, mine.text
    assert "Hồ sơ của tôi" in mine.text and anonymous.json()["code"] in mine.text
    assert AN not in mine.text  # the page names the dossiers, never the ID number
    # the API's own sign-in still answers JSON
    assert "access_token" in sign_in(api, BINH)[1].json()


def test_my_dossiers_page_is_a_citizens_only(api):
    officer = gateway_token("receptionist@000.20.01.H56", "000.20.01.H56", "receptionist")
    page = requests.get(f"{api.url}/ho-so-cua-toi", cookies={"motcua_citizen": officer}, allow_redirects=False,
                        timeout=10)
    assert page.status_code == 303 and page.headers["Location"] == "/dang-nhap-vneid"


def test_a_citizen_callers_repr_holds_no_id_number_nor_name():
    from motcua.identity import CITIZEN_ROLE, Caller

    caller = Caller("vneid:subject", None, (CITIZEN_ROLE,), citizen_id="038190012345", citizen_name="Nguyễn Văn An")
    assert "038190012345" not in repr(caller) and "Nguyễn" not in repr(caller) and caller.is_citizen


def portal_browser(api, citizen: str) -> requests.Session:
    """A browser signed in on the portal with VNeID (the citizen cookie)."""
    browser = requests.Session()
    login = browser.get(f"{api.url}/dang-nhap-vneid", allow_redirects=False, timeout=10)
    consent = browser.get(f"{login.headers['Location']}&login_hint={citizen}", allow_redirects=False, timeout=10)
    assert browser.get(consent.headers["Location"], allow_redirects=False, timeout=10).status_code == 303
    return browser


def portal_submit(browser, api, fields: dict) -> requests.Response:
    form = browser.get(f"{api.url}/thu-tuc/{PROCEDURE}/nop-ho-so", timeout=10)
    key = form.text.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
    return browser.post(f"{api.url}/thu-tuc/{PROCEDURE}/nop-ho-so", data={"idempotency_key": key, **fields},
                        files=form_files(required_documents(PROCEDURE)), allow_redirects=False, timeout=10)


def test_the_portal_form_takes_name_and_id_number_from_the_vneid_sign_in_never_from_the_post(api):
    """Issue 15: signed in, the form shows the identity read-only and asks only the rest; a POST that
    carries another name and ID number (a forged form) still makes the dossier the identity's."""
    binh = portal_browser(api, BINH)
    form = binh.get(f"{api.url}/thu-tuc/{PROCEDURE}/nop-ho-so", timeout=10)
    assert form.status_code == 200, form.text
    assert 'name="applicant.id_number"' not in form.text and 'name="applicant.full_name"' not in form.text
    assert "Trần Thị Bình" in form.text and BINH in form.text and 'name="applicant.phone"' in form.text

    posted = portal_submit(binh, api, {"applicant.full_name": "Người Khác", "applicant.id_number": AN,
                                       "applicant.phone": "0987654321"})
    assert posted.status_code == 303 and posted.headers["Location"].endswith("/bien-nhan"), posted.text
    code = posted.headers["Location"].split("/")[2]
    staff = requests.get(f"{api.url}/api/v1/dossiers/{code}", headers=api.admin, timeout=10).json()
    assert (staff["applicant"]["full_name"], staff["applicant"]["id_number"]) == ("Trần Thị Bình", BINH)
    receipt = binh.get(f"{api.url}{posted.headers['Location']}", timeout=10)
    assert f'href="/ho-so/{code}"' in receipt.text  # her own dossier's page, no tracking key
    own = binh.get(f"{api.url}/ho-so/{code}", timeout=10)
    assert own.status_code == 200 and "Trần Thị Bình" in own.text and "Rút hồ sơ" in own.text
    mine = binh.get(f"{api.url}/ho-so-cua-toi", timeout=10)
    assert code in mine.text
    # An, the ID number the forged form named, neither sees it nor acts on it.
    an = portal_browser(api, AN)
    assert code not in an.get(f"{api.url}/ho-so-cua-toi", timeout=10).text
    assert an.get(f"{api.url}/ho-so/{code}", timeout=10).status_code == 404
    assert an.post(f"{api.url}/ho-so/{code}/rut", data={"reason": "x"}, timeout=10).status_code == 404

    # Without the sign-in, the portal still takes an anonymous submission, typed in full.
    anonymous = portal_submit(requests.Session(), api, {"applicant.full_name": "Lê Văn Cường",
                                                        "applicant.id_number": "001099001122",
                                                        "applicant.phone": "0911222333"})
    assert anonymous.status_code == 303, anonymous.text
    other = requests.get(f"{api.url}/api/v1/dossiers/{anonymous.headers['Location'].split('/')[2]}",
                         headers=api.admin, timeout=10).json()
    assert other["applicant"]["id_number"] == "001099001122"
    assert requests.get(f"{api.url}/ho-so/{code}", allow_redirects=False, timeout=10).headers["Location"] \
        == f"/tra-cuu?code={code}"  # no session: public tracking, with its key

    # She withdraws it on the portal with neither tracking key nor ID number.
    withdraw_form = binh.get(f"{api.url}/ho-so/{code}/rut", timeout=10)
    assert withdraw_form.status_code == 200 and 'name="id_number"' not in withdraw_form.text
    key = withdraw_form.text.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
    done = binh.post(f"{api.url}/ho-so/{code}/rut", data={"idempotency_key": key, "reason": "Nộp nhầm"}, timeout=10)
    assert done.status_code == 200 and "Đã rút hồ sơ" in done.text, done.text
    assert requests.get(f"{api.url}/api/v1/dossiers/{code}", headers=api.admin, timeout=10).json()["status"] \
        == "withdrawn"
