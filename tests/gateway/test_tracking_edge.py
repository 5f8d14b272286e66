"""Public tracking answered at the edge, over real HTTP (reporting mocked): the right key's answer is given
from the gateway's cache with no RPC and no statement but the throttle's, until intake or workflow
announce a newer version of the dossier; wrong keys and locked dossiers are treated as before."""
from __future__ import annotations

import contextlib
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import replace_dependencies
from sqlalchemy import event

from motcua.config import nameko_config
from motcua.contracts import make_event
from motcua.contracts.events import EVENT_SCHEMAS, DossierEvent, RunEvent
from motcua.errors import WrongKey
from services.gateway import dependencies
from services.gateway.dependencies import BroadcastHandler, TrackingAnswers, engine_of, reads_of
from services.gateway.service import GatewayService
from tests import infra
from tests.gateway.conftest import AGENCY, SERVICES

KEY = "4321"
NOW = datetime(2026, 3, 2, 8, tzinfo=timezone.utc)
LAND_OFFICE = "000.12.01.H56"


def new_code() -> str:
    return f"{AGENCY}-260302-{uuid.uuid4().int % 10_000:04d}-{uuid.uuid4().hex[:6]}"


def cache_of(container):
    return next(d for d in container.dependencies if isinstance(d, TrackingAnswers)).cache


@pytest.fixture
def api(gateway):
    for name in SERVICES:
        getattr(gateway, name).reset_mock(return_value=True, side_effect=True)
    gateway.reporting.track.side_effect = lambda code, key: answer(code, key)
    # the portal's page asks whether the procedure's fee is paid online (a level-4 one with a fee)
    gateway.intake.get_procedure.return_value = {"code": "1.012786", "online_level": "partial",
                                                 "channels": {"online": {"fee": 0}}}
    gateway.versions = {}  # code → (dossier_version, run_version) reporting has applied
    return gateway


def answer(code: str, key: str, versions: dict | None = None) -> dict:
    if key != KEY:
        raise WrongKey("no dossier with this code and key")
    dossier_version, run_version = (versions or {}).get(code, (2, 1))
    return {"code": code, "procedure_code": "1.012786", "status": "processing", "status_code": 4,
            "current_agency_code": LAND_OFFICE,
            "timeline": [], "supplement_items": [], "dossier_version": dossier_version, "run_version": run_version}


def reporting_at(api, code: str, dossier_version: int, run_version: int) -> None:
    api.versions[code] = (dossier_version, run_version)
    api.reporting.track.side_effect = lambda c, k: answer(c, k, api.versions)


def track(api, code: str, key: str = KEY) -> requests.Response:
    return requests.get(f"{api.url}/api/v1/track/{quote(code)}", params={"key": key}, timeout=30)


def announce(api, source: str, event_type: str, data: dict) -> None:
    """Intake or workflow publishes an event about the dossier; the gateway hears it (broadcast)."""
    event_dispatcher(api.config)(source, event_type, make_event(source, event_type, data))
    code = data.get("dossier_code") or data["code"]
    version = data.get("run_version") or data.get("dossier_version")
    kind = 1 if "run_version" in data else 0
    assert infra.wait_for(lambda: cache_of(api.container)._announced.get(code, (0, 0))[kind] >= version, 10)


INTAKE_EVENT = ("intake", "dossier_processing_started",
                lambda code, v: {"code": code, "started_at": NOW, "status": "processing", "status_code": 4,
                                 "dossier_version": v})
# Every run event moves the version; these are the ones the gateway did not hear before (no task).
RUN_EVENTS = [
    ("workflow", "task_assigned", lambda code, v: {
        "dossier_code": code, "task_id": "t-2", "agency_code": LAND_OFFICE, "step": "Ký", "step_index": 1,
        "assigned_at": NOW, "due_at": NOW + timedelta(days=2), "role": "leader", "run_version": v}),
    ("workflow", "result_ready", lambda code, v: {
        "dossier_code": code, "agency_code": AGENCY, "finished_at": NOW, "run_version": v}),
    ("workflow", "dossier_overdue", lambda code, v: {
        "dossier_code": code, "agency_code": AGENCY, "due_at": NOW, "detected_at": NOW, "run_version": v}),
]


def statements_during(api, action) -> list[str]:
    statements = []
    # The gateway's outbox relay looks for unpublished rows every second on the same engine: not the action's.
    listener = lambda *args: "outbox" not in args[2] and statements.append(args[2])  # noqa: E731
    reads = reads_of(api.container)
    engines = [engine_of(api.container), *([reads.engine] if reads.own else [])]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", listener)
    try:
        action()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", listener)
    return statements


