"""NotifyService in a real nameko container on the embedded bus: events in, messages out through the
scheduler, dead letters and re-sends, previews, choices and receipts over RPC."""
import uuid

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook, worker_factory
from prometheus_client import generate_latest

from motcua import embedded
from motcua.config import catalog_dir
from motcua.errors import Forbidden, Unauthorized, ValidationFailed
from motcua.metrics import metrics_for
from services.notify.service import NotifyService
from tests.infra import free_port
from motcua.keys import new_token_pair
from motcua.revocation import AccessCache
from services.notify.models import Base
from tests.infra import VERIFYING, gateway_token
from tests.security.conftest import token_for
from tests.notify.conftest import (
    CODE,
    dossier_received,
    dossier_result_ready,
    read_jsonl,
    read_maildir,
    read_mbox,
    smtp_config,
)


FOREIGN_SIGNING_KEY = new_token_pair()[0]  # a pair that is not the platform's
ADMIN = gateway_token("admin", None, "admin")
STAFF = gateway_token("receptionist@000.00.06.H56", "000.00.06.H56", "receptionist")


def make_config(db_url, mbox_path, notify=None):
    vhost = f"notify-{uuid.uuid4().hex[:8]}"
    return vhost, {
        "AMQP_URI": f"embedded:///{vhost}",
        "DB_URLS": {"notify": db_url},
        "SMTP": smtp_config(mbox_path),
        "NOTIFY": {"poll_seconds": 0.05, **(notify or {})},
        "SEARCH_KEY": "notify-service-test",
        **VERIFYING,
        "TIME_ZONE": "Asia/Ho_Chi_Minh",
        "CATALOG_DIR": str(catalog_dir()),
        "SERIALIZER": "json",
    }


@pytest.fixture
def config(notify_db_url, mbox_path):
    embedded.install()
    vhost, config = make_config(notify_db_url, mbox_path)
    yield config
    embedded.reset(vhost)


@pytest.fixture
def container(container_factory, config):
    container = container_factory(NotifyService, config)
    container.start()
    return container


def wait_for(predicate, what, timeout=10):
    with eventlet.Timeout(timeout, False):
        while not predicate():
            eventlet.sleep(0.01)
    assert predicate(), f"gave up waiting for {what}"


def call(container, method, *args, **kwargs):
    with entrypoint_hook(container, method) as entrypoint:
        return entrypoint(*args, **kwargs)


def test_health(container):
    assert call(container, "health") == {"status": "ok", "service": "notify", "checks": {"database": "ok"}}


def test_events_over_the_bus_are_sent_once_by_the_scheduler(container, config, mbox_path, sms_outbox):
    dispatch = event_dispatcher(config)
    received = dossier_received()
    dispatch("intake", "dossier_received", received)
    dispatch("intake", "dossier_received", received)  # the outbox relay published it again
    dispatch("intake", "dossier_result_ready", dossier_result_ready())
    registry = metrics_for(container).registry
    wait_for(lambda: sorted(d["status"] for d in call(container, "list_deliveries", CODE, STAFF)) == [
        "delivered", "delivered", "delivered", "skipped"], "three deliveries (no phone for the last SMS)")
    wait_for(lambda: registry.get_sample_value("motcua_duplicate_events_total",
                                               {"service": "notify", "consumer": "notify.plan"}) == 1, "the duplicate")

    subjects = sorted(m["Subject"] for m in read_mbox(mbox_path))
    assert subjects == [f"[Một cửa] Hồ sơ {CODE} đã có kết quả", f"[Một cửa] Đã tiếp nhận hồ sơ {CODE}"]
    assert "Sở Tư pháp" in read_mbox(mbox_path)[0].get_content()  # agency name from the catalogue
    assert len(read_jsonl(sms_outbox)) == 1
    listed = call(container, "list_deliveries", CODE, STAFF)
    assert sorted((d["event_type"], d["channel"], d["recipient"]) for d in listed) == [
        ("dossier_received", "email", "n***@example.com"), ("dossier_received", "sms", "091****678"),
        ("dossier_result_ready", "email", "n***@example.com"), ("dossier_result_ready", "sms", "")]
    assert not {"recipient_hash", "address", "context"} & set(listed[0])
    assert registry.get_sample_value("motcua_notifications_total",
                                     {"channel": "email", "provider": "mailbox", "status": "delivered"}) == 2


