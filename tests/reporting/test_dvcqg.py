"""The national portal (DVCQG) sync against the portal adapter's simulator (motcua/simulators/dvcqg.py)."""
import json
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import delete, select

from motcua import migrate
from motcua.db import utcnow
from motcua.faults import TransientFailure
from motcua.simulators.dvcqg import DvcqgSimulator
from services.reporting import cli, dvcqg, projections
from services.reporting.models import DossierFact, PortalPush, StoredEvent
from tests.infra import free_port
from tests.reporting.factory import (
    AGENCY_NAMES,
    EMAIL,
    JUSTICE,
    LAND_OFFICE,
    NAME,
    PHONE,
    SURVEY_OFFICE,
    VN,
    lifecycle,
    memory_database,
    rich_life,
    vn,
)

NOW = utcnow() + timedelta(hours=1)  # the sync's clock: after every event recorded by these tests
BASE = 5.0
USER, PASSWORD, PROVINCE = "motcua", "portal-test-password", "000.00.00.H56"
ID_NUMBER = "001099012345"


@pytest.fixture
def portal():
    portal = DvcqgSimulator(USER, PASSWORD, PROVINCE, port=free_port())
    yield portal
    portal.stop()


def settings(portal, password=PASSWORD, **more):
    return dvcqg.PortalSettings(**{"url": portal.url, "username": USER, "password": password, "agency_code": PROVINCE,
                                   "timeout": 5, "retry_base": BASE, "retry_max": 60, **more})


def client_of(portal, registry=None, **more):
    return dvcqg.PortalClient(settings(portal, **more), dvcqg.PortalMetrics(registry or CollectorRegistry()))


def intake_record(name=NAME):
    """What intake answers for a dossier (services/intake/portal.py)."""
    return {"applicant": {"name": name, "id_number": ID_NUMBER, "type": "individual", "tax_code": None,
                          "email": EMAIL, "phone": PHONE},
            "field_name": "Hộ tịch",
            "documents": [{"id": 1, "key": "to_khai", "name": "Tờ khai", "filename": "to-khai.pdf", "sha256": "a" * 64,
                           "uploaded_at": "2026-03-02T01:00:00+00:00"}],
            "result_documents": [{"id": 2, "key": "ket_qua", "name": "Giấy xác nhận", "filename": "kq.pdf",
                                  "sha256": "b" * 64, "uploaded_at": "2026-03-09T03:00:00+00:00"}],
            "fees": [{"kind": "fee", "name": "Lệ phí xác nhận", "amount_vnd": 8000, "paid_at": None, "receipt": None}],
            "flags": {"digitised": True, "paid_online": False, "vneid_verified": False}, "return_method": "counter"}


class FakePort:
    """Another service's RPC, in memory: what `answer` gives for the argument, or a timeout when `down`."""

    def __init__(self):
        self.down = False
        self.asked: list[list[str]] = []

    def __call__(self, argument):
        self.asked.append(argument)
        if self.down:
            raise TransientFailure("intake did not answer in time")
        return self.answer(argument)


class FakeIntake(FakePort):
    """intake's `national_portal_records`: every code known."""

    def answer(self, codes):
        return {code: intake_record() for code in codes}


class FakeOfficers(FakePort):
    """The gateway's `officers`: the accounts with a full name (the land office's specialist has none: the
    username and the step's role are sent)."""

    ACCOUNTS = {f"specialist@{JUSTICE}": {"full_name": "Trần Thị Bình", "title": "Chuyên viên chính"},
                f"receptionist@{JUSTICE}": {"full_name": "Lê Văn Cường", "title": None}}

    def answer(self, usernames):
        return {name: self.ACCOUNTS[name] for name in usernames if name in self.ACCOUNTS}


def push(uow, client, now=NOW, intake=None, officers=None):
    return dvcqg.push_due(uow, client, intake or FakeIntake(), officers or FakeOfficers(), VN, AGENCY_NAMES, now)


def synced(portal):
    return [r for r in portal.http.requests if r.body and r.body.get("service") == "DongBoHoSoMC"]


