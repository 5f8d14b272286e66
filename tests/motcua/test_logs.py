"""Log lines (issue 16 §2): one JSON object a line with the service and a trace id that follows the work
across an RPC call and an event (through the outbox) into another service; a caller's mistake (a 4xx) is
one INFO line without a traceback, a real fault stays an ERROR with one; no personal data."""
import contextlib
import io
import json
import logging
import uuid
from datetime import datetime, timezone

import eventlet
import pytest
from nameko.containers import ServiceContainer
from nameko.rpc import RpcProxy
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine
from sqlalchemy.orm import DeclarativeBase

from motcua import embedded, logs
from motcua.bus import event_handler
from motcua.db import Database, ServiceBase, reliability_tables
from motcua.errors import ValidationFailed
from motcua.rpc import rpc

log = logging.getLogger("motcua.test")
PHONE = "0912345678"  # an applicant's number: never in a log line


class FrontBase(ServiceBase, DeclarativeBase):
    pass


class BackBase(ServiceBase, DeclarativeBase):
    pass


reliability_tables(FrontBase.metadata)
reliability_tables(BackBase.metadata)


class Front:
    name = "front"
    tracing = logs.Tracing()
    back = RpcProxy("back")

    @rpc
    def submit(self, code, phone):
        if not code.startswith("000"):
            raise ValidationFailed("not a dossier code", field="code")
        if code.endswith("BUG"):
            raise RuntimeError("a fault of ours")
        log.info("front took %s", code)
        return self.back.record(code, phone)


class Back:
    name = "back"
    tracing = logs.Tracing()
    db = Database(BackBase)

    @rpc
    def record(self, code, phone):
        log.info("back recorded %s", code)
        self.db.emit("result_ready", {"dossier_code": code, "agency_code": "000.00.06.H56",
                                      "finished_at": datetime(2026, 3, 2, 2, tzinfo=timezone.utc)})
        self.db.commit()
        return code


class Listener:
    name = "listener"
    tracing = logs.Tracing()
    db = Database(FrontBase, relay=False)

    @event_handler("back", "result_ready")
    def on_result_ready(self, event):
        log.info("listener applied %s", event.data["dossier_code"])


@contextlib.contextmanager
def configured(fmt: str):
    """The root logger's handler as motcua.run sets it (`fmt`), writing to the buffer yielded; the
    logging set-up as it was afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure("INFO", fmt, "test")
    root.handlers[0].stream = buffer
    try:
        yield buffer
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
        logging.getLogger("nameko.containers").filters.clear()


@pytest.fixture
def json_log():
    """The lines motcua.run's JSON handler would print."""
    with configured("json") as buffer:
        for noisy in ("kombu", "amqp", "nameko"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.fixture
def platform(tmp_path):
    embedded.install()
    vhost = f"logs-{uuid.uuid4().hex[:8]}"
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in ("back", "listener")}
    create_engine_all = [(BackBase, urls["back"]), (FrontBase, urls["listener"])]
    for base, url in create_engine_all:
        base.metadata.create_all(create_engine(url))
    config = {"AMQP_URI": f"embedded:///{vhost}", "DB_URLS": urls, "max_workers": 4, "SERIALIZER": "json"}
    containers = [ServiceContainer(cls, config) for cls in (Front, Back, Listener)]
    for container in containers:
        container.start()
    yield config
    for container in containers:
        container.stop()
    embedded.reset(vhost)


def test_a_trace_id_follows_the_work_across_rpc_and_an_event(json_log, platform):
    with ClusterRpcProxy(platform) as cluster:
        assert cluster.front.submit("000.00.06.H56-260302-0001", PHONE) == "000.00.06.H56-260302-0001"
    with eventlet.Timeout(10):
        while not any(line["message"].startswith("listener applied") for line in json_log()):
            eventlet.sleep(0.05)
    lines = {line["message"].split()[0]: line for line in json_log()
             if line["message"].endswith("000.00.06.H56-260302-0001")}
    assert {lines[name]["service"] for name in ("front", "back", "listener")} == {"front", "back", "listener"}
    traces = {lines[name]["trace_id"] for name in ("front", "back", "listener")}
    assert len(traces) == 1, {name: lines[name]["trace_id"] for name in ("front", "back", "listener")}
    assert len(traces.pop()) == 32
    assert all(set(line) >= {"time", "level", "service", "trace_id", "logger", "message"} for line in json_log())


