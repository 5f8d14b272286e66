"""Delayed retries and parking on real RabbitMQ + PostgreSQL (issue 11, problems 2 and 4).

The consumer's own database refuses connections for real (`ALLOW_CONNECTIONS false` and its backends
terminated): events wait in the broker's delay queues and are applied when it returns, none parked; an
outage longer than the retry window parks each event once; undecodable messages are parked once with
nothing of their bodies logged; `motcua dead-letters` lists, shows (no personal data), replays and
purges, and a replayed poison parks once more, not in a loop."""
import contextlib
import json
import logging
import re
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from kombu import Connection
from nameko.amqp.publish import Publisher
from nameko.containers import ServiceContainer
from nameko.standalone.events import get_event_exchange
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from motcua.bus import event_handler, inbox_queue_name, parking_exchange
from motcua.config import ROOT
from motcua.contracts import make_event
from motcua.db import Database, ServiceBase, reliability_tables
from motcua.errors import IllegalTransition
from motcua.metrics import metrics_for
from motcua.worker import TASKS_EXCHANGE, task_handler
from tests import infra


class RetryBase(ServiceBase, DeclarativeBase):
    pass


reliability_tables(RetryBase.metadata)


class Notified(RetryBase):
    __tablename__ = "notified"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str] = mapped_column(String(20))


class Notifier:
    """Stands for notify: needs its database and the applicant's contact."""

    name = "retry_notifier"
    db = Database(RetryBase, relay=False)

    @event_handler("intake", "dossier_result_ready")
    def on_result_ready(self, event):
        if event.data["code"].startswith("POISON"):
            raise IllegalTransition("this dossier can never be notified")
        self.db.apply_once(event, "retry_notifier.on_result_ready", lambda uow, e: uow.session.add(
            Notified(code=e.data["code"], phone=e.data["contact"]["phone"])))


QUEUE = inbox_queue_name("retry_notifier")
NAME, PHONE, EMAIL = "Trần Thị Bích", "0987654321", "bich@example.vn"


def result_ready(code):
    now = datetime.now(timezone.utc)
    return make_event("intake", "dossier_result_ready", {
        "code": code, "procedure_name": "Cấp giấy phép xây dựng", "agency_code": "000.00.06.H56",
        "finished_at": now, "due_at": now + timedelta(days=2),
        "contact": {"full_name": NAME, "email": EMAIL, "phone": PHONE}})


@pytest.fixture
def stack(amqp_uri, postgres):
    """Start the notifier with given retry settings; stopped and its database dropped after the test."""
    urls = infra.create_service_databases(names=("retry_notifier",), migrate=False)
    engine = create_engine(urls["retry_notifier"])
    RetryBase.metadata.create_all(engine)
    engine.dispose()
    started = []

    def start(**retry):
        config = {"AMQP_URI": amqp_uri, "DB_URLS": urls, "max_workers": 4, "SERIALIZER": "json",
                  **retry}
        container = ServiceContainer(Notifier, config)
        container.start()
        started.append(container)
        return config, container

    yield start
    for container in started:
        container.stop()
    infra.drop_databases(urls)


def publish(config, *payloads):
    publisher = Publisher(config["AMQP_URI"], use_confirms=True)
    exchange = get_event_exchange("intake", config)
    for payload in payloads:
        publisher.publish(payload, exchange=exchange, routing_key="dossier_result_ready", declare=[exchange])


def notified(config):
    engine = create_engine(config["DB_URLS"]["retry_notifier"])
    with engine.connect() as connection:
        rows = sorted(connection.execute(select(Notified.code, Notified.phone)).all())
    engine.dispose()
    return rows