def returned(code="000.00.06.H56-260302-0001"):
    return lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 12, 17),
                     finished=vn(2026, 3, 9, 10), returned=vn(2026, 3, 9, 15),
                     supplement=(vn(2026, 3, 3, 10), vn(2026, 3, 4, 10), vn(2026, 3, 13, 17)))


def stored(unit, *lives):
    uow = unit()
    for events in lives:
        for evt in events:
            projections.record(uow, [evt], VN)
    return uow


def row(uow, code) -> PortalPush:
    uow.session.expire_all()
    return uow.session.get(PortalPush, code)


def test_a_dossier_is_pushed_in_the_portals_format_with_intakes_identity_and_its_history(portal):
    uow = stored(memory_database(), returned())
    intake, officers = FakeIntake(), FakeOfficers()
    assert push(uow, client_of(portal.start()), intake=intake, officers=officers) == {
        "pushed": 1, "retry": 0, "rejected": 0}
    code = "000.00.06.H56-260302-0001"
    assert intake.asked == [[code]]
    assert len(officers.asked) == 1 and f"specialist@{JUSTICE}" in officers.asked[0]  # one call per batch

    login, sync, progress = portal.http.requests
    assert (login.path, login.body) == ("/api/auth", {"username": USER, "password": PASSWORD})
    assert (sync.body["service"], sync.body["isUpdating"], sync.body["madonvi"]) == ("DongBoHoSoMC", "False", PROVINCE)
    assert sync.body["session"] in portal.sessions
    [dossier] = sync.body["data"]
    assert portal.dossiers[code] == dossier and portal.refused == []
    assert {key: dossier[key] for key in ("MaHoSo", "MaTTHC", "MaLinhVuc", "TenLinhVuc", "KenhThucHien",
                                          "TrangThaiHoSo", "NgayNopHoSo", "NgayTiepNhan", "NgayHenTra",
                                          "NgayKetThucXuLy", "NgayTra", "NgayTuChoi", "DonViXuLy")} == {
        "MaHoSo": code, "MaTTHC": "1.004873", "MaLinhVuc": "HT", "TenLinhVuc": "Hộ tịch", "KenhThucHien": "2",
        "TrangThaiHoSo": "10", "NgayNopHoSo": "20260302080000", "NgayTiepNhan": "20260302090000",
        "NgayHenTra": "20260313170000", "NgayKetThucXuLy": "20260309100000", "NgayTra": "20260309150000",
        "NgayTuChoi": "", "DonViXuLy": AGENCY_NAMES[JUSTICE]}
    # from intake, not null
    assert (dossier["ChuHoSo"], dossier["SoGiayToChuHoSo"], dossier["LoaiDoiTuong"]) == (NAME, ID_NUMBER, "1")
    assert dossier["TaiLieuNop"] == [{"TepDinhKemId": "1", "TenTepDinhKem": "Tờ khai", "IsDeleted": "False",
                                      "MaThanhPhanHoSo": "to_khai", "DuongDanTaiTepTin": "", "DuocSoHoa": "1",
                                      "DuocTaiSuDung": "0", "DuocLayTuKhoDMQG": "0"}]
    assert dossier["DanhSachLePhi"] == [{"TenPhiLePhi": "Lệ phí xác nhận", "MaPhiLePhi": "1.004873-fee",
                                         "HinhThucThu": "0", "Gia": "8000", "LoaiPhiLePhi": "1"}]
    assert [d["TenGiayTo"] for d in dossier["DanhSachGiayToKetQua"]] == ["Giấy xác nhận"]
    assert dossier["DanhSachHoSoBoSung"] == [{
        "HoSoBoSungId": "1", "NguoiYeuCauBoSung": f"specialist@{JUSTICE}", "NoiDungBoSung": "Bản sao giấy khai sinh",
        "NgayBoSung": "20260303100000", "NgayTiepNhanBoSung": "20260304100000", "TrangThaiBoSung": "1"}]

    assert progress.body["service"] == "CapNhatTienDoHoSoMC"
    lines = progress.body["data"]
    assert len(lines) == len(returned()) and all(line["MaHoSo"] == code for line in lines)
    assert set(lines[0]) == {"MaHoSo", "NguoiXuLy", "ChucDanh", "ThoiDiemXuLy", "PhongBanXuLy", "NoiDungXuLy",
                             "TrangThai", "NgayBatDau", "NgayKetThucTheoQuyDinh"}
    steps = [line for line in lines if line["NoiDungXuLy"].startswith("Xử lý xong bước")]
    assert [(s["NguoiXuLy"], s["ChucDanh"], s["PhongBanXuLy"], s["TrangThai"]) for s in steps] == [
        ("Trần Thị Bình", "Chuyên viên chính", AGENCY_NAMES[JUSTICE], "4"),  # the officer's own name and title
        (f"specialist@{LAND_OFFICE}", "Chuyên viên", AGENCY_NAMES[LAND_OFFICE], "4")]  # no full name: as before
    assert (steps[0]["NgayBatDau"], steps[0]["NgayKetThucTheoQuyDinh"]) == ("20260302090100", "20260312170000")
    assert [line["TrangThai"] for line in lines][:2] == ["1", "2"]
    assert (lines[1]["NoiDungXuLy"], lines[1]["NguoiXuLy"], lines[1]["ChucDanh"]) == (
        "Tiếp nhận hồ sơ", "Lê Văn Cường", "Cán bộ tiếp nhận")  # no title of his own: the counter's
    assert lines[-1]["TrangThai"] == "10" and lines[-1]["NoiDungXuLy"] == "Trả kết quả: counter"
    assert len(portal.progress[code]) == len(lines)
    assert row(uow, code).state == "pushed"
    # reporting pushed the identity and keeps none of it
    kept = json.dumps([e.data for e in uow.session.scalars(select(StoredEvent))], ensure_ascii=False)
    assert ID_NUMBER not in kept and NAME not in kept
    assert "Trần Thị Bình" not in kept  # the officers' names are asked at push time, not stored


