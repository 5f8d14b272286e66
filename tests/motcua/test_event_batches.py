"""The kit's event inbox on the embedded bus: events are applied in batches, in delivery order, once
each; a batch handler gets its new events as a list; a bad event is retried and parked alone."""
import uuid
from datetime import datetime, timezone

import eventlet
import pytest
from kombu import Connection
from nameko.containers import ServiceContainer
from nameko.standalone.events import event_dispatcher
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from motcua import embedded
from motcua.bus import batch_handler, event_handler, inbox_queue_name
from motcua.contracts import make_event
from motcua.db import Database, ServiceBase, reliability_tables
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


class Listener:
    name = "listener"
    db = Database(Base, relay=False)

    @event_handler("producer", "result_ready")
    def on_result_ready(self, event):
        if event.data["dossier_code"].startswith("POISON"):
            raise RuntimeError("this event can never be applied")
        self.db.apply_once(event, "listener.on_result_ready",
                           lambda uow, e: uow.session.add(Applied(code=e.data["dossier_code"], how="one")))

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
              "EVENT_MAX_ATTEMPTS": 2, "SERIALIZER": "json"}
    container = ServiceContainer(Listener, config)
    container.start()
    BATCHES.clear()
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
