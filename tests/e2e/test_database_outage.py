"""A 30-second database outage on the separate-process stack (issue 11, problem 2): workflow's and
reporting's databases refuse connections while dossiers are received; their events wait in the
broker's delay queues, nothing is parked, and every dossier completes and is reported, with nobody
replaying anything."""
import contextlib
import time

import pytest
import requests
from kombu import Connection
from sqlalchemy import create_engine

from tests import infra
from tests.e2e.client import APPLICANT, COMMUNE, Api
from tests.infra import wait_for

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 30
BEFORE, DURING = 3, 5  # dossiers received before and during the outage


@pytest.fixture
def platform(amqp_uri, pg_urls, tmp_path):
    # Delays capped at 8 s (default 300 s) so the test ends soon after the outage; the window stays 1 h.
    services = infra.ServiceProcesses(amqp_uri, pg_urls, tmp_path, extra_env={"MOTCUA_RETRY_CAP_SECONDS": "8"})
    services.start_all()
    yield services
    services.stop_all()


@contextlib.contextmanager
def refusing_connections(*urls):
    """These (this test's own) databases refuse new connections and lose their open ones."""
    names = [url.rsplit("/", 1)[1] for url in urls]
    admin = create_engine(infra.PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            connection.exec_driver_sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    try:
        yield
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()


def parked(amqp_uri) -> dict[str, int]:
    """Messages in every `.dead` queue of the platform's vhost (counted by the broker itself)."""
    vhost = amqp_uri.rsplit("/", 1)[1]
    names = [q["name"] for q in requests.get(f"{infra.RABBIT_MGMT}/queues/{vhost}", auth=infra.RABBIT_AUTH,
                                             timeout=10).json() if q["name"].endswith(".dead")]
    with Connection(amqp_uri) as connection:
        channel = connection.default_channel
        return {name: channel.queue_declare(name, passive=True).message_count for name in names}


def test_a_30_second_database_outage_parks_nothing_and_every_dossier_completes(platform, amqp_uri, pg_urls):
    api = Api(platform.base_url)
    codes = [api.receive(api.submit()["code"])["code"] for _ in range(BEFORE)]
    started = time.monotonic()
    with refusing_connections(pg_urls["workflow"], pg_urls["reporting"]):
        codes += [api.receive(api.submit()["code"])["code"] for _ in range(DURING)]
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
        assert all(process.poll() is None for process in platform.processes.values())
    ended = time.monotonic()
    for code in codes:  # each waits for its first task: workflow applied dossier_received after the outage
        api.process_land_dossier(code)
    for code in codes:
        api.wait_status(code, "result_ready", timeout=120)
        response = api.call("POST", f"/api/v1/dossiers/{code}/return", user=f"receptionist@{COMMUNE}",
                            json={"method": "counter"})
        assert response.status_code == 200, response.text

    def reported_returned(code):
        tracked = api.call("GET", f"/api/v1/track/{code}?key={APPLICANT['phone'][-4:]}")
        return tracked.status_code == 200 and tracked.json()["status"] == "returned"

    assert wait_for(lambda: all(reported_returned(code) for code in codes), timeout=120)
    caught_up = time.monotonic() - ended
    assert parked(amqp_uri) and not any(parked(amqp_uri).values())  # the dead-letter queues exist, empty
    assert all(process.poll() is None for process in platform.processes.values())
    waited = {service: retries(platform, service) for service in ("workflow", "reporting")}
    assert all(waited.values())  # their events did wait: retried, not lost, not parked
    print(f"\n[database outage] {OUTAGE_SECONDS} s: retries {waited}, 0 parked; {len(codes)} dossiers "
          f"processed, returned and reported {caught_up:.1f} s after the outage ended")
    logs = platform.logs()
    assert not any(secret in logs for secret in (APPLICANT["full_name"], APPLICANT["phone"], APPLICANT["email"]))


def retries(platform, service) -> float:
    scrape = requests.get(f"http://127.0.0.1:{platform.metrics_ports[service]}/metrics", timeout=10).text
    prefix = f'motcua_event_retries_total{{queue="inbox.{service}",service="{service}"}} '
    return sum(float(line[len(prefix):]) for line in scrape.splitlines() if line.startswith(prefix))
