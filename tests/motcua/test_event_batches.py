"""The kit's event inbox on the embedded bus: events are applied in batches, in delivery order, once
each; a batch handler gets its new events as a list; a bad event is retried and parked alone; a
transient failure is retried with growing delays; an undecodable message is parked without a trace of
its body in the logs; a parked copy keeps personal data sealed until the service consumes it again."""
import json
import logging
import time
import uuid
from datetime import datetime, timedelta, timezone

import eventlet
import pytest
from kombu import Connection
from nameko.containers import ServiceContainer
from nameko.rpc import rpc
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.standalone.events import event_dispatcher
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from motcua import embedded
from motcua.bus import batch_handler, event_handler, inbox_queue_name, replay_dead_letters
from motcua.contracts import make_event
from motcua.db import Database, ServiceBase, reliability_tables
from motcua.faults import TransientFailure
from motcua.metrics import metrics_for


class Base(ServiceBase, DeclarativeBase):
    pass


reliability_tables(Base.metadata)


class Applied(Base):
    __tablename__ = "applied"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    how: Mapped[str] = mapped_column(String(20))


BATCHES: list[int] = []  # the sizes of the lists the batch handler was given
TRIES: dict[str, list[float]] = {}  # when each FLAKY / DOWN event was tried
AWAY = {"until": 0.0}  # the "database" FLAKY events need is away until then
BROKEN = {"contact": False}  # while True, every event carrying a contact fails (a bug)


class Listener:
    name = "listener"
    db = Database(Base, relay=False)

    @event_handler("producer", "result_ready")
    def on_result_ready(self, event):
        code = event.data["dossier_code"]
        if code.startswith("POISON"):
            raise RuntimeError("this event can never be applied")
        if code.startswith(("FLAKY", "DOWN")):
            TRIES.setdefault(code, []).append(time.monotonic())
            if code.startswith("DOWN") or time.monotonic() < AWAY["until"]:
                raise TransientFailure("the database is away")
        self.db.apply_once(event, "listener.on_result_ready",
                           lambda uow, e: uow.session.add(Applied(code=e.data["dossier_code"], how="one")))

    @event_handler("intake", "dossier_result_ready")
    def on_dossier_result_ready(self, event):
        if BROKEN["contact"]:
            raise RuntimeError("a bug, fixed before the replay")
        self.db.apply_once(event, "listener.on_dossier_result_ready", lambda uow, e: uow.session.add(
            Applied(code=e.data["code"], how=e.data["contact"]["phone"])))

    @batch_handler(("producer", "dossier_overdue"), ("producer", "delay_predicted"))
    def on_late(self, events):
        BATCHES.append(len(events))
        self.db.session.add_all(Applied(code=e.data["dossier_code"], how=e.event_type) for e in events)


NOW = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)


def result_ready(code):
    return make_event("producer", "result_ready", {"dossier_code": code, "agency_code": "000.00.06.H56",
                                                   "finished_at": NOW})


def overdue(code):
    return make_event("producer", "dossier_overdue", {"dossier_code": code, "agency_code": "000.20.01.H56",
                                                      "due_at": NOW, "detected_at": NOW})


@pytest.fixture
def listener(tmp_path):
    embedded.install()
    vhost = f"batches-{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'listener.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    config = {"AMQP_URI": f"embedded:///{vhost}", "DB_URLS": {"listener": url}, "max_workers": 4,
              "EVENT_MAX_ATTEMPTS": 2, "SERIALIZER": "json",
              "RETRY_BASE_SECONDS": 0.2, "RETRY_CAP_SECONDS": 1, "RETRY_FOR_SECONDS": 3}
    container = ServiceContainer(Listener, config)
    container.start()
    BATCHES.clear()
    TRIES.clear()
    AWAY["until"], BROKEN["contact"] = 0.0, False
    yield config, container, engine
    container.stop()
    embedded.reset(vhost)


def applied(engine):
    with engine.connect() as connection:
        return [(row.code, row.how) for row in connection.execute(select(Applied.code, Applied.how).order_by(Applied.id))]


def depth(amqp_uri, queue):
    with Connection(amqp_uri) as connection:
        return connection.default_channel.queue_declare(queue, passive=True).message_count


def wait_for(predicate, timeout=10):
    with eventlet.Timeout(timeout, False):
        while not predicate():
            eventlet.sleep(0.01)
    return predicate()


