"""The staff console and the leaders' dashboard over HTTP: the session cookie, CSRF on every POST form,
the counter's decisions, the inbox, search, forms as PDF, the dashboard's charts and its export."""
from __future__ import annotations

import re
from datetime import date

import pytest
import requests

from services.gateway import pages_dashboard

from tests.intake.test_forms import text_of
from tests.pages.client import AGENCY, APPLICANT, PROCEDURE, Officer, csrf_of, submitted_code, task_id_in, until

pytestmark = pytest.mark.e2e  # the platform in its own process, over HTTP


def test_the_console_wants_a_session_and_the_cookie_is_httponly_and_strict(base_url):
    anonymous = requests.get(f"{base_url}/can-bo/viec", allow_redirects=False, timeout=30)
    assert anonymous.status_code == 303
    assert anonymous.headers["Location"] == "/can-bo/dang-nhap?tiep=%2Fcan-bo%2Fviec"
    officer = Officer(base_url, f"receptionist@{AGENCY}")
    cookie = officer.login.headers["Set-Cookie"]
    assert "motcua_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert officer.login.headers["Location"] == "/can-bo"


def test_a_form_posted_after_the_session_expired_returns_to_its_page_after_sign_in_not_to_a_405(base_url):
    page = f"{base_url}/can-bo/viec/abc?x=1"
    posted = requests.post(f"{base_url}/can-bo/viec/abc/approve", data={"note": "x"}, allow_redirects=False,
                           headers={"Referer": page}, timeout=30)
    assert posted.status_code == 303
    assert posted.headers["Location"] == "/can-bo/dang-nhap?tiep=%2Fcan-bo%2Fviec%2Fabc%3Fx%3D1"
    elsewhere = requests.post(f"{base_url}/can-bo/viec/abc/approve", allow_redirects=False, timeout=30,
                              headers={"Referer": "https://evil.example/can-bo/viec"})
    assert elsewhere.headers["Location"] == "/can-bo/dang-nhap?tiep=%2Fcan-bo"


def test_a_wrong_password_or_a_forged_login_form_is_refused(base_url):
    http = requests.Session()
    csrf = csrf_of(http.get(f"{base_url}/can-bo/dang-nhap", timeout=30).text)
    wrong = http.post(f"{base_url}/can-bo/dang-nhap", timeout=30,
                      data={"username": f"receptionist@{AGENCY}", "password": "nope", "csrf": csrf})
    assert wrong.status_code == 401 and "Sai tên đăng nhập hoặc mật khẩu" in wrong.text
    forged = requests.post(f"{base_url}/can-bo/dang-nhap", timeout=30,
                           data={"username": f"receptionist@{AGENCY}", "password": "demo", "csrf": csrf})
    assert forged.status_code == 400 and "motcua_session" not in forged.headers.get("Set-Cookie", "")


def test_the_console_login_is_throttled_like_the_api(base_url):
    http, username = requests.Session(), "specialist@000.00.31.H56"
    for password in ["nope"] * 5 + ["demo"]:
        csrf = csrf_of(http.get(f"{base_url}/can-bo/dang-nhap", timeout=30).text)
        answer = http.post(f"{base_url}/can-bo/dang-nhap", timeout=30, allow_redirects=False,
                           data={"username": username, "password": password, "csrf": csrf})
    assert answer.status_code == 429 and "Đăng nhập sai quá nhiều lần" in answer.text  # even the right password


def test_a_post_without_the_session_csrf_token_is_refused(base_url):
    code = submitted_code(base_url)
    officer = Officer(base_url, f"receptionist@{AGENCY}")
    response = officer.http.post(f"{base_url}/can-bo/ho-so/{code}/tiep-nhan", data={"csrf": "x"}, timeout=30)
    assert response.status_code == 403 and "Không có quyền" in response.text
    assert "Mới đăng ký" in officer.get(f"/can-bo/ho-so/{code}").text  # nothing happened