def test_separate_requests_have_separate_traces(json_log, platform):
    with ClusterRpcProxy(platform) as cluster:
        cluster.front.submit("000.00.06.H56-260302-0002", PHONE)
        cluster.front.submit("000.00.06.H56-260302-0003", PHONE)
    fronts = [line for line in json_log() if line["message"].startswith("front took")]
    assert len(fronts) == 2 and fronts[0]["trace_id"] != fronts[1]["trace_id"]


def test_a_callers_mistake_is_one_info_line_and_a_fault_an_error_with_its_traceback(json_log, platform):
    with ClusterRpcProxy(platform) as cluster:
        with pytest.raises(Exception, match="not a dossier code"):
            cluster.front.submit("nonsense", PHONE)
        with pytest.raises(Exception, match="a fault of ours"):
            cluster.front.submit("000.00.06.H56-BUG", PHONE)
    from_nameko = [line for line in json_log() if line["logger"] == "nameko.containers"]
    [mistake] = [line for line in from_nameko if "not a dossier code" in line["message"]]
    assert mistake["level"] == "INFO" and "exception" not in mistake
    assert mistake["message"] == "front.submit answered validation_error: code: not a dossier code"
    assert mistake["service"] == "front" and mistake["trace_id"]
    [fault] = [line for line in from_nameko if "a fault of ours" in line["message"]]
    assert fault["level"] == "ERROR" and "Traceback" in fault["exception"]
    assert PHONE not in json.dumps(json_log())  # nameko's line names the call, never its arguments


def test_the_outbox_publishes_the_trace_as_a_header_never_in_the_body():
    from motcua.db import OutboxRow
    from motcua.outbox import outgoing as messages

    row = OutboxRow(1, "result_ready", "motcua.events", None,
                    {"event_id": "e1", "event_type": "result_ready", logs.TRACE_KEY: "t" * 32})
    [outgoing] = messages([row], {"motcua.events": "exchange"}.get)  # only the messages: no broker
    assert logs.TRACE_KEY not in outgoing.body and row.payload[logs.TRACE_KEY] == "t" * 32
    assert outgoing.headers == {"event_id": "e1", "event_type": "result_ready", "nameko.trace_id": "t" * 32}


def test_an_event_without_a_trace_is_applied_under_the_batch_workers_own_not_the_previous_events():
    from types import SimpleNamespace

    from motcua.bus import Delivery, EventBatch, apply_event_batch

    seen = []
    handler = SimpleNamespace(container=SimpleNamespace(dependencies=[]),  # no database: nothing to claim
                              apply=lambda service, events: seen.append((events[0], logs.current_trace())))
    traced = Delivery("first", SimpleNamespace(headers={logs.TRACE_HEADER: "a" * 32}), handler)
    untraced = Delivery("second", SimpleNamespace(headers={}), handler)
    logs.set_trace("w" * 32)  # the batch worker's own
    try:
        apply_event_batch(None, EventBatch([traced, untraced]))
    finally:
        logs.set_trace(None)
    assert seen == [("first", "a" * 32), ("second", "w" * 32)]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_password_of_a_broker_failover_list_reaches_a_log_line(fmt):
    """nameko masks the first address's password of `amqp://a;amqp://b` only: the others were printed."""
    uris = "amqp://guest:********@127.0.0.1:1/v;amqp://intake:s3cr%40t@10.0.0.2:5672/v;amqp://intake:pw2@b:5672/v"
    with configured(fmt) as stream:
        logging.getLogger("nameko.messaging").warning("Error connecting to broker at %s (refused)", uris)
        try:
            raise ConnectionError("postgresql://intake:dbpass@db/intake unreachable")
        except ConnectionError:
            logging.getLogger("motcua.outbox").exception("relay failed")
    written = stream.getvalue()
    assert "s3cr" not in written and "pw2" not in written and "dbpass" not in written
    assert "amqp://intake:********@10.0.0.2:5672/v" in written and "postgresql://intake:********@db" in written
