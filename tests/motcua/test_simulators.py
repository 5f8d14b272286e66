"""`make run`'s simulators (motcua/simulators/__init__.py): started by name, the connectors pointed at
them unless already configured, refused in production and for an unknown name."""
import os

import pytest
import requests

from motcua import simulators


@pytest.fixture
def started(monkeypatch, tmp_path):
    monkeypatch.setenv("MOTCUA_VAR_DIR", str(tmp_path))
    for name in ("DVCQG_URL", "DVCQG_USERNAME", "DVCQG_PASSWORD", "DVCQG_AGENCY_CODE", "NOTIFY_CONFIG",
                 "MOTCUA_SIM_SMS_API_KEY", "MOTCUA_SIM_SMS_SECRET_KEY", "MOTCUA_SIM_SMS_REPORT_TOKEN", "MOTCUA_ENV"):
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
