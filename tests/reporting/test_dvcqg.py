"""The national portal (DVCQG) sync against a local HTTP server playing the portal."""
import json
from datetime import timedelta

import eventlet
import pytest
from nameko.amqp.publish import Publisher
from nameko.containers import ServiceContainer
from nameko.events import get_event_exchange
from nameko.standalone.rpc import ClusterRpcProxy
from prometheus_client import generate_latest
from sqlalchemy import delete

from motcua import embedded, migrate
from motcua.contracts import make_event
from motcua.db import utcnow
from motcua.metrics import metrics_for
from services.reporting import cli, dvcqg, projections
from services.reporting.models import PortalPush
from services.reporting.service import ReportingService
from tests.reporting.factory import (
    EMAIL,
    JUSTICE,
    LAND_OFFICE,
    NAME,
    PHONE,
    TRACKING_KEY,
    SURVEY_OFFICE,
    VN,
    lifecycle,
    memory_database,
    rich_life,
    vn,
)
from tests.reporting.portal import TOKEN, Portal
from tests.infra import VERIFYING, gateway_token

NOW = utcnow() + timedelta(hours=1)  # the sync's clock: after every event recorded by these tests
BASE = 5.0


@pytest.fixture
def portal():
    portal = Portal()
    yield portal
    portal.stop()


def settings(portal, token=TOKEN):
    return dvcqg.PortalSettings(url=portal.url, token=token, timeout=5, retry_base=BASE, retry_max=60)


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


def test_a_dossier_is_pushed_with_its_fields_history_and_no_personal_data(portal):
    uow = stored(memory_database(), returned())
    client = dvcqg.PortalClient(settings(portal.start()))
    assert dvcqg.push_due(uow, client, VN, NOW) == {"pushed": 1, "retry": 0, "rejected": 0}

    [request] = portal.requests
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Idempotency-Key"] == f"000.00.06.H56-260302-0001:{len(returned())}"
    for personal in (NAME, PHONE, EMAIL, "12 Lê Lợi", "Nguyễn V. A."):
        assert personal not in request["raw"]
    body = request["body"]
    assert (body["status"], body["status_code"], body["channel"]) == ("done", 10, 2)
    assert (body["procedure_code"], body["field_code"], body["receiving_agency_code"]) == ("1.004873", "HT", JUSTICE)
    assert body["applicant"] == {"name": None, "id_number": None, "type": None}
    assert {"applicant.name", "applicant.id_number", "fees", "documents"} <= set(body["absent"])
    assert (body["received_at"], body["appointment_at"], body["returned_at"]) == (
        "2026-03-02T09:00:00+07:00", "2026-03-13T17:00:00+07:00", "2026-03-09T15:00:00+07:00")
    assert body["supplements"] == [{"requested_at": "2026-03-03T10:00:00+07:00", "items": ["Bản sao giấy khai sinh"],
                                    "supplemented_at": "2026-03-04T10:00:00+07:00"}]
    steps = [line for line in body["history"] if line["event"] == "task_completed"]
    assert [(s["handler"], s["department"], s["step"], s["status"]) for s in steps] == [
        (f"specialist@{JUSTICE}", JUSTICE, "Thẩm định", "processing"),
        (f"specialist@{LAND_OFFICE}", LAND_OFFICE, "Ký duyệt", "processing")]
    assert steps[0]["step_started_at"] == "2026-03-02T09:01:00+07:00"
    assert steps[0]["step_due_at"] == "2026-03-12T17:00:00+07:00"
    assert [line["status"] for line in body["history"]][:2] == ["receiving", "new"]
    assert body["history"][-1]["status"] == "done" and body["history"][-1]["content"] == "counter"
    assert row(uow, body["code"]).state == "pushed"


def test_a_new_appointment_and_overdue_notices_are_in_the_pushed_history(portal):
    code = "000.00.06.H56-260302-0002"
    life = lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                     rescheduled=(vn(2026, 3, 4, 10), vn(2026, 3, 10, 17)), overdue=vn(2026, 3, 10, 17, 5))
    uow = stored(memory_database(), life)
    assert dvcqg.push_due(uow, dvcqg.PortalClient(settings(portal.start())), VN, NOW)["pushed"] == 1
    [request] = portal.requests
    body = request["body"]
    assert body["appointment_at"] == "2026-03-10T17:00:00+07:00" and NAME not in request["raw"]
    lines = {line["event"]: line for line in body["history"]}
    apology = lines["dossier_rescheduled"]
    assert (apology["title"], apology["handler"], apology["content"], apology["at"]) == (
        "Xin lỗi và hẹn lại ngày trả kết quả", f"receptionist@{JUSTICE}", "chờ xác minh thực địa",
        "2026-03-04T10:00:00+07:00")
    assert (lines["task_overdue"]["content"], lines["task_overdue"]["at"]) == ("Thẩm định", "2026-03-10T17:05:00+07:00")
    assert lines["dossier_overdue"]["status"] == "processing"