def test_a_new_appointment_and_overdue_notices_are_in_the_pushed_history(portal):
    code = "000.00.06.H56-260302-0002"
    life = lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                     rescheduled=(vn(2026, 3, 4, 10), vn(2026, 3, 10, 17)), overdue=vn(2026, 3, 10, 17, 5))
    uow = stored(memory_database(), life)
    assert push(uow, client_of(portal.start()))["pushed"] == 1
    assert portal.dossiers[code]["NgayHenTra"] == "20260310170000"
    lines = {line["NoiDungXuLy"].split(":")[0]: line for line in portal.progress[code].values()}
    apology = lines["Xin lỗi và hẹn lại ngày trả kết quả"]
    assert (apology["NguoiXuLy"], apology["ChucDanh"], apology["NoiDungXuLy"], apology["ThoiDiemXuLy"]) == (
        "Lê Văn Cường", "Cán bộ tiếp nhận",
        "Xin lỗi và hẹn lại ngày trả kết quả: chờ xác minh thực địa", "20260304100000")
    assert (lines["Bước xử lý quá hạn"]["NoiDungXuLy"], lines["Bước xử lý quá hạn"]["ThoiDiemXuLy"]) == (
        "Bước xử lý quá hạn: Thẩm định", "20260310170500")
    assert lines["Hồ sơ quá hạn"]["TrangThai"] == "4"


def test_a_dossier_through_a_fee_a_transfer_parallel_steps_and_a_stop_is_pushed_with_its_whole_history(portal):
    code = "000.00.06.H56-260302-0003"
    events = rich_life(code, "stopped")
    uow = stored(memory_database(), events[::-1])  # heard backwards: the history is in the order things happened
    assert push(uow, client_of(portal.start()))["pushed"] == 1
    assert portal.dossiers[code]["TrangThaiHoSo"] == "8"
    lines = [r for r in portal.http.requests if r.body and r.body.get("service") == "CapNhatTienDoHoSoMC"][0].body["data"]
    assert [line["NoiDungXuLy"].split(":")[0] for line in lines] == [dvcqg.HISTORY[e.event_type][0] for e in events]
    by_title = {line["NoiDungXuLy"].split(":")[0]: line for line in lines}
    assert by_title["Thông báo nghĩa vụ tài chính"]["TrangThai"] == "6"
    paid = by_title["Hoàn thành nghĩa vụ tài chính"]
    assert (paid["NguoiXuLy"], paid["NoiDungXuLy"], paid["TrangThai"]) == (
        "receptionist", "Hoàn thành nghĩa vụ tài chính: BL-1", "4")
    assert by_title["Chuyển xử lý liên thông"]["PhongBanXuLy"] == SURVEY_OFFICE  # no name in AGENCY_NAMES: its code
    assert by_title["Thông báo dừng xử lý"]["TrangThai"] == "8" and by_title["Dừng xử lý"]["TrangThai"] == "4"
    assert [s["NoiDungBoSung"] for s in portal.dossiers[code]["DanhSachHoSoBoSung"]] == [
        "Bản sao sổ đỏ", "Bản đồ địa chính; Tờ khai thuế"]


