"""Dossier codes under load: two intake instances on real RabbitMQ and PostgreSQL, 50 concurrent
submissions; the codes are 0001..0050 for the day, no gap, no duplicate."""
from __future__ import annotations

from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine, text

from motcua.config import catalog_dir
from motcua.metrics import metrics_for
from services.intake.service import IntakeService
from tests import infra
from tests.documents import required_uploads

SUBMISSIONS = 50
APPLICANT = {"full_name": "Phạm Thị Hoa", "id_number": "038190012345", "phone": "0987654321"}


def test_two_instances_and_50_concurrent_submissions_give_gap_free_codes(amqp_uri, pg_urls):
    config = {"AMQP_URI": amqp_uri, "DB_URLS": {"intake": pg_urls["intake"]}, "CATALOG_DIR": str(catalog_dir()),
              "TIME_ZONE": "Asia/Ho_Chi_Minh", "TRACKING_KEY": "tracking", "SEARCH_KEY": "search",
              **infra.VERIFYING, "SERIALIZER": "json",
              # few workers each: the broker deals the 50 calls out to both instances
              "max_workers": 4}
    containers = [ServiceContainer(IntakeService, config) for _ in range(2)]
    for container in containers:
        container.start()
    vhost = amqp_uri.rsplit("/", 1)[1]
    # both instances must be consuming before the calls go out, or the broker may deal them all to one
    assert infra.wait_for(lambda: infra.queue_info(vhost, "rpc-intake").get("consumers") == 2, timeout=30)
    try:
        payload = {"procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT, "form": {},
                   "documents": required_uploads("1.012786")}
        with ClusterRpcProxy(config, timeout=60) as cluster:
            replies = [cluster.intake.submit_dossier.call_async(payload) for _ in range(SUBMISSIONS)]
            codes = [reply.result()["code"] for reply in replies]
    finally:
        for container in containers:
            container.stop()
    # read after stop: a worker's call is counted after its reply has gone out
    handled = [metrics_for(c).calls.labels("intake", "submit_dossier", "success")._value.get() for c in containers]

    prefix = {code.rsplit("-", 1)[0] for code in codes}
    assert len(prefix) == 1, prefix  # one agency, one day (a run across local midnight would split)
    numbers = sorted(int(code.rsplit("-", 1)[1]) for code in codes)
    assert numbers == list(range(1, SUBMISSIONS + 1))
    engine = create_engine(pg_urls["intake"])
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(DISTINCT code), count(*) FROM dossiers")).one()
    engine.dispose()
    assert tuple(stored) == (SUBMISSIONS, SUBMISSIONS)
    assert sum(handled) == SUBMISSIONS and min(handled) > 0, handled  # both instances took a share
