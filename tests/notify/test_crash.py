"""Exactly once toward the person, with real processes: notify (`python -m motcua.run notify`) on a
fresh RabbitMQ vhost and PostgreSQL database is SIGKILLed while a slow SMTP server holds its message,
restarted, and handed the same event again: the server receives one message."""
import os
import subprocess
import sys
import time

import pytest
import requests
from nameko.standalone.events import event_dispatcher
from sqlalchemy import create_engine, select

from motcua.config import ROOT
from services.notify.delivery import DELIVERED, SENDING
from services.notify.models import deliveries as delivery_log
from tests import infra
from tests.notify.conftest import EMAIL, dossier_received, read_maildir

QUEUE = "inbox.notify"  # every event notify handles

pytestmark = pytest.mark.integration


@pytest.fixture
def notify_db(postgres):
    urls = infra.create_service_databases(("notify",))
    yield urls["notify"]
    infra.drop_databases(urls)


def wait(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


class NotifyProcess:
    def __init__(self, amqp_uri, db_url, tmp_path, smtp_port):
        config = tmp_path / "notify.yaml"
        config.write_text(f"email: {{host: 127.0.0.1, port: {smtp_port}, timeout: 2}}\n"
                          "lease_seconds: 3\npoll_seconds: 0.05\n", encoding="utf-8")
        self.metrics_port = infra.free_port()
        self.env = {**os.environ, "AMQP_URI": amqp_uri, "NOTIFY_DB_URL": db_url, "NOTIFY_CONFIG": str(config),
                    "NOTIFY_METRICS_PORT": str(self.metrics_port), "MOTCUA_VAR_DIR": str(tmp_path / "var"),
                    "PYTHONPATH": str(ROOT)}
        self.log = tmp_path / f"notify-{self.metrics_port}.log"  # one per process
        self.process = None

    def start(self, vhost):
        self.process = subprocess.Popen([sys.executable, "-m", "motcua.run", "notify"], env=self.env, cwd=ROOT,
                                        stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        wait(lambda: self._healthy(vhost), f"notify to start (log: {self.log})")

    def _healthy(self, vhost):
        assert self.process.poll() is None, self.log.read_text()
        try:
            requests.get(f"http://127.0.0.1:{self.metrics_port}/health", timeout=1).raise_for_status()
            return infra.queue_bound(vhost, QUEUE, "intake.events", "dossier_received")
        except requests.RequestException:
            return False

    def metric(self, name, labels):
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self):
        if self.process:
            infra.stop_process(self.process, self.log)


def test_killed_mid_send_restarted_and_given_the_event_again_sends_one_message(amqp_uri, notify_db, local_servers,
                                                                               tmp_path):
    vhost = amqp_uri.rsplit("/", 1)[1]
    maildir, stalled = tmp_path / "maildir", tmp_path / "stalled"
    smtp = local_servers("smtp_server.py", "--maildir", str(maildir), "--stall-first-rcpt", str(stalled))
    engine = create_engine(notify_db)
    payload = dossier_received(phone=None)
    dispatch = event_dispatcher({"AMQP_URI": amqp_uri})

    def deliveries():
        with engine.connect() as connection:
            return connection.execute(select(delivery_log.c.status, delivery_log.c.attempts)
                                      .where(delivery_log.c.channel == "email")).all()

    first = NotifyProcess(amqp_uri, notify_db, tmp_path, smtp.port)
    second = NotifyProcess(amqp_uri, notify_db, tmp_path, smtp.port)
    try:
        first.start(vhost)
        dispatch("intake", "dossier_received", payload)
        wait(stalled.exists, "notify to be inside the SMTP conversation")
        first.process.kill()  # SIGKILL, mid-send: the server has not accepted the message
        first.process.wait(timeout=10)
        assert deliveries() == [(SENDING, 1)] and read_maildir(maildir) == []

        second.start(vhost)
        dispatch("intake", "dossier_received", payload)  # and the bus delivers the event again
        wait(lambda: deliveries() == [(DELIVERED, 2)], "the message to be sent again after the lease")
        wait(lambda: second.metric("motcua_duplicate_events_total", {"consumer": "notify.plan"}) == 1,
             "the repeated event to be dropped")
    finally:
        second.stop()
        first.stop()
        engine.dispose()

    got = read_maildir(maildir)
    assert [m["X-RcptTo"] for m in got] == [EMAIL]
    assert got[0]["Message-ID"] == f"<{payload['event_id']}.email@motcua.local>"