def test_every_status_is_sent_as_the_portals_code(portal):
    at = vn(2026, 3, 2, 8)
    lives = {
        "1": lifecycle("S-1", submitted=at),
        "3": lifecycle("S-3", submitted=at, refused=at + timedelta(hours=1)),
        "4": lifecycle("S-4", submitted=at, received=at + timedelta(hours=1), due=vn(2026, 3, 9, 17)),
        "5": lifecycle("S-5", submitted=at, received=at + timedelta(hours=1), due=vn(2026, 3, 9, 17),
                       supplement=(vn(2026, 3, 3, 9), None, None)),
        "7": lifecycle("S-7", submitted=at, received=at + timedelta(hours=1), due=vn(2026, 3, 9, 17),
                       withdrawn=vn(2026, 3, 4, 9)),
        "9": lifecycle("S-9", submitted=at, received=at + timedelta(hours=1), due=vn(2026, 3, 9, 17),
                       finished=vn(2026, 3, 5, 9)),
        "10": lifecycle("S-10", submitted=at, received=at + timedelta(hours=1), due=vn(2026, 3, 9, 17),
                        finished=vn(2026, 3, 5, 9), returned=vn(2026, 3, 6, 9)),
    }
    uow = stored(memory_database(), *lives.values())
    assert push(uow, client_of(portal.start()))["pushed"] == 7
    assert {code: d["TrangThaiHoSo"] for code, d in portal.dossiers.items()} == {
        events[0].data["code"]: status for status, events in lives.items()}
    assert portal.dossiers["S-3"]["NgayTuChoi"] == "20260302090000" and portal.dossiers["S-1"]["NgayTiepNhan"] == ""


def test_a_refused_payload_is_a_visible_permanent_failure_until_the_dossier_changes(portal):
    events = returned()
    code = events[0].data["code"]
    uow = stored(memory_database(), events[:-1])  # result ready, not returned yet
    portal.refuse_procedures.add("1.004873")
    registry = CollectorRegistry()
    client = client_of(portal.start(), registry)
    assert push(uow, client)["rejected"] == 1
    failed = row(uow, code)
    assert (failed.state, failed.attempts, failed.last_error) == ("rejected", 1, "DongBoHoSoMC TTHC_NOT_FOUND")
    for later in (timedelta(minutes=5), timedelta(days=3)):
        assert push(uow, client, NOW + later) == {"pushed": 0, "retry": 0, "rejected": 0}
    assert len(synced(portal)) == 1
    assert 'motcua_dvcqg_requests_total{outcome="refused",service="DongBoHoSoMC"} 1.0' in generate_latest(
        registry).decode()
    assert dvcqg.summary(uow.session)["failing"] == [{
        "code": code, "state": "rejected", "version": len(events) - 1, "attempts": 1,
        "last_error": "DongBoHoSoMC TTHC_NOT_FOUND", "next_attempt_at": failed.next_attempt_at.isoformat()}]

    portal.refuse_procedures.clear()
    projections.record(uow, [events[-1]], VN)  # returned: a new version, tried again
    assert push(uow, client, NOW + timedelta(days=3))["pushed"] == 1
    assert portal.dossiers[code]["TrangThaiHoSo"] == "10"
    assert dvcqg.counts_by_state(uow.session) == {"pending": 0, "pushed": 1, "rejected": 0}


