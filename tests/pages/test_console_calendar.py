"""The console's calendar page: the province's admin records an official decision; others may not."""
from tests.pages.client import AGENCY, Officer


def test_the_admin_records_a_calendar_decision_from_the_console(base_url):
    admin = Officer(base_url, "admin")
    assert 'href="/can-bo/lich"' in admin.get("/can-bo").text  # the admin's menu has the page
    # A hypothetical decision far ahead (Mon 6/1/2031), so no dossier of the other tests moves.
    decision = {"date": "2031-01-06", "kind": "day_off", "source": "Công văn thử nghiệm (test)"}
    missing = admin.post("/can-bo/lich", {**decision, "source": ""}, csrf_from="/can-bo/lich")
    assert missing.status_code == 400 and 'name="source"' in missing.text
    done = admin.post("/can-bo/lich", decision, csrf_from="/can-bo/lich")
    assert done.status_code == 200, done.text
    assert "Đã ghi 2031-01-06 (ngày nghỉ): 0 hồ sơ được hẹn lại." in " ".join(done.text.split())
    counter = Officer(base_url, f"receptionist@{AGENCY}")
    assert 'href="/can-bo/lich"' not in counter.get("/can-bo").text
    assert counter.post("/can-bo/lich", decision, csrf_from="/can-bo/lich").status_code == 403