def test_dead_letters_are_listed_counted_and_resent_over_rpc(container_factory, notify_db_url, mbox_path,
                                                             local_servers, tmp_path):
    embedded.install()
    port = free_port()  # the relay is down
    vhost, config = make_config(notify_db_url, mbox_path, {
        "email": {"host": "127.0.0.1", "port": port, "timeout": 2}, "lease_seconds": 5,
        "retry": {"max_attempts": 2, "base_seconds": 0.05, "max_seconds": 0.1}})
    try:
        container = container_factory(NotifyService, config)
        container.start()
        event_dispatcher(config)("intake", "dossier_result_ready", dossier_result_ready())
        wait_for(lambda: call(container, "list_dead_letters", ADMIN), "the dead letter")
        [dead] = call(container, "list_dead_letters", ADMIN)
        assert (dead["status"], dead["attempts"], dead["dead_letter"], dead["reason"]) == (
            "temporary-failure", 2, True, "ConnectionRefusedError")
        scrape = generate_latest(metrics_for(container).registry).decode()
        assert 'motcua_notification_dead_letters_open{channel="email"} 1.0' in scrape
        assert 'motcua_notification_dead_letters_total{channel="email",provider="smtp"} 1.0' in scrape

        maildir = tmp_path / "maildir"
        local_servers("smtp_server.py", "--maildir", str(maildir), port=port)
        resent = call(container, "resend", dead["id"], ADMIN, idempotency_key="resend-1")
        assert (resent["status"], resent["resends"], resent["dead_letter"]) == ("created", 1, False)
        # the officer's answer was lost: the repeat under the key answers the same, and re-sends nothing
        assert call(container, "resend", dead["id"], ADMIN, idempotency_key="resend-1") == resent
        wait_for(lambda: len(read_maildir(maildir)) == 1, "the re-sent message")
        wait_for(lambda: call(container, "list_deliveries", CODE, STAFF)[0]["status"] == "delivered", "delivered")
        assert call(container, "list_dead_letters", ADMIN) == []
        assert len(read_maildir(maildir)) == 1
        with pytest.raises(Exception) as error:  # another re-send (another key, or none) is judged afresh
            call(container, "resend", dead["id"], ADMIN)
        assert type(error.value).__name__ == "Conflict"
    finally:
        embedded.reset(vhost)


def test_preview_and_choices_over_rpc(container):
    shown = call(container, "preview", "dossier_received", "sms", STAFF)
    assert shown["segments"] == 1 and shown["encoding"] == "GSM-7" and shown["text"].startswith("Ho so ")
    assert call(container, "preview", "dossier_refused", "email", STAFF)["subject"].startswith("[Một cửa] Hồ sơ")
    assert call(container, "get_preferences", CODE)["sms"]["enabled"] is True
    chosen = call(container, "set_preferences", CODE, {"sms": False})
    assert chosen["sms"]["enabled"] is False and chosen["sms"]["source"] == "tracking"
    assert chosen["sms"]["recorded_at"] is not None and "Nghị định 118/2025" in chosen["sms"]["legal_basis"]


@pytest.mark.parametrize("method, args, field", [
    ("list_deliveries", ("", STAFF), "dossier_code"),
    ("resend", ("1", ADMIN), "delivery_id"),
    ("preview", ("dossier_withdrawn", "sms", STAFF), "event_type"),
    ("preview", ("dossier_received", "fax", STAFF), "channel"),
    ("set_preferences", (CODE, {"fax": False}), "choices"),
    ("set_preferences", (CODE, {"sms": "no"}), "choices"),
    ("set_preferences", (CODE, {}), "choices"),
    ("delivery_receipt", ("VNPT!", "t", {}), "provider"),
    ("list_dead_letters", (ADMIN, 0), "limit"),
])
def test_rpc_inputs_are_validated(method, args, field):
    service = worker_factory(NotifyService, revocations=AccessCache(5), config=VERIFYING)
    service.db.metadata = Base.metadata
    service.db.session.execute.return_value.one.return_value = (False, None)  # the token not revoked
    with pytest.raises(ValidationFailed) as error:
        getattr(service, method)(*args)
    assert error.value.field.split(".")[0] == field


@pytest.mark.parametrize("method, args", [
    ("resend", (1,)), ("list_dead_letters", ()), ("list_deliveries", (CODE,)),
    ("preview", ("dossier_received", "sms")),
])
def test_staff_and_operator_rpcs_refuse_a_call_without_the_right_caller(method, args):
    """Issue 12: `notify.resend` (and its siblings) took no caller; past the gateway, anyone on the bus
    could re-send a citizen's message or read the delivery log."""
    service = worker_factory(NotifyService, revocations=AccessCache(5), config=VERIFYING)
    rpc = getattr(service, method)
    with pytest.raises(Unauthorized):
        rpc(*args, caller_token=None)
    with pytest.raises(Unauthorized):
        rpc(*args, caller_token=token_for(FOREIGN_SIGNING_KEY, "admin", None, "admin"))
    with pytest.raises(Forbidden):
        rpc(*args, caller_token=gateway_token("citizen", None, "applicant"))
    if method in ("resend", "list_dead_letters"):  # the platform admin's alone
        with pytest.raises(Forbidden):
            rpc(*args, caller_token=STAFF)
    service.db.assert_not_called()  # refused before anything was read or written