def test_the_counter_receives_refuses_and_prints_the_forms(base_url):
    received, refused = submitted_code(base_url), submitted_code(base_url)
    counter = Officer(base_url, f"receptionist@{AGENCY}")
    queue = until(lambda: counter.get("/can-bo"), refused)
    assert "Chờ tiếp nhận" in queue.text and received in queue.text and "Trần T. B." in queue.text
    done = counter.post(f"/can-bo/ho-so/{received}/tiep-nhan")
    assert done.status_code == 303 and done.headers["Location"] == f"/can-bo/ho-so/{received}?da=tiep-nhan"
    page = counter.get(done.headers["Location"])
    assert "Đã tiếp nhận hồ sơ" in page.text and APPLICANT["id_number"] in page.text  # staff are entitled
    pdf = counter.get(f"/can-bo/ho-so/{received}/mau/01")
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    document = page.text.split(f"/can-bo/ho-so/{received}/tai-lieu/", 1)[1].split('"', 1)[0]
    assert counter.get(f"/can-bo/ho-so/{received}/tai-lieu/{document}").content.startswith(b"%PDF-")
    again = counter.post(f"/can-bo/ho-so/{received}/tiep-nhan")
    assert again.status_code == 409 and "Trạng thái hồ sơ không cho phép" in again.text
    no_reason = counter.post(f"/can-bo/ho-so/{refused}/tu-choi", {"reason": ""})
    assert no_reason.status_code == 400 and "Nhập lý do" in no_reason.text
    assert counter.post(f"/can-bo/ho-so/{refused}/tu-choi", {"reason": "Không thuộc thẩm quyền"}).status_code == 303
    assert "Mẫu 03" in counter.get(f"/can-bo/ho-so/{refused}").text
    other = Officer(base_url, "receptionist@000.20.01.H56")
    assert other.get(f"/can-bo/ho-so/{received}").status_code == 403  # another agency's dossier


def test_the_counter_downloads_its_log_book(base_url):
    """Mẫu 07 of the officer's own agency, this month so far by default, as PDF or XLSX."""
    received = submitted_code(base_url)
    counter = Officer(base_url, f"receptionist@{AGENCY}")
    assert counter.post(f"/can-bo/ho-so/{received}/tiep-nhan").status_code == 303
    assert 'href="/can-bo/so-theo-doi?dang=xlsx"' in counter.get("/can-bo").text
    pdf = counter.get("/can-bo/so-theo-doi")
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert "SỔ THEO DÕI HỒ SƠ" in text_of(pdf.content) and received in text_of(pdf.content)
    sheet = counter.get("/can-bo/so-theo-doi?dang=xlsx")
    assert sheet.status_code == 200 and sheet.headers["Content-Disposition"].endswith('.xlsx"')
    assert counter.get("/can-bo/so-theo-doi?dang=doc").status_code == 400


def test_the_counters_queue_flags_a_dossier_lacking_a_mandatory_document_and_filters_by_it(base_url):
    """A dossier taken at the counter may lack a mandatory document (the officer asks for it with form
    02); the queue says so in words with the names, shows only those on demand, and so does the search."""
    complete = submitted_code(base_url)  # online: complete, or it would have been refused
    login = requests.post(f"{base_url}/api/v1/auth/token", timeout=30,
                          json={"username": f"receptionist@{AGENCY}", "password": "demo"}).json()
    taken = requests.post(f"{base_url}/api/v1/dossiers", timeout=30, headers={
        "Authorization": f"Bearer {login['access_token']}"}, json={
        "procedure_code": PROCEDURE, "channel": "counter", "applicant": APPLICANT, "form": {}})
    assert taken.status_code == 201, taken.text
    incomplete = taken.json()["code"]
    counter = Officer(base_url, f"receptionist@{AGENCY}")
    queue = counter.get("/can-bo").text
    row = queue.split(f">{incomplete}</a>", 1)[1].split("</tr>", 1)[0]
    assert "Thiếu 1 giấy tờ bắt buộc" in row and "Tờ khai cấp Giấy xác nhận tình trạng hôn nhân" in row
    assert queue.split(f">{incomplete}</a>", 1)[0].rsplit("<tr", 1)[1].startswith(' class=" incomplete"')
    assert "Thiếu" not in queue.split(f">{complete}</a>", 1)[1].split("</tr>", 1)[0]
    assert 'href="/can-bo?thieu=1"' in queue
    lacking = counter.get("/can-bo?thieu=1").text
    assert incomplete in lacking and complete not in lacking and 'href="/can-bo">Xem tất cả' in lacking
    found = counter.http.post(f"{base_url}/can-bo/tim-kiem", timeout=30, data={
        "csrf": csrf_of(counter.get("/can-bo/tim-kiem").text), "status": "submitted", "documents_missing": "1"})
    assert found.status_code == 200 and incomplete in found.text and complete not in found.text
    assert 'name="documents_missing" value="1" checked' in found.text