def test_events_are_applied_in_batches_in_delivery_order_once_each(listener):
    config, container, engine = listener
    dispatch = event_dispatcher(config)
    codes = [f"D{i:03d}" for i in range(60)]
    repeated = result_ready("D000")
    dispatch("producer", "result_ready", repeated)
    for code in codes[1:]:
        dispatch("producer", "result_ready", result_ready(code))
    dispatch("producer", "result_ready", repeated)  # the relay published it again
    assert wait_for(lambda: len(applied(engine)) == 60)
    assert applied(engine) == [(code, "one") for code in codes]  # in order, the repeat skipped
    registry = metrics_for(container).registry
    assert wait_for(lambda: registry.get_sample_value(
        "motcua_duplicate_events_total", {"service": "listener", "consumer": "listener.on_result_ready"}) == 1)
    transactions = registry.get_sample_value("motcua_event_batch_size_count", {"service": "listener"})
    assert transactions < 61  # several events shared a transaction


def test_a_batch_handler_gets_its_new_events_as_a_list(listener):
    config, _, engine = listener
    dispatch = event_dispatcher(config)
    first = overdue("L1")
    for payload in (first, overdue("L2"), first, overdue("L3")):
        dispatch("producer", "dossier_overdue", payload)
    assert wait_for(lambda: len(applied(engine)) == 3)
    eventlet.sleep(0.1)
    assert applied(engine) == [("L1", "dossier_overdue"), ("L2", "dossier_overdue"), ("L3", "dossier_overdue")]
    assert sum(BATCHES) == 3  # the repeat never reached the handler


def test_a_bad_event_is_retried_and_parked_alone_while_the_others_are_applied(listener):
    config, container, engine = listener
    dispatch = event_dispatcher(config)
    for code in ("OK-1", "POISON-1", "OK-2"):
        dispatch("producer", "result_ready", result_ready(code))
    dead = f"{inbox_queue_name('listener')}.dead"
    assert wait_for(lambda: depth(config["AMQP_URI"], dead) == 1)
    assert sorted(applied(engine)) == [("OK-1", "one"), ("OK-2", "one")]
    assert metrics_for(container).dead_letters.labels("listener", inbox_queue_name("listener"))._value.get() == 1


def dead_messages(amqp_uri, queue):
    """The parked messages of `queue` (left parked)."""
    from motcua.bus import peek_dead_letters
    return peek_dead_letters(amqp_uri, queue)


def test_a_transient_failure_is_retried_with_growing_delays_and_applied_without_parking(listener):
    config, container, engine = listener
    AWAY["until"] = time.monotonic() + 1.5  # shorter than RETRY_FOR_SECONDS (3)
    event_dispatcher(config)("producer", "result_ready", result_ready("FLAKY-1"))
    assert wait_for(lambda: applied(engine) == [("FLAKY-1", "one")])
    dead = f"{inbox_queue_name('listener')}.dead"
    assert depth(config["AMQP_URI"], dead) == 0
    tries = TRIES["FLAKY-1"]
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    assert len(tries) >= 3 and min(gaps) >= 0.15  # no tight loop: each retry waited a delay queue's time
    assert max(gaps) >= 0.35  # and the delays grew (0.2 s, then 0.4 s or more)
    retries = metrics_for(container).registry.get_sample_value(
        "motcua_event_retries_total", {"service": "listener", "queue": inbox_queue_name("listener")})
    assert retries == len(tries) - 1


def test_a_transient_failure_past_the_retry_window_is_parked_once(listener):
    config, container, engine = listener
    event_dispatcher(config)("producer", "result_ready", result_ready("DOWN-1"))
    dead = f"{inbox_queue_name('listener')}.dead"
    assert wait_for(lambda: depth(config["AMQP_URI"], dead) == 1, timeout=15)
    tries = TRIES["DOWN-1"]
    assert tries[-1] - tries[0] >= 3  # retried for RETRY_FOR_SECONDS before it was parked
    eventlet.sleep(1.5)
    assert depth(config["AMQP_URI"], dead) == 1 and len(TRIES["DOWN-1"]) == len(tries)  # parked once, no loop
    [parked] = dead_messages(config["AMQP_URI"], inbox_queue_name("listener"))
    assert parked.headers["x-motcua-attempts"] == len(tries)
    assert parked.headers["x-motcua-error"] == "TransientFailure: the database is away"


