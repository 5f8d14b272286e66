"""The platform as deployed with least privilege: five processes, each with only its own broker user
(`motcua.broker_permissions`) and its own database user (deploy/postgres-init.sql), and a dossier still
travels from submission to its result, notified and tracked."""
import pytest
import requests

from motcua.config import SERVICES
from tests import infra
from tests.e2e.client import APPLICANT, Api, mails_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def broker(least_privilege_broker):
    return least_privilege_broker


@pytest.fixture
def platform(broker, postgres, tmp_path):
    with infra.databases_as_deployed() as urls:
        services = infra.ServiceProcesses(broker.uri("gateway"), urls, tmp_path)
        for service in SERVICES:  # its own broker user, its own database URL, the others' emptied
            services.instance_env[service].update({f"{other.upper()}_DB_URL": "" for other in SERVICES
                                                   if other != service})
            services.instance_env[service]["AMQP_URI"] = broker.uri(service)
        services.start_all()
        try:
            yield services
        finally:
            services.stop_all()


def connected_users(vhost):
    response = requests.get(f"{infra.RABBIT_MGMT}/vhosts/{vhost}/connections", auth=infra.RABBIT_AUTH, timeout=10)
    response.raise_for_status()
    return {connection["user"] for connection in response.json()}


def test_a_dossier_flows_when_each_process_holds_only_its_own_credentials(platform, broker):
    api = Api(platform.base_url)
    code = api.submit(key="least-privilege-1")["code"]
    api.receive(code)
    api.process_land_dossier(code)
    assert api.wait_status(code, "result_ready")["status_code"] == 9
    assert infra.wait_for(lambda: mails_for(platform.log_dir / "var" / "mailbox.mbox", code), timeout=30)
    tracked = api.call("GET", f"/api/v1/track/{code}?key={APPLICANT['phone'][-4:]}")
    assert tracked.status_code == 200 and tracked.json()["status"] == "result_ready"
    assert "ACCESS_REFUSED" not in platform.logs()
    expected = {broker.prefix + service for service in SERVICES}  # each its own user, none guest
    assert infra.wait_for(lambda: connected_users(broker.vhost) == expected, timeout=15), connected_users(broker.vhost)
