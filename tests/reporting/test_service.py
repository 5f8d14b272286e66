"""ReportingService: entrypoints with nameko's worker_factory, and a real container on the embedded bus."""
import eventlet
import pytest
from alembic import command
from nameko.amqp.publish import Publisher
from nameko.containers import ServiceContainer
from nameko.events import get_event_exchange
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.services import worker_factory
from prometheus_client import generate_latest
from sqlalchemy.orm import sessionmaker

from motcua import embedded, migrate
from motcua.bus import ReliableEventHandler
from motcua.contracts import make_event
from motcua.contracts.events import CALENDAR_EVENTS, EVENT_SCHEMAS, SESSION_EVENTS
from motcua.db import UnitOfWork, make_engine
from motcua.errors import NotFound, ValidationFailed
from motcua.metrics import metrics_for
from motcua.revocation import AccessCache
from services.reporting.dependencies import ProvinceData
from services.reporting.models import Base
from services.reporting.service import ReportingService
from tests.reporting.factory import AGENCY_NAMES, JUSTICE, PHONE, TRACKING_KEY, VN, lifecycle, vn
from tests.infra import VERIFYING, gateway_token

CODE = "000.00.06.H56-260302-0001"
LEADER = gateway_token(f"leader@{JUSTICE}", JUSTICE, "leader")
ADMIN = gateway_token("admin", None, "admin")


@pytest.fixture
def db_url(tmp_path):
    """A reporting database made by the service's own migrations."""
    url = f"sqlite:///{tmp_path / 'reporting.db'}"
    migrate.upgrade("reporting", url)
    return url


def events():
    return lifecycle(CODE, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                     finished=vn(2026, 3, 4, 9), returned=vn(2026, 3, 4, 14))


def test_migrations_match_the_models(db_url):
    command.check(migrate.alembic_config("reporting", db_url))  # raises if a model change lacks a revision


def test_every_contract_event_has_a_handler():
    handled = [event_type
               for member in vars(ReportingService).values()
               for entrypoint in getattr(member, "nameko_entrypoints", ())
               if isinstance(entrypoint, ReliableEventHandler)
               for _, event_type in entrypoint.subscriptions]
    # access_denied is no dossier's: the gateway's audit log keeps it; nor are the gateway's sessions'.
    # nor the official calendar's (reporting compares dates; it counts no working time).
    assert sorted(handled) == sorted(set(EVENT_SCHEMAS) - {"access_denied"} - SESSION_EVENTS - CALENDAR_EVENTS)


def test_entrypoints_with_worker_factory(db_url):
    engine = make_engine(db_url)
    uow = UnitOfWork(sessionmaker(bind=engine, expire_on_commit=False)(), "reporting", Base.metadata)
    service = worker_factory(ReportingService, revocations=AccessCache(5),
                             db=uow, province=ProvinceData(VN, AGENCY_NAMES),
                             config={"TRACKING_KEY": TRACKING_KEY, **VERIFYING})
    lives = events()
    service.on_events(lives)  # one batch (the kit claimed their inbox rows and commits it)
    uow.commit()

    assert service.health() == {"status": "ok", "service": "reporting", "checks": {"database": "ok"}}
    view = service.track(CODE, PHONE[-4:])
    assert (view["status"], view["applicant_name"]) == ("returned", "Nguyễn V. A.")
    with pytest.raises(NotFound):
        service.track(CODE, "0000")
    with pytest.raises(ValidationFailed) as error:
        service.track(CODE, "12")
    assert error.value.field == "key"

    report = service.timeliness_report("2026-03-01", "2026-03-31", LEADER)
    assert report["rows"][0]["agency_code"] == JUSTICE
    assert report["totals"]["resolved"] == {"total": 1, "early": 1, "on_time": 0, "late": 0,
                                            "early_pct": 100.0, "on_time_pct": 0.0, "late_pct": 0.0}
    with pytest.raises(ValidationFailed) as error:
        service.timeliness_report("2026-03-31", "2026-03-01", LEADER)
    assert error.value.field == "to"

    assert service.rebuild_projections(ADMIN) == {"dossiers": 1, "events": len(lives)}
    assert service.track(CODE, PHONE[-4:]) == view
    engine.dispose()


def test_a_container_on_the_embedded_bus(db_url):
    vhost = "reporting-service-test"
    config = {"AMQP_URI": f"embedded:///{vhost}", "DB_URLS": {"reporting": db_url}, "METRICS_PORTS": {},
              "TRACKING_KEY": TRACKING_KEY, "TIME_ZONE": "Asia/Ho_Chi_Minh", "CATALOG_DIR": None, "max_workers": 4,
              **VERIFYING}
    embedded.install()
    container = ServiceContainer(ReportingService, config)
    container.start()
    try:
        publisher = Publisher(config["AMQP_URI"])
        lives = events()
        for evt in lives + lives[:2]:  # the first two delivered twice
            payload = make_event(evt.source, evt.event_type, evt.data, occurred_at=evt.occurred_at)
            payload["event_id"] = evt.event_id
            publisher.publish(payload, exchange=get_event_exchange(evt.source, config), routing_key=evt.event_type)

        def scrape():
            return generate_latest(metrics_for(container).registry).decode()

        with eventlet.Timeout(10):  # a liveness guard: the gauge reads the projection at each scrape
            while ('motcua_dossiers_by_status{status="returned"} 1.0' not in scrape()
                   or 'motcua_duplicate_events_total{consumer="reporting.dossier_received"' not in scrape()):
                eventlet.sleep(0.02)
        assert 'motcua_dossiers_by_status{status="submitted"} 0.0' in scrape()
        with ClusterRpcProxy(config) as cluster:
            assert cluster.reporting.health()["status"] == "ok"
            view = cluster.reporting.track(CODE, PHONE[-4:])
            assert view["status_code"] == 10 and view["current_agency_code"] == JUSTICE
            # agency names come from the catalogue the container loaded
            report = cluster.reporting.timeliness_report("2026-03-01", "2026-03-31", LEADER, JUSTICE)
            assert report["rows"][0]["agency_name"] == "Sở Tư pháp"
            assert cluster.reporting.rebuild_projections(caller_token=ADMIN) == {"dossiers": 1, "events": len(lives)}
            assert cluster.reporting.track(CODE, PHONE[-4:]) == view
    finally:
        container.stop()
        embedded.reset(vhost)