def test_a_dossier_our_payload_cannot_express_is_rejected_alone_and_the_batch_goes_on(portal, monkeypatch, caplog):
    """One dossier whose history breaks the payload (a defect of ours) no longer stops its whole batch
    at every lease: it is rejected on its own row, logged without its data, and the others are pushed."""
    first, second = returned(), returned("000.00.06.H56-260302-0002")
    uow = stored(memory_database(), first, second)
    express = dvcqg.payload

    def payload(fact, *rest):
        if fact.code == first[0].data["code"]:
            raise ValueError(f"cannot express {APPLICANT_NAME_IN_ERROR}")
        return express(fact, *rest)

    monkeypatch.setattr(dvcqg, "payload", payload)
    assert push(uow, client_of(portal.start())) == {"pushed": 1, "retry": 0, "rejected": 1}
    assert (row(uow, first[0].data["code"]).state, row(uow, first[0].data["code"]).last_error) == (
        "rejected", "payload ValueError")
    assert row(uow, second[0].data["code"]).state == "pushed"
    assert "ValueError" in caplog.text and APPLICANT_NAME_IN_ERROR not in caplog.text


APPLICANT_NAME_IN_ERROR = "Nguyễn Văn An"


def test_a_wrong_password_is_rejected_not_retried_and_an_expired_session_is_renewed(portal):
    uow = stored(memory_database(), returned())
    assert push(uow, client_of(portal.start(), password="wrong"))["rejected"] == 1
    assert row(uow, "000.00.06.H56-260302-0001").last_error == "login HTTP 401 -1"

    uow = stored(memory_database(), returned())
    client = client_of(portal)
    client.session = "an-old-session"  # the portal forgot it (expired): one new login, then the push
    assert push(uow, client)["pushed"] == 1
    assert client.session in portal.sessions


def test_the_portal_down_slow_or_answering_garbage_is_retried_with_backoff_and_each_version_lands_once(portal):
    codes = [f"000.00.06.H56-260302-000{n}" for n in range(1, 4)]
    lives = [returned(code) for code in codes]
    uow = stored(memory_database(), *(life[:-1] for life in lives))
    registry = CollectorRegistry()
    client = dvcqg.PortalClient(settings(portal, timeout=0.5), dvcqg.PortalMetrics(registry))  # not listening yet

    assert push(uow, client)["retry"] == 3
    first = row(uow, codes[0])
    assert (first.state, first.attempts, first.last_error) == ("pending", 1, "login ConnectionError")
    assert first.next_attempt_at == NOW + timedelta(seconds=BASE)
    assert push(uow, client, NOW + timedelta(seconds=BASE - 1))["retry"] == 0  # backing off
    now = NOW + timedelta(seconds=BASE)
    portal.start()
    portal.faults.delay = 1.0  # slower than the client waits
    assert push(uow, client, now)["retry"] == 3
    assert row(uow, codes[0]).last_error == "login ReadTimeout"
    assert row(uow, codes[0]).next_attempt_at == now + timedelta(seconds=2 * BASE)  # doubled

    portal.faults.delay, portal.faults.outages, portal.faults.garbage = 0, 2, 1  # back, but 503 then garbage
    now += timedelta(seconds=2 * BASE)
    assert push(uow, client, now) == {"pushed": 0, "retry": 3, "rejected": 0}
    errors = [row(uow, code).last_error for code in codes]
    assert errors == ["login HTTP 503", "login HTTP 503", "login HTTP 200 not JSON"]
    now += timedelta(seconds=4 * BASE)
    assert push(uow, client, now) == {"pushed": 3, "retry": 0, "rejected": 0}
    projections.record(uow, [lives[1][-1]], VN)  # a pushed dossier changes: its new version is due now
    now += timedelta(seconds=8 * BASE)
    assert push(uow, client, now)["pushed"] == 1
    assert push(uow, client, now + timedelta(days=1))["pushed"] == 0

    updates = [(r.body["isUpdating"], r.body["data"][0]["MaHoSo"]) for r in synced(portal)]
    assert updates == [("False", codes[0]), ("False", codes[1]), ("False", codes[2]), ("True", codes[1])]
    assert portal.dossiers[codes[1]]["TrangThaiHoSo"] == "10" and portal.dossiers[codes[0]]["TrangThaiHoSo"] == "9"
    assert dvcqg.counts_by_state(uow.session) == {"pending": 0, "pushed": 3, "rejected": 0}
    assert row(uow, codes[0]).attempts == 0 and row(uow, codes[0]).last_error is None
    scraped = generate_latest(registry).decode()
    for line in ('motcua_dvcqg_requests_total{outcome="unreachable",service="login"} 6.0',
                 'motcua_dvcqg_requests_total{outcome="retry",service="login"} 2.0',
                 'motcua_dvcqg_requests_total{outcome="garbage",service="login"} 1.0',
                 'motcua_dvcqg_requests_total{outcome="ok",service="DongBoHoSoMC"} 4.0',
                 'motcua_dvcqg_lag_seconds_count 4.0'):
        assert line in scraped, line