def test_a_dossier_through_a_fee_a_transfer_parallel_steps_and_a_stop_is_pushed_with_its_whole_history(portal):
    code = "000.00.06.H56-260302-0003"
    events = rich_life(code, "stopped")
    uow = stored(memory_database(), events[::-1])  # heard backwards: the history is in the order things happened
    assert dvcqg.push_due(uow, dvcqg.PortalClient(settings(portal.start())), VN, NOW)["pushed"] == 1
    [request] = portal.requests
    body = request["body"]
    assert (body["status"], body["status_code"], body["version"]) == ("unresolved", 8, len(events))
    assert [line["event"] for line in body["history"]] == [e.event_type for e in events]
    lines = {line["event"]: line for line in body["history"]}
    assert (lines["payment_requested"]["title"], lines["payment_requested"]["status"]) == (
        "Thông báo nghĩa vụ tài chính", "paying")
    assert (lines["payment_received"]["handler"], lines["payment_received"]["content"],
            lines["payment_received"]["status"]) == ("receptionist", "BL-1", "processing")
    assert (lines["dossier_transferred"]["department"], lines["dossier_transferred"]["step"]) == (
        SURVEY_OFFICE, "Đo đạc")
    assert lines["dossier_stopped"]["status"] == "unresolved" and lines["processing_stopped"]["status"] == "processing"
    assert [s["items"] for s in body["supplements"]] == [["Bản sao sổ đỏ"], ["Bản đồ địa chính", "Tờ khai thuế"]]
    assert all(s["supplemented_at"] for s in body["supplements"])
    assert NAME not in request["raw"] and PHONE not in request["raw"]


def test_every_status_is_mapped_to_the_portal_value(portal):
    at = vn(2026, 3, 2, 8)
    lives = {
        "receiving": lifecycle("S-1", submitted=at),
        "denied": lifecycle("S-3", submitted=at, refused=at + timedelta(hours=1)),
        "processing": lifecycle("S-4", submitted=at, received=at + timedelta(hours=1), due=vn(2026, 3, 9, 17)),
        "waiting": lifecycle("S-5", submitted=at, received=at + timedelta(hours=1), due=vn(2026, 3, 9, 17),
                             supplement=(vn(2026, 3, 3, 9), None, None)),
        "cancelled": lifecycle("S-7", submitted=at, received=at + timedelta(hours=1), due=vn(2026, 3, 9, 17),
                               withdrawn=vn(2026, 3, 4, 9)),
        "releasing": lifecycle("S-9", submitted=at, received=at + timedelta(hours=1), due=vn(2026, 3, 9, 17),
                               finished=vn(2026, 3, 5, 9)),
        "done": lifecycle("S-10", submitted=at, received=at + timedelta(hours=1), due=vn(2026, 3, 9, 17),
                          finished=vn(2026, 3, 5, 9), returned=vn(2026, 3, 6, 9)),
    }
    uow = stored(memory_database(), *lives.values())
    dvcqg.push_due(uow, dvcqg.PortalClient(settings(portal.start())), VN, NOW)
    pushed = {r["body"]["code"]: (r["body"]["status"], r["body"]["status_code"]) for r in portal.requests}
    assert pushed == {events[0].data["code"]: (status, code) for (status, events), code
                      in zip(lives.items(), (1, 3, 4, 5, 7, 9, 10))}


