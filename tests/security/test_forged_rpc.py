"""A direct RPC call to intake, past the gateway, on real RabbitMQ and PostgreSQL: with another agency's validly signed
token, or a token signed with another key pair, intake itself refuses it and reports the refusal
(`access_denied`, through its outbox); the gateway writes it to the audit log. No personal data
travels in the event."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from motcua import keys
from motcua.config import nameko_config
from motcua.errors import Forbidden, Unauthorized
from services.gateway.service import GatewayService
from services.intake.service import IntakeService
from tests.documents import required_uploads
from tests.infra import free_port
from tests.security.conftest import APPLICANT, COMMUNE, OTHER_COMMUNE, audit_entries, token_for, wait_for_audit
from tests.security.test_tokens import hs256

pytestmark = pytest.mark.integration  # real RabbitMQ and PostgreSQL
ANOTHER_PAIR, _ = keys.new_token_pair()
SIGNING = keys.pem_setting(keys.TOKEN_SIGNING_KEY)  # the gateway's (development) private key


@pytest.fixture
def services(amqp_uri, pg_urls):
    config = {**nameko_config(amqp_uri), "DB_URLS": pg_urls, "METRICS_PORTS": {},
              "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"}
    containers = [ServiceContainer(cls, config) for cls in (IntakeService, GatewayService)]
    for container in containers:
        container.start()
    with ServiceRpcProxy("intake", {"AMQP_URI": amqp_uri}) as intake:
        yield intake, config, type("Target", (), {"db_url": pg_urls["gateway"]})
    for container in containers:
        container.stop()


def test_direct_rpc_with_a_foreign_or_forged_context_is_refused_by_intake_and_audited(services):
    intake, config, gateway = services
    code = intake.submit_dossier({"procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT,
                                  "form": {}, "documents": required_uploads("1.012786")})["code"]
    own = token_for(SIGNING, f"receptionist@{COMMUNE}", COMMUNE, "receptionist")
    assert intake.get_dossier(code, caller_token=own)["code"] == code

    outsider = f"specialist@{OTHER_COMMUNE}"
    with pytest.raises(Forbidden):
        intake.get_dossier(code, caller_token=token_for(SIGNING, outsider, OTHER_COMMUNE, "specialist"))
    with pytest.raises(Unauthorized):
        intake.get_dossier(code, caller_token=token_for(ANOTHER_PAIR, "admin", None, "admin"))
    with pytest.raises(Unauthorized):
        intake.receive_dossier(code, caller_token=token_for(SIGNING, f"receptionist@{COMMUNE}", COMMUNE,
                                                            "receptionist", ttl=timedelta(seconds=-1)))

    [foreign] = wait_for_audit(gateway, username=outsider, dossier_code=code)
    assert (foreign.source, foreign.action, foreign.outcome, foreign.agency_code) == (
        "intake", "intake.get_dossier", "denied", OTHER_COMMUNE)
    [forged] = wait_for_audit(gateway, username="unverified:admin", dossier_code=code)
    assert (forged.action, forged.outcome, forged.detail) == ("intake.get_dossier", "denied", "invalid token")
    [expired] = wait_for_audit(gateway, action="intake.receive_dossier", dossier_code=code)
    assert expired.username == f"unverified:receptionist@{COMMUNE}" and expired.detail == "token expired"

    # intake's own outbox holds the events: no applicant data in any of them
    engine = create_engine(config["DB_URLS"]["intake"])
    from services.intake.models import Base
    outbox = Base.metadata.tables["outbox"]
    with Session(engine) as session:
        payloads = [row.payload for row in session.execute(select(outbox).where(outbox.c.event_type == "access_denied"))]
    engine.dispose()
    assert len(payloads) == 3
    text = json.dumps(payloads, ensure_ascii=False)
    for personal in (APPLICANT["id_number"], APPLICANT["phone"], APPLICANT["full_name"], APPLICANT["address"]):
        assert personal not in text


def test_direct_rpc_with_a_token_forged_from_what_a_service_holds_is_refused(services):
    """Whatever key a service process holds, it cannot make a token intake accepts: its public key (as an
    HMAC secret), an HS256 token under the secret compose.yaml once published, and a rightly signed token
    whose lifetime is beyond the server's cap are all refused on direct RPC."""
    intake, config, _gateway = services
    code = intake.submit_dossier({"procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT,
                                  "form": {}, "documents": required_uploads("1.012786")})["code"]
    now = int(time.time())
    claims = {"sub": "admin", "agency": None, "roles": ["admin"], "iat": now, "exp": now + 600, "jti": "f" * 32}
    forged = {
        "the service's public key as an HMAC secret": hs256(claims, config["TOKEN_VERIFY_KEY"]),
        "compose.yaml's old secret": hs256(claims, "change-me-in-production"),
        "ten years": token_for(SIGNING, "admin", None, "admin", ttl=timedelta(days=3653)),
    }
    for what, token in forged.items():
        with pytest.raises(Unauthorized):
            intake.get_dossier(code, caller_token=token)
            pytest.fail(f"intake accepted a token forged with {what}")