@pytest.mark.parametrize("away", ["intake", "gateway"])
def test_intake_or_the_gateway_not_answering_holds_the_push_instead_of_sending_guesses(portal, away):
    """Nothing is sent with an empty identity (intake's) or account names for officers' (the gateway's)."""
    uow = stored(memory_database(), returned())
    ports = {"intake": FakeIntake(), "officers": FakeOfficers()}
    port = ports["intake" if away == "intake" else "officers"]
    port.down = True
    client = client_of(portal.start())
    assert push(uow, client, **ports) == {"pushed": 0, "retry": 1, "rejected": 0}
    assert row(uow, "000.00.06.H56-260302-0001").last_error == f"{away} TransientFailure"
    assert portal.http.requests == []
    port.down = False
    assert push(uow, client, NOW + timedelta(seconds=BASE), **ports)["pushed"] == 1
    assert portal.dossiers["000.00.06.H56-260302-0001"]["ChuHoSo"] == NAME
    names = {line["NguoiXuLy"] for line in portal.progress["000.00.06.H56-260302-0001"].values()}
    assert "Trần Thị Bình" in names and f"specialist@{JUSTICE}" not in names


def test_officers_are_asked_in_the_gateways_chunks():
    asked = []

    def officers(usernames):
        asked.append(len(usernames))
        return {name: {"full_name": name.upper(), "title": None} for name in usernames}

    names = [f"officer{i:03}" for i in range(450)]
    assert len(dvcqg._in_chunks(officers, names)) == 450 and asked == [200, 200, 50]


def test_reconciliation_queues_the_missing_and_repairs_what_differs(portal):
    codes = [f"000.00.06.H56-260302-000{n}" for n in range(1, 5)]
    uow = stored(memory_database(), *(returned(code) for code in codes))
    client = client_of(portal.start())
    push(uow, client)
    del portal.dossiers[codes[0]]  # lost by the portal
    portal.dossiers[codes[1]]["TrangThaiHoSo"] = "4"  # changed there
    portal.progress[codes[3]].popitem()  # a progress line lost
    uow.session.execute(delete(PortalPush).where(PortalPush.dossier_code == codes[2]))  # never queued
    uow.commit()

    assert dvcqg.reconcile(uow, client, VN, NOW) == {"queued": 1, "checked": 3, "repaired": 3, "unreachable": 0}
    assert row(uow, codes[0]).last_error == "reconcile: missing on the portal"
    assert row(uow, codes[1]).last_error == "reconcile: portal differs"
    assert push(uow, client)["pushed"] == 4
    assert all(portal.dossiers[code]["TrangThaiHoSo"] == "10" for code in codes)
    assert dvcqg.reconcile(uow, client, VN, NOW + timedelta(hours=1))["repaired"] == 0

    portal.stop()  # the portal down: nothing is marked, all checked again next time
    assert dvcqg.reconcile(uow, client, VN, NOW + timedelta(hours=2))["unreachable"] == 4
    assert dvcqg.counts_by_state(uow.session)["pushed"] == 4


@pytest.fixture
def db_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'reporting.db'}"
    migrate.upgrade("reporting", url)
    return url