def test_undecodable_messages_are_parked_once_and_their_bodies_never_logged(listener, caplog):
    config, container, engine = listener
    inbox = inbox_queue_name("listener")
    secret_bits = ("Nguyễn Văn An", "0912345678", "an@example.vn")
    whole = json.dumps(result_ready("AFTER"))
    truncated = ('{"event_type": "dossier_received", "data": {"contact": {"full_name": "Nguyễn Văn An", '
                 '"phone": "0912345678", "email": "an@exa').encode()
    caplog.set_level(logging.DEBUG)
    with Connection(config["AMQP_URI"]) as connection:
        producer = connection.Producer()
        producer.publish(truncated, exchange="", routing_key=inbox, content_type="application/json",
                         content_encoding="utf-8")
        producer.publish("Nguyễn Văn An, 0912345678, an@example.vn", exchange="", routing_key=inbox,
                         content_type="text/plain", content_encoding="utf-8")
    event_dispatcher(config)("producer", "result_ready", json.loads(whole))
    dead = f"{inbox}.dead"
    assert wait_for(lambda: depth(config["AMQP_URI"], dead) == 2)
    assert wait_for(lambda: applied(engine) == [("AFTER", "one")])  # the others go on
    eventlet.sleep(0.5)
    assert depth(config["AMQP_URI"], dead) == 2 and depth(config["AMQP_URI"], inbox) == 0
    parked = dead_messages(config["AMQP_URI"], inbox)
    assert sorted(m.headers["x-motcua-content-type"] for m in parked) == ["application/json", "text/plain"]
    assert all(m.headers["x-motcua-error"].startswith("undecodable message:") for m in parked)
    for bit in secret_bits:
        assert bit not in caplog.text
        assert all(bit.encode() not in m.body and bit not in repr(m.headers) for m in parked)
    assert "parked a message in inbox.listener.dead" in caplog.text


def dossier_result_ready(code, phone):
    return make_event("intake", "dossier_result_ready", {
        "code": code, "procedure_name": "Cấp phiếu lý lịch tư pháp", "agency_code": "000.00.06.H56",
        "finished_at": NOW, "due_at": NOW + timedelta(days=3),
        "contact": {"full_name": "Nguyễn Văn An", "email": "an@example.vn", "phone": phone}})


def test_a_parked_copy_is_sealed_and_a_replay_after_the_fix_is_applied_opened(listener):
    config, container, engine = listener
    BROKEN["contact"] = True
    event_dispatcher(config)("intake", "dossier_result_ready", dossier_result_ready("D-SEALED", "0912345678"))
    inbox = inbox_queue_name("listener")
    assert wait_for(lambda: depth(config["AMQP_URI"], f"{inbox}.dead") == 1)
    [parked] = dead_messages(config["AMQP_URI"], inbox)
    assert b"D-SEALED" in parked.body  # what is not personal stays readable for the operator
    assert not any(bit in parked.body for bit in (b"0912345678", "Nguyễn".encode(), b"an@example.vn"))
    # A replay while the bug is still there parks it once more, at once.
    assert replay_dead_letters(config["AMQP_URI"], inbox) == 1
    assert wait_for(lambda: depth(config["AMQP_URI"], f"{inbox}.dead") == 1)
    eventlet.sleep(1)
    [again] = dead_messages(config["AMQP_URI"], inbox)
    assert (again.headers["x-motcua-replays"], again.headers["x-motcua-attempts"]) == (1, 1)
    BROKEN["contact"] = False
    assert replay_dead_letters(config["AMQP_URI"], inbox) == 1
    assert wait_for(lambda: applied(engine) == [("D-SEALED", "0912345678")])  # opened by the listener's key
    assert depth(config["AMQP_URI"], f"{inbox}.dead") == 0


class Answering:
    name = "answering"

    @rpc
    def ping(self):
        return "pong"


def test_an_undecodable_rpc_request_is_dropped_without_its_body_in_the_logs(caplog):
    """nameko's own consumers (RPC, broadcasts) drop such a message, as before, but never log its body."""
    embedded.install()
    config = {"AMQP_URI": f"embedded:///rpc-{uuid.uuid4().hex[:8]}", "SERIALIZER": "json", "max_workers": 2}
    container = ServiceContainer(Answering, config)
    container.start()
    caplog.set_level(logging.DEBUG)
    try:
        with Connection(config["AMQP_URI"]) as connection:
            connection.Producer().publish("Nguyễn Văn An, 0912345678", exchange="nameko-rpc",
                                          routing_key="answering.ping", content_type="text/plain")
        assert wait_for(lambda: "dropped an undecodable message" in caplog.text)
        assert wait_for(lambda: depth(config["AMQP_URI"], "rpc-answering") == 0)
        assert "Nguyễn" not in caplog.text and "0912345678" not in caplog.text
        with ClusterRpcProxy(config) as cluster:
            assert cluster.answering.ping() == "pong"  # still answering
    finally:
        container.stop()
