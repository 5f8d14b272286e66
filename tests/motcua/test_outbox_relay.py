"""The outbox relay through a database outage: it backs off with growing delays and goes on (a
managed thread that raised would kill its service's container), and rows a commit hands over go out
at once, without waiting out the delay."""
import logging
import re
from datetime import datetime, timezone
from types import SimpleNamespace

import eventlet
from sqlalchemy import create_engine
from sqlalchemy.orm import DeclarativeBase

from motcua.contracts import make_event
from motcua.db import OutboxRow, ServiceBase, reliability_tables
from motcua.outbox import OutboxRelay
from tests.infra import free_port


class Base(ServiceBase, DeclarativeBase):
    pass


reliability_tables(Base.metadata)


def test_the_relay_backs_off_through_a_database_outage_and_goes_on(caplog):
    container = SimpleNamespace(service_name="kit_relay", config={"AMQP_URI": "memory://"})
    # Nothing listens on this port: every connection is refused, as by a database that is down.
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone")
    relay = OutboxRelay(container, engine, Base.metadata)
    caplog.set_level(logging.WARNING, logger="motcua.outbox")
    running = eventlet.spawn(relay.run)
    eventlet.sleep(5.5)  # its look for orphans every second (idle_poll) fails each time
    failures = [record for record in caplog.records if record.getMessage().startswith("outbox relay failed")]
    attempts = [int(re.search(r"attempt (\d+)", record.getMessage()).group(1)) for record in failures]
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) >= 3  # growing delays, not a loop
    assert [bool(record.exc_info) for record in failures].count(True) == 1  # one traceback per outage

    event = make_event("kit_relay", "result_ready", {"dossier_code": "D1", "agency_code": "000.00.06.H56",
                                                     "finished_at": datetime.now(timezone.utc)})
    published = relay.metrics.published.labels("kit_relay", "result_ready")
    relay.hand_over([OutboxRow(1, "result_ready", None, None, event)])
    eventlet.sleep(0.3)  # far less than the delay the relay had grown to
    assert published._value.get() == 1
    assert not running.dead
    relay.stop()
    running.wait()  # the relay ended because it was stopped, never by an exception
    engine.dispose()