def test_a_double_submit_of_a_counter_form_is_one_decision(base_url):
    """Each form carries the key it was rendered with: the second post of the same form gets the first
    answer (not 409 "already received")."""
    code = submitted_code(base_url)
    counter = Officer(base_url, f"receptionist@{AGENCY}")
    page = counter.get(f"/can-bo/ho-so/{code}").text
    form = page.split(f'action="/can-bo/ho-so/{code}/tiep-nhan"', 1)[1]
    fields = {"csrf": csrf_of(form), "idempotency_key": form.split('name="idempotency_key" value="', 1)[1][:32]}
    posts = [counter.http.post(f"{base_url}/can-bo/ho-so/{code}/tiep-nhan", data=fields, timeout=30,
                               allow_redirects=False) for _ in range(2)]
    assert [p.status_code for p in posts] == [303, 303]
    assert counter.get(f"/can-bo/ho-so/{code}").text.count("<td>Tiếp nhận</td>") == 1  # one line in its history


def test_the_inbox_completes_a_task_and_search_finds_by_id_number(base_url):
    code = submitted_code(base_url)
    counter = Officer(base_url, f"receptionist@{AGENCY}")
    assert counter.post(f"/can-bo/ho-so/{code}/tiep-nhan").status_code == 303
    specialist = Officer(base_url, f"specialist@{AGENCY}")
    inbox = until(lambda: specialist.get("/can-bo/viec"), code)
    assert "Xác minh, đề xuất" in inbox.text and "Hoàn thành" in inbox.text
    task_id = task_id_in(inbox.text, code)
    assert specialist.post(f"/can-bo/viec/{task_id}/nonsense", csrf_from="/can-bo/viec").status_code == 404
    done = specialist.post(f"/can-bo/viec/{task_id}/approve", {"note": "Đủ điều kiện"}, csrf_from="/can-bo/viec")
    assert done.status_code == 303 and "Đã ghi nhận" in specialist.get(done.headers["Location"]).text
    found = counter.post("/can-bo/tim-kiem", {"id_number": APPLICANT["id_number"]}, csrf_from="/can-bo/tim-kiem")
    assert found.status_code == 200 and code in found.text
    bad = counter.post("/can-bo/tim-kiem", {"phone": "12"}, csrf_from="/can-bo/tim-kiem")
    assert bad.status_code == 400 and "Số điện thoại gồm số 0" in bad.text


def test_the_dashboard_draws_its_charts_drills_down_and_exports(base_url):
    leader = Officer(base_url, f"leader@{AGENCY}")
    assert leader.login.headers["Location"] == "/lanh-dao"
    page = leader.get("/lanh-dao")
    assert page.status_code == 200 and page.text.count("<svg") >= 1
    # the charts are drawn by the server; the only script is the session's warning (static/session.js)
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/static/session.js" defer>']
    assert "Diễn biến theo ngày" in page.text and "Quá hạn hiện nay" in page.text
    assert 'aria-current="true" class="chip current">Tháng này' in page.text  # the default quick pick
    year = leader.get("/lanh-dao", params={"from": "2026-01-01", "to": "2026-12-31"})  # any period, in the URL
    assert year.status_code == 200 and "Tùy chọn: 01/01/2026 – 31/12/2026" in year.text
    assert "/lanh-dao/xuat-bao-cao?from=2026-01-01&amp;to=2026-12-31&amp;format=xlsx" in year.text  # the export follows
    backwards = leader.get("/lanh-dao", params={"from": "2026-12-31", "to": "2026-01-01"})
    assert backwards.status_code == 200 and "Đến ngày phải sau hoặc bằng từ ngày" in backwards.text
    assert 'name="from" value="2026-12-31"' in backwards.text  # what was typed stays in the form
    too_long = leader.get("/lanh-dao", params={"from": "2020-01-01", "to": "2026-12-31"})  # the service refuses it
    assert too_long.status_code == 400 and 'name="from" value="2020-01-01"' in too_long.text
    assert 'class="alert error error-summary"' in too_long.text
    drill = leader.get("/lanh-dao/ho-so", params={"from": "2026-01-01", "to": "2026-12-31", "cell": "received.total"})
    assert drill.status_code == 200 and "hồ sơ tiếp nhận" in drill.text
    bad = leader.get("/lanh-dao/ho-so", params={"from": "2026-01-01", "to": "2026-12-31", "cell": "nope"})
    assert bad.status_code == 400
    export = leader.get("/lanh-dao/xuat-bao-cao", params={"format": "xlsx", "from": "2026-01-01", "to": "2026-12-31"})
    assert export.status_code == 200 and export.content[:2] == b"PK"  # an xlsx is a zip
    assert "attachment" in export.headers["Content-Disposition"]


