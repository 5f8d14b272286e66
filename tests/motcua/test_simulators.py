"""`make run`'s simulators (motcua/simulators/__init__.py): started by name, the connectors pointed at
them unless already configured, refused in production and for an unknown name; started for a connection
whose URL is on this machine, except in production."""
import os

import pytest
import requests

from motcua import simulators


@pytest.fixture
def started(monkeypatch, tmp_path):
    monkeypatch.setenv("MOTCUA_VAR_DIR", str(tmp_path))
    for name in ("DVCQG_URL", "DVCQG_USERNAME", "DVCQG_PASSWORD", "DVCQG_AGENCY_CODE", "NOTIFY_CONFIG",
                 "MOTCUA_SIM_SMS_API_KEY", "MOTCUA_SIM_SMS_SECRET_KEY", "MOTCUA_SIM_SMS_REPORT_TOKEN", "MOTCUA_ENV",
                 "INTAKE_SIGNING", "INTAKE_PAYMENT_URL", "VNEID_ISSUER", "STAFF_OIDC_ISSUER"):
        monkeypatch.setenv(name, "")  # recorded, so what start_configured sets is undone after the test
        monkeypatch.delenv(name)
    running = []
    yield running
    for simulator in running:
        simulator.stop()


def test_named_simulators_start_and_the_connectors_point_at_them(started, monkeypatch):
    monkeypatch.setenv("MOTCUA_SIMULATORS", "dvcqg, sms")
    monkeypatch.setenv("NOTIFY_CONFIG", "/etc/motcua/notify.yaml")  # the operator's own: kept
    started += simulators.start_configured()
    dvcqg, sms = started
    assert os.environ["DVCQG_URL"] == dvcqg.url and os.environ["NOTIFY_CONFIG"] == "/etc/motcua/notify.yaml"
    login = requests.post(f"{dvcqg.url}/api/auth", json={"username": os.environ["DVCQG_USERNAME"],
                                                          "password": os.environ["DVCQG_PASSWORD"]}, timeout=5)
    assert login.json()["error_code"] == 0
    assert requests.post(sms.url, json={}, timeout=5).json()["CodeResult"] == "101"


@pytest.mark.parametrize("setting, why", [
    ({"MOTCUA_SIMULATORS": "dvcqg", "MOTCUA_ENV": "production"}, "production"),
    ({"MOTCUA_SIMULATORS": "vneid-oops"}, "no simulator 'vneid-oops'"),
])
def test_refused(started, monkeypatch, setting, why):
    for name, value in setting.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as refused:
        simulators.start_configured()
    assert why in str(refused.value)


def test_a_connection_pointed_at_this_machine_gets_its_simulator_on_that_port(started, monkeypatch):
    from tests.infra import free_port
    payment, issuer = free_port(), f"http://localhost:{free_port()}"
    monkeypatch.delenv("MOTCUA_SIMULATORS", raising=False)
    monkeypatch.setenv("INTAKE_PAYMENT_URL", f"http://127.0.0.1:{payment}")
    monkeypatch.setenv("VNEID_ISSUER", issuer)
    monkeypatch.setenv("STAFF_OIDC_ISSUER", issuer)  # the same provider: started once
    started += simulators.start_configured()
    provider, platform = started
    assert platform.url == f"http://127.0.0.1:{payment}" and provider.issuer == issuer
    discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=5).json()
    assert discovery["issuer"] == issuer
    provider.faults.play("down")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{issuer}/jwks", timeout=5)
    provider.faults.clear()
    assert requests.get(f"{issuer}/jwks", timeout=5).json()["keys"]


def test_production_starts_no_simulator_for_a_local_url(started, monkeypatch):
    """There a local URL is the operator's own endpoint (a signing proxy), never a simulator."""
    monkeypatch.setenv("MOTCUA_ENV", "production")
    monkeypatch.delenv("MOTCUA_SIMULATORS", raising=False)
    monkeypatch.setenv("INTAKE_SIGNING", "csc")
    monkeypatch.setenv("INTAKE_SIGNING_URL", "http://127.0.0.1:1/csc/v1")
    assert simulators.start_configured() == []