def test_the_sync_command_pushes_everything_due(portal, db_url, monkeypatch, capsys):
    uow = cli.unit_of_work(db_url)
    for evt in returned():
        projections.record(uow, [evt], VN)
    uow.session.execute(delete(PortalPush))  # as if stored before the connector existed
    uow.commit()
    uow.close()
    monkeypatch.delenv("DVCQG_URL", raising=False)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["sync", "--db-url", db_url])
    assert stopped.value.code == 2 and "DVCQG_URL" in capsys.readouterr().err

    settings_ = settings(portal.start())
    assert cli.sync(db_url, VN, settings_, FakeIntake(), FakeOfficers(), AGENCY_NAMES) == {
        "queued": 1, "sent": {"pushed": 1, "retry": 0, "rejected": 0},
        "queue": {"pending": 0, "pushed": 1, "rejected": 0}}
    portal.dossiers.clear()  # the portal lost everything: reconciliation pushes it again
    output = cli.sync(db_url, VN, settings_, FakeIntake(), FakeOfficers(), AGENCY_NAMES, reconcile=True)
    assert output["reconcile"] == {"queued": 0, "checked": 1, "repaired": 1, "unreachable": 0}
    assert output["sent"]["pushed"] == 1 and "000.00.06.H56-260302-0001" in portal.dossiers

    cli.main(["sync", "--db-url", db_url, "--status"])
    assert json.loads(capsys.readouterr().out) == {"states": {"pending": 0, "pushed": 1, "rejected": 0},
                                                   "failing": []}


def test_an_appointment_moved_by_a_calendar_decision_is_no_apology(portal):
    code = "000.00.06.H56-260302-0003"
    life = lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                     rescheduled=(vn(2026, 3, 4, 10), vn(2026, 3, 6, 17)))
    [moved] = [evt for evt in life if evt.event_type == "dossier_rescheduled"]
    moved.data["reason"] = "calendar"  # as intake records a decision of the calendar (a day off added)
    uow = stored(memory_database(), life)
    assert push(uow, client_of(portal.start()))["pushed"] == 1
    contents = [line["NoiDungXuLy"] for line in portal.progress[code].values()]
    assert f"{dvcqg.CALENDAR_RESCHEDULED}: calendar" in contents


def test_a_step_deadline_moved_by_a_calendar_decision_is_the_one_pushed_after_it(portal):
    code = "000.00.06.H56-260302-0004"
    life = lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 12, 17),
                     step_moved=(vn(2026, 3, 3, 10), vn(2026, 3, 13, 17)), finished=vn(2026, 3, 9, 10))
    uow = stored(memory_database(), life)
    assert push(uow, client_of(portal.start()))["pushed"] == 1
    lines = list(portal.progress[code].values())
    [moved] = [line for line in lines if line["NoiDungXuLy"].startswith("Điều chỉnh thời hạn bước")]
    [done] = [line for line in lines if line["NoiDungXuLy"].startswith("Xử lý xong bước")][:1]
    assert (moved["NoiDungXuLy"], moved["ThoiDiemXuLy"], moved["NgayKetThucTheoQuyDinh"]) == (
        "Điều chỉnh thời hạn bước xử lý theo quyết định về ngày làm việc: Thẩm định", "20260303100000",
        "20260313170000")
    assert done["NgayKetThucTheoQuyDinh"] == "20260313170000"  # not the step's first deadline, the 12th
    assert uow.session.get(DossierFact, code).applied_run_version == max(
        e.data["run_version"] for e in life if e.source == "workflow")  # no gap in the run's versions


def test_outside_production_reporting_makes_its_own_token_once_per_half_hour(monkeypatch):
    from motcua import keys
    from motcua.identity import TokenLimits, verify_token

    monkeypatch.delenv("REPORTING_SERVICE_TOKEN", raising=False)
    token = dvcqg.caller_token()
    assert dvcqg.caller_token() == token  # not a new one per push (each would fill the callees' caches)
    caller = verify_token(token, keys.pem_setting(keys.TOKEN_VERIFY_KEY), TokenLimits())
    assert (caller.username, caller.roles, caller.is_portal_sync) == ("service@reporting", ("portal_sync",), True)