def test_direct_rpc_to_workflow_for_another_agencys_task_is_refused_and_audited(amqp_uri, pg_urls):
    """The same for a task (IDOR by task id): workflow refuses a foreign or forged context and reports it."""
    from datetime import datetime, timezone

    from nameko.amqp.publish import Publisher
    from nameko.standalone.events import get_event_exchange

    from motcua.contracts import make_event
    from services.workflow.service import WorkflowService
    from tests.infra import wait_for

    config = {**nameko_config(amqp_uri), "DB_URLS": pg_urls, "METRICS_PORTS": {},
              "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"}
    containers = [ServiceContainer(cls, config) for cls in (WorkflowService, GatewayService)]
    for container in containers:
        container.start()
    try:
        now, code = datetime.now(timezone.utc), f"{COMMUNE}-261201-0042"
        exchange = get_event_exchange("intake", config)
        Publisher(amqp_uri).publish(make_event("intake", "dossier_received", {
            "code": code, "procedure_code": "1.001193", "procedure_name": "Đăng ký khai sinh", "field_code": "HT",
            "agency_code": COMMUNE, "channel": "online", "received_at": now, "due_at": now + timedelta(days=2),
            "received_by": f"receptionist@{COMMUNE}", "form": {}, "contact": {"full_name": "Nguyễn Văn A"}}),
            exchange=exchange, routing_key="dossier_received", declare=[exchange])
        with ServiceRpcProxy("workflow", {"AMQP_URI": amqp_uri}) as workflow:
            own = token_for(SIGNING, f"specialist@{COMMUNE}", COMMUNE, "specialist")
            routed = wait_for(lambda: workflow.list_tasks(own))
            assert routed, "workflow never routed the received dossier to the commune"
            [task] = routed
            outsider = f"specialist@{OTHER_COMMUNE}"
            with pytest.raises(Forbidden):
                workflow.get_task(task["id"], token_for(SIGNING, outsider, OTHER_COMMUNE, "specialist"))
            with pytest.raises(Forbidden):
                workflow.complete_task(task["id"], "approve", None,
                                       token_for(SIGNING, outsider, OTHER_COMMUNE, "specialist"))
            with pytest.raises(Unauthorized):
                workflow.complete_task(task["id"], "approve", None, token_for(ANOTHER_PAIR, "admin", None, "admin"))
            assert workflow.get_task(task["id"], own)["status"] == "open"  # nothing was done
        target = type("Target", (), {"db_url": pg_urls["gateway"]})
        denied = wait_for(lambda: len(audit_entries(target, username=outsider)) == 2
                          and audit_entries(target, username=outsider), timeout=20)
        assert denied, f"the gateway's audit log has {audit_entries(target, username=outsider)}"
        assert {(e.source, e.action, e.task_id) for e in denied} == {
            ("workflow", "workflow.get_task", task["id"]), ("workflow", "workflow.complete_task", task["id"])}
        [forged] = wait_for_audit(target, username="unverified:admin")
        assert (forged.action, forged.detail) == ("workflow.complete_task", "invalid token")
    finally:
        for container in containers:
            container.stop()