def test_the_gateway_hears_every_event_that_gives_a_dossier_a_new_version():
    """Every intake event carries a dossier_version and every workflow run event a run_version, the task
    events and the others alike (result_ready, dossier_overdue, ...): each must reach the edge cache."""
    heard = {(handler.source_service, event_type)
             for member in vars(GatewayService).values()
             for handler in getattr(member, "nameko_entrypoints", ()) if isinstance(handler, BroadcastHandler)
             for event_type in handler.event_types}
    versioned = {("intake" if isinstance(schema, DossierEvent) else "workflow", event_type)
                 for event_type, (_v, schema) in EVENT_SCHEMAS.items() if isinstance(schema, DossierEvent | RunEvent)}
    assert versioned <= heard and ("workflow", "result_ready") in heard


def test_a_right_key_is_answered_from_the_edge_without_rpc_and_with_the_throttles_statement_only(api):
    code = new_code()
    first = track(api, code)
    assert first.status_code == 200 and first.json()["dossier_version"] == 2
    answers = []
    statements = statements_during(api, lambda: answers.extend(track(api, code) for _ in range(10)))
    assert api.reporting.track.call_count == 1
    assert all(a.status_code == 200 and a.content == first.content for a in answers)
    assert answers[0].headers["Content-Type"] == "application/json"
    assert len(statements) == 10 and all("failed_attempts" in s for s in statements), statements
    metrics = requests.get(f"{api.url}/metrics", timeout=10).text
    assert 'motcua_tracking_answers_total{outcome="hit"}' in metrics and code not in metrics


@pytest.mark.parametrize("source, event_type, data", [INTAKE_EVENT, *RUN_EVENTS],
                         ids=[e[1] for e in (INTAKE_EVENT, *RUN_EVENTS)])
def test_a_newer_version_announced_sends_the_next_request_to_reporting(api, source, event_type, data):
    code = new_code()
    reporting_at(api, code, 2, 1)
    track(api, code)
    announce(api, source, event_type, data(code, 2 if source == "intake" else 1))  # nothing newer
    track(api, code)
    assert api.reporting.track.call_count == 1
    reporting_at(api, code, 3, 2)
    announce(api, source, event_type, data(code, 3 if source == "intake" else 2))
    assert track(api, code).json()["dossier_version"] == 3
    track(api, code)
    assert api.reporting.track.call_count == 2


def test_an_answer_behind_the_announced_version_is_not_kept(api):
    code = new_code()
    reporting_at(api, code, 2, 1)
    announce(api, *RUN_EVENTS[0][:2], RUN_EVENTS[0][2](code, 2))  # heard before reporting applied it
    for _ in range(3):
        assert track(api, code).json()["run_version"] == 1
    assert api.reporting.track.call_count == 3
    reporting_at(api, code, 2, 2)  # reporting applied it
    for _ in range(3):
        assert track(api, code).json()["run_version"] == 2
    assert api.reporting.track.call_count == 4


def test_a_wrong_key_never_gets_the_cached_answer_and_is_counted_by_the_throttle(api):
    code = new_code()
    track(api, code)
    failures = []
    statements = statements_during(api, lambda: failures.append(track(api, code, "0000")))
    assert failures[0].status_code == 404 and failures[0].json()["error"]["code"] == "not_found"
    assert api.reporting.track.call_count == 2
    assert any(s.lstrip().upper().startswith("INSERT") for s in statements), statements  # the miss is counted
    assert track(api, code).status_code == 200 and api.reporting.track.call_count == 2


def test_a_locked_dossier_is_refused_even_to_the_right_key_it_has_cached(api):
    code = new_code()
    assert track(api, code).status_code == 200
    for _ in range(api.config["PROOF_MAX_FAILURES"]):
        assert track(api, code, "0000").status_code == 404
    calls = api.reporting.track.call_count
    response = track(api, code)
    assert response.status_code == 429 and "Retry-After" in response.headers
    assert api.reporting.track.call_count == calls


def test_the_portal_page_and_the_notification_choices_prove_the_key_the_same_way(api):
    code = new_code()
    api.notify.get_preferences.return_value = {"email": True, "sms": True}
    assert track(api, code).status_code == 200
    page = requests.get(f"{api.url}/tra-cuu", params={"code": code, "key": KEY}, timeout=30)
    assert page.status_code == 200 and code in page.text
    choices = requests.get(f"{api.url}/api/v1/track/{quote(code)}/notifications", params={"key": KEY}, timeout=30)
    assert choices.status_code == 200
    assert api.reporting.track.call_count == 1