def test_a_rejected_push_is_a_visible_permanent_failure_until_the_dossier_changes(portal):
    events = returned()
    code = events[0].data["code"]
    uow = stored(memory_database(), events[:-1])  # result ready, not returned yet
    portal.reject = True
    client = dvcqg.PortalClient(settings(portal.start()))
    assert dvcqg.push_due(uow, client, VN, NOW)["rejected"] == 1
    failed = row(uow, code)
    assert (failed.state, failed.attempts, failed.last_error) == ("rejected", 1, "HTTP 422 INVALID_PROCEDURE")
    assert code not in failed.last_error  # the portal's free-text message is not kept
    for later in (timedelta(minutes=5), timedelta(days=3)):
        assert dvcqg.push_due(uow, client, VN, NOW + later) == {"pushed": 0, "retry": 0, "rejected": 0}
    assert len(portal.requests) == 1
    assert dvcqg.summary(uow.session)["failing"] == [{
        "code": code, "state": "rejected", "version": len(events) - 1, "attempts": 1,
        "last_error": "HTTP 422 INVALID_PROCEDURE", "next_attempt_at": failed.next_attempt_at.isoformat()}]

    portal.reject = False
    projections.record(uow, [events[-1]], VN)  # returned: a new version, tried again
    assert dvcqg.push_due(uow, client, VN, NOW + timedelta(days=3))["pushed"] == 1
    assert portal.accepted == [(code, len(events))]
    assert dvcqg.counts_by_state(uow.session) == {"pending": 0, "pushed": 1, "rejected": 0}


def test_a_wrong_token_is_rejected_not_retried(portal):
    uow = stored(memory_database(), returned())
    client = dvcqg.PortalClient(settings(portal.start(), token="wrong"))
    assert dvcqg.push_due(uow, client, VN, NOW)["rejected"] == 1
    assert row(uow, "000.00.06.H56-260302-0001").last_error == "HTTP 401 UNAUTHORIZED"


def test_a_portal_down_for_a_while_gets_each_version_exactly_once(portal):
    codes = [f"000.00.06.H56-260302-000{n}" for n in range(1, 4)]
    lives = [returned(code) for code in codes]
    uow = stored(memory_database(), *(life[:-1] for life in lives))
    client = dvcqg.PortalClient(settings(portal))  # not listening yet: connection refused

    assert dvcqg.push_due(uow, client, VN, NOW)["retry"] == 3
    first = row(uow, codes[0])
    assert (first.state, first.attempts, first.last_error) == ("pending", 1, "ConnectionError")
    assert first.next_attempt_at == NOW + timedelta(seconds=BASE)
    assert dvcqg.push_due(uow, client, VN, NOW + timedelta(seconds=BASE - 1))["retry"] == 0  # backing off
    now = NOW + timedelta(seconds=BASE)
    assert dvcqg.push_due(uow, client, VN, now)["retry"] == 3
    assert row(uow, codes[0]).next_attempt_at == now + timedelta(seconds=2 * BASE)  # doubled

    portal.outages = 4  # back, but answering 503 for a while
    portal.start()
    now += timedelta(seconds=2 * BASE)
    assert dvcqg.push_due(uow, client, VN, now) == {"pushed": 0, "retry": 3, "rejected": 0}
    assert (row(uow, codes[0]).attempts, row(uow, codes[0]).last_error) == (3, "HTTP 503 MAINTENANCE")
    now += timedelta(seconds=4 * BASE)
    # in code order: the last 503 for the first dossier, the two others pushed
    assert dvcqg.push_due(uow, client, VN, now) == {"pushed": 2, "retry": 1, "rejected": 0}
    projections.record(uow, [lives[1][-1]], VN)  # a pushed dossier changes: its new version is due now
    now += timedelta(seconds=8 * BASE)
    assert dvcqg.push_due(uow, client, VN, now)["pushed"] == 2
    assert dvcqg.push_due(uow, client, VN, now + timedelta(days=1))["pushed"] == 0

    versions = len(lives[0])
    assert sorted(portal.accepted) == [(codes[0], versions - 1), (codes[1], versions - 1), (codes[1], versions),
                                       (codes[2], versions - 1)]
    assert dvcqg.counts_by_state(uow.session) == {"pending": 0, "pushed": 3, "rejected": 0}
    assert row(uow, codes[0]).attempts == 0 and row(uow, codes[0]).last_error is None


