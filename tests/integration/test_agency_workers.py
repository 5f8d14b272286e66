"""Agencies' own systems on real RabbitMQ + PostgreSQL: two copies of the tax-office worker share
its queue; every task is done exactly once; tasks routed before any worker runs wait for it."""
import shutil
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from nameko.amqp.publish import Publisher
from nameko.containers import ServiceContainer
from nameko.standalone.events import get_event_exchange
from sqlalchemy import create_engine, text

from motcua.config import ROOT, nameko_config
from motcua.contracts import make_event
from motcua.identity import Caller, issue_token
from services.workflow.service import WorkflowService
from tests import infra
from workers.tax_office import TaxOfficeWorker

TAX = "000.00.18.H56"
DOSSIERS = 30


@pytest.fixture
def catalog(tmp_path):
    """The demo catalogue plus a tax office and a procedure whose one step its system takes."""
    directory = tmp_path / "catalog"
    shutil.copytree(ROOT / "deploy" / "catalog", directory)
    agencies = yaml.safe_load((directory / "agencies.yaml").read_text())
    if TAX not in {a["code"] for a in agencies["agencies"]}:
        agencies["agencies"].append({"code": TAX, "name": "Thuế tỉnh Thanh Hóa", "level": "department",
                                     "parent_code": "000.00.00.H56"})
    (directory / "agencies.yaml").write_text(yaml.safe_dump(agencies, allow_unicode=True))
    (directory / "processes.yaml").write_text(yaml.safe_dump({"processes": [{
        "procedure_code": "9.000001",
        "steps": [{"name": "Xác định nghĩa vụ tài chính", "agency_code": TAX, "role": "specialist",
                   "allowance": 2, "handled_by": "system", "actions": ["require_payment", "approve"]}]}]},
                                                             allow_unicode=True))
    return directory


def received(code):
    now = datetime.now(timezone.utc)
    return make_event("intake", "dossier_received", {
        "code": code, "procedure_code": "9.000001", "procedure_name": "Thử nghiệm", "field_code": "DD",
        "agency_code": "000.20.01.H56", "channel": "online", "received_at": now, "due_at": now + timedelta(days=20),
        "received_by": "receptionist@000.20.01.H56", "form": {"land_area_m2": 100, "land_price_vnd_per_m2": 2_000_000},
        "contact": {"full_name": "Lê Văn Cường", "email": None, "phone": None}})


def completions(url):
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT completed_by, note FROM tasks WHERE status = 'done'")).all()
        completed_events = connection.execute(text(
            "SELECT count(*) FROM outbox WHERE event_type = 'task_completed'")).scalar_one()
    engine.dispose()
    return rows, completed_events




def test_two_worker_copies_split_the_tasks_and_none_is_done_twice(amqp_uri, pg_urls, catalog):
    config = {**nameko_config(amqp_uri), "DB_URLS": pg_urls, "CATALOG_DIR": str(catalog), "METRICS_PORTS": {}}
    workflow = ServiceContainer(WorkflowService, config)
    workflow.start()  # declares the tax office's durable queue
    publisher = Publisher(amqp_uri)
    exchange = get_event_exchange("intake", config)

    def route(numbers):
        for i in numbers:
            publisher.publish(received(f"000.20.01.H56-261123-{i:04d}"), exchange=exchange,
                              routing_key="dossier_received", declare=[exchange])

    route(range(5))  # routed before any worker runs: these tasks wait in the agency's queue
    workers = []
    for copy in (1, 2):
        token = issue_token(Caller(f"system-{copy}@{TAX}", TAX, ("system",)), config["TOKEN_SIGNING_KEY"],
                             timedelta(hours=1))
        worker = ServiceContainer(TaxOfficeWorker, {**config, "WORKER_TOKEN": token, "max_workers": 2})
        worker.start()
        workers.append(worker)
    try:
        route(range(5, DOSSIERS))  # the broker deals these out to both copies
        assert infra.wait_for(lambda: len(completions(pg_urls["workflow"])[0]) == DOSSIERS)
        time.sleep(1)
        rows, completed_events = completions(pg_urls["workflow"])
        by_copy = Counter(completed_by for completed_by, _ in rows)
        assert set(by_copy) == {f"system-1@{TAX}", f"system-2@{TAX}"}, by_copy  # both copies took work
        assert sum(by_copy.values()) == DOSSIERS and completed_events == DOSSIERS  # none done twice
        assert all(note.startswith("Thông báo nộp lệ phí trước bạ: 1.000.000 đồng") for _, note in rows)
    finally:
        for container in (*workers, workflow):
            container.stop()