@pytest.mark.parametrize(("pick", "today", "first", "last"), [
    ("today", date(2026, 12, 6), date(2026, 12, 6), date(2026, 12, 6)),
    ("week", date(2026, 12, 6), date(2026, 11, 30), date(2026, 12, 6)),  # a Sunday: the week began on Monday
    ("month", date(2026, 12, 6), date(2026, 12, 1), date(2026, 12, 6)),
    ("quarter", date(2026, 12, 6), date(2026, 10, 1), date(2026, 12, 6)),
    ("year", date(2026, 12, 6), date(2026, 1, 1), date(2026, 12, 6)),
    ("last_quarter", date(2026, 12, 6), date(2026, 7, 1), date(2026, 9, 30)),
    ("last_quarter", date(2026, 2, 14), date(2025, 10, 1), date(2025, 12, 31)),  # across the year's turn
])
def test_the_quick_picks(pick, today, first, last):
    assert pages_dashboard.quick_period(pick, today) == (first, last)


def test_the_period_the_query_names():
    today = date(2026, 12, 6)
    assert pages_dashboard.chosen_period({}, today) == ("month", date(2026, 12, 1), today, {})
    assert pages_dashboard.chosen_period({"from": "2026-02-03", "to": "2026-03-04", "ky": "year"}, today) == (
        "custom", date(2026, 2, 3), date(2026, 3, 4), {})
    pick, first, last, errors = pages_dashboard.chosen_period({"from": "3/2/2026", "to": "2026-03-04", "ky": "week"},
                                                              today)
    assert (pick, first, last) == ("week", date(2026, 11, 30), today) and list(errors) == ["from"]
    assert list(pages_dashboard.chosen_period({"from": "2026-03-05", "to": "2026-03-04"}, today)[3]) == ["to"]


def test_the_dashboard_shows_any_period_by_agency_or_field_and_exports_the_same(base_url):
    """The choice is the URL: the quick picks, from/to dates, the agency and the grouping; the exports'
    links carry the same choice."""
    leader = Officer(base_url, f"leader@{AGENCY}")
    page = leader.get("/lanh-dao", params={"from": "2026-01-01", "to": "2026-12-31", "by": "field",
                                           "agency": "000.00.06.H56"})
    assert page.status_code == 200 and 'value="2026-01-01"' in page.text and 'value="2026-12-31"' in page.text
    assert "Tùy chọn: 01/01/2026 – 31/12/2026" in page.text and "<th>Lĩnh vực</th>" in page.text
    assert '<option value="field" selected>' in page.text
    link = "/lanh-dao/xuat-bao-cao?from=2026-01-01&amp;to=2026-12-31&amp;agency=000.00.06.H56&amp;by=field&amp;format="
    assert all(f'href="{link}{fmt}"' in page.text for fmt in ("xlsx", "pdf", "csv"))
    csv = leader.get("/lanh-dao/xuat-bao-cao", params={"from": "2026-01-01", "to": "2026-12-31", "by": "field",
                                                       "agency": "000.00.06.H56", "format": "csv"})
    assert csv.status_code == 200 and "II.06a_field_2026-01-01_2026-12-31.csv" in csv.headers["Content-Disposition"]
    pdf = leader.get("/lanh-dao/xuat-bao-cao", params={"from": "2026-01-01", "to": "2026-12-31", "format": "pdf"})
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    year = leader.get("/lanh-dao", params={"ky": "year"})
    assert year.status_code == 200 and 'class="chip current">Năm nay</a>' in year.text
    wrong = leader.get("/lanh-dao", params={"from": "31/12/2026", "to": "2026-12-31"})
    assert wrong.status_code == 200 and "Từ ngày: ngày không hợp lệ" in wrong.text and 'aria-invalid="true"' in wrong.text