def test_reconciliation_queues_the_missing_and_repairs_what_differs(portal):
    codes = [f"000.00.06.H56-260302-000{n}" for n in range(1, 4)]
    uow = stored(memory_database(), *(returned(code) for code in codes))
    client = dvcqg.PortalClient(settings(portal.start()))
    dvcqg.push_due(uow, client, VN, NOW)
    del portal.dossiers[codes[0]]  # lost by the portal
    portal.dossiers[codes[1]]["status"] = "processing"  # changed there
    uow.session.execute(delete(PortalPush).where(PortalPush.dossier_code == codes[2]))  # never queued
    uow.commit()

    assert dvcqg.reconcile(uow, client, NOW) == {"queued": 1, "checked": 2, "repaired": 2, "unreachable": 0}
    assert row(uow, codes[0]).last_error == "reconcile: missing on the portal"
    assert row(uow, codes[1]).last_error == "reconcile: portal differs"
    assert dvcqg.push_due(uow, client, VN, NOW)["pushed"] == 3
    assert all(portal.dossiers[code]["status"] == "done" for code in codes)
    assert dvcqg.reconcile(uow, client, NOW + timedelta(hours=1))["repaired"] == 0

    portal.stop()  # the portal down: nothing is marked, all checked again next time
    assert dvcqg.reconcile(uow, client, NOW + timedelta(hours=2))["unreachable"] == 3
    assert dvcqg.counts_by_state(uow.session)["pushed"] == 3


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

    monkeypatch.setenv("DVCQG_URL", portal.start().url)
    monkeypatch.setenv("DVCQG_TOKEN", TOKEN)
    cli.main(["sync", "--db-url", db_url])
    assert json.loads(capsys.readouterr().out) == {"queued": 1, "sent": {"pushed": 1, "retry": 0, "rejected": 0},
                                                   "queue": {"pending": 0, "pushed": 1, "rejected": 0}}
    assert portal.accepted == [("000.00.06.H56-260302-0001", len(returned()))]

    portal.dossiers.clear()  # the portal lost everything: reconciliation pushes it again
    cli.main(["sync", "--db-url", db_url, "--reconcile"])
    output = json.loads(capsys.readouterr().out)
    assert output["reconcile"] == {"queued": 0, "checked": 1, "repaired": 1, "unreachable": 0}
    assert output["sent"]["pushed"] == 1 and len(portal.accepted) == 2

    cli.main(["sync", "--db-url", db_url, "--status"])
    assert json.loads(capsys.readouterr().out) == {"states": {"pending": 0, "pushed": 1, "rejected": 0},
                                                   "failing": []}


def test_the_service_pushes_on_its_timer(portal, db_url):
    vhost = "reporting-dvcqg-test"
    config = {"AMQP_URI": f"embedded:///{vhost}", "DB_URLS": {"reporting": db_url}, "METRICS_PORTS": {},
              "TRACKING_KEY": TRACKING_KEY, "TIME_ZONE": "Asia/Ho_Chi_Minh", "CATALOG_DIR": None, "max_workers": 4,
              "DVCQG": {"url": portal.start().url, "token": TOKEN}, **VERIFYING}
    embedded.install()
    container = ServiceContainer(ReportingService, config)
    container.start()
    try:
        publisher = Publisher(config["AMQP_URI"])
        lives = returned()
        for evt in lives:
            payload = make_event(evt.source, evt.event_type, evt.data, occurred_at=evt.occurred_at)
            payload["event_id"] = evt.event_id
            publisher.publish(payload, exchange=get_event_exchange(evt.source, config), routing_key=evt.event_type)

        def scrape():
            return generate_latest(metrics_for(container).registry).decode()

        with eventlet.Timeout(30):  # a liveness guard: the push timer fires every DVCQG_PUSH_INTERVAL (5 s)
            while ((lives[0].data["code"], len(lives)) not in portal.accepted
                   or 'motcua_dvcqg_pushes{state="pushed"} 1.0' not in scrape()):
                eventlet.sleep(0.1)
        with ClusterRpcProxy(config) as cluster:
            status = cluster.reporting.national_portal_status(gateway_token("admin", None, "admin"))
        assert status == {"enabled": True, "states": {"pending": 0, "pushed": 1, "rejected": 0}, "failing": []}
    finally:
        container.stop()
        embedded.reset(vhost)


def test_an_appointment_moved_by_a_calendar_decision_is_no_apology(portal):
    code = "000.00.06.H56-260302-0003"
    life = lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                     rescheduled=(vn(2026, 3, 4, 10), vn(2026, 3, 6, 17)))
    [moved] = [evt for evt in life if evt.event_type == "dossier_rescheduled"]
    moved.data["reason"] = "calendar"  # as intake records a decision of the calendar (a day off added)
    uow = stored(memory_database(), life)
    assert dvcqg.push_due(uow, dvcqg.PortalClient(settings(portal.start())), VN, NOW)["pushed"] == 1
    [line] = [line for line in portal.requests[0]["body"]["history"] if line["event"] == "dossier_rescheduled"]
    assert (line["title"], line["content"]) == (dvcqg.CALENDAR_RESCHEDULED, "calendar")