def broadcast_connection(vhost: str) -> str | None:
    """The connection consuming the gateway's broadcast queue of intake's events, once the management
    API (its statistics lag a few seconds) lists the queue's consumer."""
    for queue in requests.get(f"{infra.RABBIT_MGMT}/queues/{vhost}", auth=infra.RABBIT_AUTH, timeout=10).json():
        if queue["name"].startswith("evt-intake-broadcast--gateway.on_dossier_event"):
            details = requests.get(f"{infra.RABBIT_MGMT}/queues/{vhost}/{quote(queue['name'])}",
                                   auth=infra.RABBIT_AUTH, timeout=10).json()
            for consumer in details.get("consumer_details", ()):
                channel = consumer.get("channel_details")
                if isinstance(channel, dict) and channel.get("connection_name"):  # [] until the stats catch up
                    return channel["connection_name"]
    return None


@contextlib.contextmanager
def gateway_alone(tmp_path, amqp_uri, **config):
    """A gateway container of its own (reporting and the others mocked): (container, its HTTP target, mocks)."""
    config = {**nameko_config(amqp_uri), "DB_URLS": infra.migrated_sqlite_urls(tmp_path),
              "WEB_SERVER_ADDRESS": f"127.0.0.1:{infra.free_port()}", "METRICS_PORTS": {}, **config}
    container = ServiceContainer(GatewayService, config)
    mocks = dict(zip(SERVICES, replace_dependencies(container, *SERVICES)))
    mocks["reporting"].track.side_effect = answer
    container.start()
    target = type("Gateway", (), {"url": f"http://{config['WEB_SERVER_ADDRESS']}", "reporting": mocks["reporting"],
                                  "config": config, "container": container})
    try:
        yield container, target, mocks
    finally:
        container.stop()


@pytest.mark.integration
def test_a_reconnection_of_the_broadcast_consumer_forgets_every_answer(tmp_path, amqp_uri):
    """Its queue goes with its connection, and what was published meanwhile with it."""
    with gateway_alone(tmp_path, amqp_uri) as (container, target, mocks):
        cache = cache_of(container)
        code = new_code()
        for _ in range(2):
            assert track(target, code).status_code == 200
        assert mocks["reporting"].track.call_count == 1 and len(cache) == 1
        connection = infra.wait_for(lambda: broadcast_connection(amqp_uri.rsplit("/", 1)[1]), 30)
        requests.delete(f"{infra.RABBIT_MGMT}/connections/{quote(connection)}", auth=infra.RABBIT_AUTH,
                        timeout=10).raise_for_status()
        assert infra.wait_for(lambda: len(cache) == 0, 20)
        # heard again once reconnected: answers are kept again
        assert infra.wait_for(lambda: track(target, code).status_code == 200 and len(cache) == 1, 20)
        calls = mocks["reporting"].track.call_count
        assert track(target, code).status_code == 200 and mocks["reporting"].track.call_count == calls


def test_the_broadcast_consumer_lets_its_connection_heartbeat_while_events_never_stop(monkeypatch):
    """Its messages go unacknowledged, so the gateway sends nothing back on that connection, and kombu's
    loop checks heartbeats only after a second with no message: each turn of the loop checks instead,
    at most once a second (RabbitMQ 3.10 was seen not to close such a connection, so this is the check's
    own test, with the loop's turns at chosen moments)."""
    class Connection:
        checks = 0

        def heartbeat_check(self):
            self.checks += 1

    consumer, connection, clock = BroadcastHandler.queue_consumer, Connection(), [100.0]
    monkeypatch.setattr(consumer, "_consumers", {"a provider": "its consumer"}, raising=False)
    monkeypatch.setattr(consumer, "_connection", connection, raising=False)
    monkeypatch.setattr(consumer, "_heartbeat_checked", 0.0, raising=False)
    monkeypatch.setattr(dependencies.time, "monotonic", lambda: clock[0])
    checked = []
    for at in (100.0, 100.2, 100.9, 101.0, 101.5, 103.0):  # a message every few tenths, then a pause
        clock[0] = at
        consumer.on_iteration()
        checked.append(connection.checks)
    assert checked == [1, 1, 1, 2, 2, 3]
    assert not consumer.should_stop
