"""The reliability kit on real RabbitMQ + PostgreSQL: outbox, inbox, dead letters, broker restart."""
import contextlib
import time
from datetime import datetime, timezone

import pytest
from nameko.amqp.publish import Publisher
from nameko.containers import ServiceContainer
from nameko.rpc import rpc
from nameko.standalone.events import get_event_exchange
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chaos.broker import Broker
from motcua.bus import event_handler
from motcua.contracts import make_event
from motcua.db import Database, ServiceBase, reliability_tables
from motcua.metrics import metrics_for
from tests import infra


class KitBase(ServiceBase, DeclarativeBase):
    pass


reliability_tables(KitBase.metadata)


class Applied(KitBase):
    __tablename__ = "applied"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))


class Producer:
    name = "kit_producer"
    db = Database(KitBase)

    @rpc
    def emit(self, codes):
        for code in codes:
            self.db.emit("result_ready", {"dossier_code": code, "agency_code": "000.00.06.H56",
                                          "finished_at": datetime.now(timezone.utc)})
        self.db.commit()


class Consumer:
    name = "kit_consumer"
    db = Database(KitBase, relay=False)

    @event_handler("kit_producer", "result_ready")
    def on_result_ready(self, event):
        if event.data["dossier_code"].startswith("POISON"):
            raise RuntimeError("this message can never be applied")
        self.db.apply_once(event, "kit_consumer.on_result_ready",
                           lambda uow, e: uow.session.add(Applied(code=e.data["dossier_code"])))


QUEUE = "inbox.kit_consumer"  # every event the consumer handles


@contextlib.contextmanager
def kit_on(amqp_uri: str):
    """The producer and the consumer on `amqp_uri`, each with a fresh database: (config, containers)."""
    urls = infra.create_service_databases(names=("kit_producer", "kit_consumer"), migrate=False)
    for url in urls.values():
        engine = create_engine(url)
        KitBase.metadata.create_all(engine)
        engine.dispose()
    config = {"AMQP_URI": amqp_uri, "DB_URLS": urls, "max_workers": 4, "EVENT_MAX_ATTEMPTS": 3}
    containers = [ServiceContainer(Producer, config), ServiceContainer(Consumer, config)]
    try:
        for container in containers:
            container.start()
        yield config, containers
    finally:
        for container in containers:
            container.stop()
        infra.drop_databases(urls)


@pytest.fixture
def kit(amqp_uri, postgres):
    with kit_on(amqp_uri) as started:
        yield started


@pytest.fixture
def kit_on_its_own_broker(tmp_path, postgres):
    """The kit on a RabbitMQ node of the test's own: stopping it disturbs no other test (the suite's lanes
    share the machine's broker)."""
    broker = Broker(tmp_path)
    broker.start()
    try:
        with kit_on(broker.amqp_uri) as (config, containers):
            yield config, containers, broker
    finally:
        broker.stop()


def applied_codes(config):
    engine = create_engine(config["DB_URLS"]["kit_consumer"])
    with engine.connect() as connection:
        codes = [row.code for row in connection.execute(select(Applied.code))]
    engine.dispose()
    return codes


def pending_outbox(config):
    engine = create_engine(config["DB_URLS"]["kit_producer"])
    table = KitBase.metadata.tables["outbox"]
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(table).where(table.c.published_at.is_(None))).scalar_one()
    engine.dispose()
    return count




def vhost_of(uri):
    return uri.rsplit("/", 1)[1]


def test_outbox_events_arrive_once_each(kit):
    config, _ = kit
    codes = [f"D{i:03d}" for i in range(50)]
    with ServiceRpcProxy("kit_producer", config) as producer:
        producer.emit(codes)
    assert infra.wait_for(lambda: len(applied_codes(config)) >= 50)
    assert sorted(applied_codes(config)) == codes
    assert pending_outbox(config) == 0


def test_a_repeated_event_is_applied_once(kit):
    config, containers = kit
    payload = make_event("kit_producer", "result_ready", {
        "dossier_code": "DUP", "agency_code": "000.00.06.H56", "finished_at": datetime.now(timezone.utc)})
    publisher = Publisher(config["AMQP_URI"])
    exchange = get_event_exchange("kit_producer", config)
    for _ in range(3):
        publisher.publish(payload, exchange=exchange, routing_key="result_ready", declare=[exchange])
    duplicates = metrics_for(containers[1]).duplicates.labels("kit_consumer", "kit_consumer.on_result_ready")
    assert infra.wait_for(lambda: applied_codes(config) == ["DUP"])
    assert infra.wait_for(lambda: duplicates._value.get() == 2)  # the two repeats were seen and skipped
    assert applied_codes(config) == ["DUP"]


def test_poison_message_is_parked_with_its_error_not_lost_or_looped(kit):
    config, containers = kit
    with ServiceRpcProxy("kit_producer", config) as producer:
        producer.emit(["POISON-1", "OK-1"])
    vhost = vhost_of(config["AMQP_URI"])
    assert infra.wait_for(lambda: infra.queue_depth(vhost, QUEUE + ".dead") == 1)
    assert infra.wait_for(lambda: applied_codes(config) == ["OK-1"])
    assert infra.queue_depth(vhost, QUEUE) == 0
    dead = infra.get_messages(vhost, QUEUE + ".dead")
    assert dead[0]["properties"]["headers"]["x-motcua-error"].startswith("RuntimeError: this message can never")
    assert dead[0]["properties"]["headers"]["x-motcua-attempts"] == 3
    assert metrics_for(containers[1]).dead_letters.labels("kit_consumer", QUEUE)._value.get() == 1


def test_events_written_while_the_broker_is_down_are_published_when_it_returns(kit_on_its_own_broker):
    config, _, broker = kit_on_its_own_broker
    with ServiceRpcProxy("kit_producer", config) as producer:
        producer.emit(["BEFORE"])
    assert infra.wait_for(lambda: applied_codes(config) == ["BEFORE"])
    # Write straight to the producer's database as a business transaction would, with the broker away.
    broker.ctl("stop_app")
    try:
        engine = create_engine(config["DB_URLS"]["kit_producer"])
        from sqlalchemy.orm import Session

        from motcua.db import UnitOfWork
        with Session(engine) as session:
            uow = UnitOfWork(session, "kit_producer", KitBase.metadata)
            for i in range(20):
                uow.emit("result_ready", {"dossier_code": f"DURING-{i:02d}", "agency_code": "000.00.06.H56",
                                          "finished_at": datetime.now(timezone.utc)})
            uow.commit()
        engine.dispose()
        time.sleep(2)
        assert pending_outbox(config) == 20  # nothing could be published, nothing was dropped
    finally:
        broker.ctl("start_app")
        broker.ctl("await_startup")
    assert infra.wait_for(lambda: pending_outbox(config) == 0, timeout=90)
    assert infra.wait_for(lambda: len(applied_codes(config)) == 21, timeout=90)
    assert sorted(applied_codes(config)) == ["BEFORE"] + [f"DURING-{i:02d}" for i in range(20)]