@contextlib.contextmanager
def refusing_connections(url):
    """This test's database refuses new connections and loses its open ones, until the block ends."""
    name = url.rsplit("/", 1)[1]
    admin = create_engine(infra.PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        connection.exec_driver_sql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    try:
        yield
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()


def vhost_of(config):
    return config["AMQP_URI"].rsplit("/", 1)[1]


def depth(config, queue):
    """Messages ready in `queue`, from the broker itself (the management API's figures lag seconds)."""
    with Connection(config["AMQP_URI"]) as connection:
        return connection.default_channel.queue_declare(queue, passive=True).message_count


def counter(container, name):
    return metrics_for(container).registry.get_sample_value(name, {"service": "retry_notifier", "queue": QUEUE}) or 0


def test_events_wait_out_a_database_outage_and_a_restart_with_growing_delays_and_none_is_parked(stack):
    settings = {"RETRY_BASE_SECONDS": 0.5, "RETRY_CAP_SECONDS": 4, "RETRY_FOR_SECONDS": 120}
    config, container = stack(**settings)
    codes = [f"D-{i:02d}" for i in range(10)]
    publish(config, result_ready("BEFORE"))
    assert infra.wait_for(lambda: notified(config) == [("BEFORE", PHONE)])
    with refusing_connections(config["DB_URLS"]["retry_notifier"]):
        publish(config, *(result_ready(code) for code in codes))
        assert infra.wait_for(lambda: counter(container, "motcua_event_retries_total") >= 20, timeout=30)
        time.sleep(4)  # several rounds through the delay queues
        waiting = {q["name"] for q in _queues(config) if ".wait." in q["name"]}
        [row] = [line.split() for line in cli(config, "list").splitlines() if line.startswith(QUEUE)]
        assert row[1] == "0" and int(row[2]) > 0  # the operator sees them waiting, none parked
        container.kill()  # the waits are the broker's: they outlive the process
    config, container = stack(**settings)
    # The longer delay queues were used: the waits grew.
    assert {f"{QUEUE}.wait.0.5s", f"{QUEUE}.wait.1s", f"{QUEUE}.wait.2s"} <= waiting
    assert infra.wait_for(lambda: len(notified(config)) == 11, timeout=30)
    assert notified(config) == sorted([("BEFORE", PHONE)] + [(code, PHONE) for code in codes])
    assert depth(config, f"{QUEUE}.dead") == 0 and counter(container, "motcua_dead_letters_total") == 0


def _queues(config):
    import requests
    response = requests.get(f"{infra.RABBIT_MGMT}/queues/{vhost_of(config)}", auth=infra.RABBIT_AUTH, timeout=10)
    response.raise_for_status()
    return response.json()


def test_an_outage_longer_than_the_retry_window_parks_each_event_once(stack):
    config, container = stack(RETRY_BASE_SECONDS=0.5, RETRY_CAP_SECONDS=1, RETRY_FOR_SECONDS=3)
    with refusing_connections(config["DB_URLS"]["retry_notifier"]):
        publish(config, result_ready("LATE-1"), result_ready("LATE-2"))
        assert infra.wait_for(lambda: depth(config, f"{QUEUE}.dead") == 2, timeout=30)
        time.sleep(3)
        assert depth(config, f"{QUEUE}.dead") == 2  # once each: nothing loops
    parked = infra.get_messages(vhost_of(config), f"{QUEUE}.dead")
    for message in parked:
        headers = message["properties"]["headers"]
        assert headers["x-motcua-attempts"] >= 3
        assert headers["x-motcua-error"].startswith("OperationalError")
        assert headers["x-motcua-parked-at"] - headers["x-motcua-first-failed-at"] >= 3
    assert counter(container, "motcua_dead_letters_total") == 2
    # The database is back: the operator replays them, and they are applied.
    assert "replayed 2 message(s)" in cli(config, "replay", QUEUE)
    assert infra.wait_for(lambda: notified(config) == [("LATE-1", PHONE), ("LATE-2", PHONE)], timeout=30)
    assert depth(config, f"{QUEUE}.dead") == 0


def test_truncated_json_and_a_wrong_content_type_are_parked_once_and_never_logged(stack, caplog):
    config, container = stack()
    caplog.set_level(logging.DEBUG)
    whole = json.dumps(result_ready("D-TRUNCATED"))
    with Connection(config["AMQP_URI"]) as connection:
        producer = connection.Producer()
        producer.publish(whole[: whole.index(PHONE) + 4], exchange="", routing_key=QUEUE,
                         content_type="application/json", content_encoding="utf-8")
        producer.publish(f"{NAME}; {PHONE}; {EMAIL}", exchange="", routing_key=QUEUE,
                         content_type="text/plain", content_encoding="utf-8")
    publish(config, result_ready("D-FINE"))
    assert infra.wait_for(lambda: depth(config, f"{QUEUE}.dead") == 2)
    assert infra.wait_for(lambda: notified(config) == [("D-FINE", PHONE)])
    time.sleep(1)
    assert depth(config, f"{QUEUE}.dead") == 2 and depth(config, QUEUE) == 0
    for secret in (NAME, PHONE, EMAIL, PHONE[:4] + "…"):
        assert secret not in caplog.text
    assert NAME not in str(infra.get_messages(vhost_of(config), f"{QUEUE}.dead"))
    shown = cli(config, "show", QUEUE)
    assert shown.count('"sealed_whole": true') == 2 and PHONE[:6] not in shown


def test_a_message_that_cannot_be_parked_goes_back_to_its_queue_and_the_consumer_lives_on(stack, caplog):
    import requests

    config, container = stack()
    permissions = f"{infra.RABBIT_MGMT}/permissions/{vhost_of(config)}/guest"

    def may_publish_to(pattern):
        requests.put(permissions, auth=infra.RABBIT_AUTH, timeout=10,
                     json={"configure": ".*", "write": pattern, "read": ".*"}).raise_for_status()

    may_publish_to(f"^(?!{re.escape(parking_exchange(QUEUE).name)}$).*")  # this test's vhost: parking refused
    try:
        with Connection(config["AMQP_URI"]) as connection:
            connection.Producer().publish(b"{truncated", exchange="", routing_key=QUEUE,
                                          content_type="application/json")
        assert infra.wait_for(lambda: "could not retry or park a message" in caplog.text, timeout=30)
        publish(config, result_ready("D-MEANWHILE"))
        assert infra.wait_for(lambda: notified(config) == [("D-MEANWHILE", PHONE)])  # still consuming
    finally:
        may_publish_to(".*")
    assert infra.wait_for(lambda: depth(config, f"{QUEUE}.dead") == 1, timeout=30)  # parked on a later try
    assert depth(config, QUEUE) == 0


def cli(config, *args):
    """`python -m motcua.cli dead-letters …` against this test's broker; its standard output."""
    env = {**os.environ, "AMQP_URI": config["AMQP_URI"],
           "MOTCUA_RABBIT_MANAGEMENT_URL": infra.RABBIT_MGMT}
    result = subprocess.run([sys.executable, "-m", "motcua.cli", "dead-letters", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_cli_lists_shows_without_personal_data_replays_and_purges(stack):
    config, container = stack()
    publish(config, result_ready("POISON-1"), result_ready("D-OK"))
    assert infra.wait_for(lambda: depth(config, f"{QUEUE}.dead") == 1)
    assert infra.wait_for(lambda: notified(config) == [("D-OK", PHONE)])

    listed = cli(config, "list").splitlines()
    assert listed[0].split() == ["queue", "parked", "retrying"] and listed[1].split() == [QUEUE, "1", "0"]

    [shown] = [json.loads(line) for line in cli(config, "show", QUEUE).splitlines()]
    assert (shown["event_type"], shown["source"], shown["attempts"], shown["replays"]) == (
        "dossier_result_ready", "intake", 1, 0)
    assert shown["error"] == "IllegalTransition: this dossier can never be notified"
    assert shown["data"]["code"] == "POISON-1" and shown["data"]["contact"] == "<personal>"
    raw = json.dumps(shown, ensure_ascii=False) + str(infra.get_messages(vhost_of(config), f"{QUEUE}.dead"))
    assert not any(secret in raw for secret in (NAME, PHONE, EMAIL))

    # A poison replayed parks once more, at once: one copy, the replay counted.
    assert "replayed 1 message(s)" in cli(config, "replay", f"{QUEUE}.dead")
    assert infra.wait_for(lambda: counter(container, "motcua_dead_letters_total") == 2)
    time.sleep(2)
    assert depth(config, f"{QUEUE}.dead") == 1 and counter(container, "motcua_dead_letters_total") == 2
    [again] = [json.loads(line) for line in cli(config, "show", QUEUE).splitlines()]
    assert (again["attempts"], again["replays"]) == (1, 1)

    assert "purged 1 message(s)" in cli(config, "purge", QUEUE)
    assert depth(config, f"{QUEUE}.dead") == 0
    assert cli(config, "list").splitlines()[1].split() == [QUEUE, "0", "0"]


TRIES = []


class FlakyAgencyWorker:
    """An agency's worker whose own system is away for its first two seconds."""

    name = "flaky_agency_worker"

    @task_handler("000.00.99.H56")
    def on_task(self, task):
        TRIES.append(time.monotonic())
        if TRIES[-1] - TRIES[0] < 2:
            raise ConnectionRefusedError("the agency's system is away")


def test_an_agencys_task_queue_uses_the_same_retries_and_parking(amqp_uri):
    config = {"AMQP_URI": amqp_uri, "max_workers": 2, "SERIALIZER": "json", "RETRY_BASE_SECONDS": 0.25,
              "RETRY_CAP_SECONDS": 1, "RETRY_FOR_SECONDS": 60}
    TRIES.clear()
    container = ServiceContainer(FlakyAgencyWorker, config)
    container.start()
    try:
        now = datetime.now(timezone.utc)
        task = make_event("workflow", "task_assigned", {
            "task_id": "T-1", "dossier_code": "D-TASK", "run_version": 1, "step_index": 0, "step": "Thuế",
            "agency_code": "000.00.99.H56", "role": "specialist", "assigned_at": now, "due_at": now})
        Publisher(amqp_uri).publish(task, exchange=TASKS_EXCHANGE, routing_key="task.000.00.99.H56",
                                    declare=[TASKS_EXCHANGE])
        with Connection(amqp_uri) as connection:
            connection.Producer().publish(b'{"event_type": "task_assigned", "data": {', exchange="",
                                          routing_key="tasks.000.00.99.H56", content_type="application/json")
        assert infra.wait_for(lambda: len(TRIES) >= 3 and TRIES[-1] - TRIES[0] >= 2, timeout=30)
        config = {"AMQP_URI": amqp_uri}
        assert infra.wait_for(lambda: depth(config, "tasks.000.00.99.H56.dead") == 1)
        time.sleep(1.5)
        assert depth(config, "tasks.000.00.99.H56.dead") == 1  # only the undecodable one
        assert depth(config, "tasks.000.00.99.H56") == 0
    finally:
        container.stop()