def test_the_dashboards_agency_picker_is_typed_not_scrolled(base_url):
    """A province's 1,000 agencies: a search field with suggestions (the unaccented name beside each),
    read by the code in brackets, the bare code or the whole name typed without diacritics."""
    leader = Officer(base_url, f"leader@{AGENCY}")
    page = leader.get("/lanh-dao")
    assert '<select name="agency"' not in page.text and 'list="agency-agencies"' in page.text
    assert '<option value="Sở Tư pháp (000.00.06.H56)" label="So Tu phap">' in page.text
    for typed in ("Sở Tư pháp (000.00.06.H56)", "000.00.06.H56", "so tu phap"):
        chosen = leader.get("/lanh-dao", params={"agency": typed})
        assert chosen.status_code == 200 and '<small class="muted">Sở Tư pháp</small>' in chosen.text
    unknown = leader.get("/lanh-dao", params={"agency": "Sở không có"})
    assert unknown.status_code == 200 and '<small class="muted">Toàn tỉnh</small>' in unknown.text


def test_logout_ends_the_session(base_url):
    officer = Officer(base_url, f"specialist@{AGENCY}")
    token = officer.http.cookies["motcua_session"]
    alone = requests.get(f"{base_url}/can-bo/viec", cookies={"motcua_session": token}, allow_redirects=False,
                         timeout=30)
    assert alone.status_code == 200  # the cookie on its own is the session
    out = officer.post("/can-bo/dang-xuat", csrf_from="/can-bo/viec")
    assert out.status_code == 303 and out.headers["Location"] == "/can-bo/dang-nhap"
    reused = requests.get(f"{base_url}/can-bo/viec", cookies={"motcua_session": token}, allow_redirects=False,
                          timeout=30)
    assert reused.status_code == 303  # the token was revoked: back to the login form


def test_the_inbox_offers_the_steps_actions_send_back_and_claim(base_url):
    code = submitted_code(base_url)
    counter = Officer(base_url, f"receptionist@{AGENCY}")
    until(lambda: counter.get("/can-bo"), code)
    assert counter.post(f"/can-bo/ho-so/{code}/tiep-nhan").status_code == 303
    specialist, leader = Officer(base_url, f"specialist@{AGENCY}"), Officer(base_url, f"leader@{AGENCY}")

    def task_of(officer):
        inbox = until(lambda: officer.get("/can-bo/viec"), code)
        return inbox, task_id_in(inbox.text, code)

    inbox, first = task_of(specialist)
    assert 'data-action="send_back"' not in inbox.text.split(code, 1)[1].split("</li>", 1)[0]  # a first step
    assert specialist.post(f"/can-bo/viec/{first}/approve", {"note": "Đủ điều kiện"},
                           csrf_from="/can-bo/viec").status_code == 303
    inbox, second = task_of(leader)
    card = inbox.text.split(code, 1)[1].split("</li>", 1)[0]
    assert all(f'data-action="{a}"' in card for a in ("approve", "send_back", "request_supplement", "refuse", "stop"))
    refused = leader.post(f"/can-bo/viec/{second}/send_back", {"note": ""}, csrf_from="/can-bo/viec")
    assert refused.status_code == 400 and "bắt buộc khi trả lại" in refused.text  # a reason is needed
    sent = leader.post(f"/can-bo/viec/{second}/send_back", {"note": "Bổ sung ý kiến xác minh"}, csrf_from="/can-bo/viec")
    assert sent.status_code == 303
    inbox, again = task_of(specialist)
    assert again != first and "Nhận xử lý" in inbox.text
    assert specialist.post(f"/can-bo/viec/{again}/claim", csrf_from="/can-bo/viec").status_code == 303
    assert f"Người xử lý: specialist@{AGENCY}" in specialist.get("/can-bo/viec").text
