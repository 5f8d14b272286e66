"""Production start-up: every process gets the keys of its own services only, one per purpose, and
refuses to start with a key missing, weak or published (the development token pair included), or with
a signing key that is not the verifying key's pair. Agency systems' tokens are made by an operator's
command holding the signing key, within the server's cap."""
from __future__ import annotations

import pytest

from motcua import cli, keys
from motcua.config import SERVICE_KEYS, SERVICES, nameko_config
from motcua.identity import TokenLimits, verify_token
from tests.infra import set_production_keys

KEYS = ("TRACKING_KEY", "SEARCH_KEY", "THROTTLE_KEY", "FORM_KEY", "AUDIT_KEY", "DATA_KEY")


@pytest.fixture
def production(monkeypatch, tmp_path):
    monkeypatch.setenv("MOTCUA_ENV", "production")
    monkeypatch.setenv("SMTP_HOST", "smtp.example.gov.vn")
    return set_production_keys(monkeypatch, tmp_path)


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_gets_its_own_keys_and_no_other(production, service):
    config = nameko_config("amqp://broker", services=[service])
    assert {name for name in KEYS if name in config} == set(SERVICE_KEYS[service])
    for name, setting in SERVICE_KEYS[service].items():
        assert config[name] == production[setting]
    assert config["DEAD_LETTER_KEYS"] == {service: production[f"{service.upper()}_DEAD_LETTER_KEY"]}
    assert ("TOKEN_SIGNING_KEY" in config) == (service == "gateway")  # the private key: the gateway's alone
    assert "BEGIN PUBLIC KEY" in config["TOKEN_VERIFY_KEY"]
    assert "SECRET" not in config


def test_an_agency_workers_process_holds_no_service_key(production):
    config = nameko_config("amqp://broker", services=())
    assert not {"TOKEN_SIGNING_KEY", "TOKEN_VERIFY_KEY", "DEAD_LETTER_KEYS", *KEYS} & set(config)


MISSING = sorted({(service, setting) for service, own in SERVICE_KEYS.items() for setting in own.values()}
                 | {(service, f"{service.upper()}_DEAD_LETTER_KEY") for service in SERVICES}
                 | {(service, keys.TOKEN_VERIFY_KEY) for service in SERVICES}
                 | {("gateway", keys.TOKEN_SIGNING_KEY)})


@pytest.mark.parametrize("service, setting", MISSING)
def test_production_refuses_to_start_without_each_key(production, monkeypatch, service, setting):
    monkeypatch.delenv(setting)
    with pytest.raises(SystemExit, match=f"{setting} must be set"):
        nameko_config("amqp://broker", services=[service])


def test_the_old_shared_secret_alone_starts_nothing(production, monkeypatch):
    """An operator who set only MOTCUA_SECRET (the one secret of before) is told which key is missing."""
    monkeypatch.delenv("MOTCUA_TRACKING_KEY")
    monkeypatch.setenv("MOTCUA_SECRET", keys.new_key())
    with pytest.raises(SystemExit, match="MOTCUA_TRACKING_KEY must be set"):
        nameko_config("amqp://broker", services=["reporting"])


@pytest.mark.parametrize("setting", [keys.TOKEN_SIGNING_KEY, keys.TOKEN_VERIFY_KEY])
@pytest.mark.parametrize("given_as", ["path", "text"])
def test_production_refuses_the_published_development_token_pair(production, monkeypatch, setting, given_as):
    path = keys.DEVELOPMENT_PEMS[setting]
    monkeypatch.setenv(setting, str(path) if given_as == "path" else path.read_text())
    with pytest.raises(SystemExit, match=f"{setting} is a key published in the repository"):
        nameko_config("amqp://broker", services=["gateway"])


@pytest.mark.parametrize("setting, wrong", [
    (keys.TOKEN_VERIFY_KEY, "not-a-pem-file-anywhere"),
    (keys.TOKEN_SIGNING_KEY, keys.new_token_pair()[0]),  # another pair's private key
    (keys.TOKEN_VERIFY_KEY, keys.new_token_pair()[0]),  # a private key where the public one goes
], ids=["unreadable", "not-the-pair", "private-as-public"])
def test_production_refuses_token_keys_that_cannot_work(production, monkeypatch, setting, wrong):
    monkeypatch.setenv(setting, wrong)
    with pytest.raises(SystemExit, match=setting):
        nameko_config("amqp://broker", services=["gateway"])


@pytest.mark.parametrize("setting", ["MOTCUA_TRACKING_KEY", "GATEWAY_THROTTLE_KEY", "GATEWAY_DEAD_LETTER_KEY"])
def test_production_refuses_a_weak_key(production, monkeypatch, setting):
    monkeypatch.setenv(setting, "change-me-in-production")
    with pytest.raises(SystemExit, match=f"{setting} is weaker than 256"):
        nameko_config("amqp://broker", services=["gateway"])


def test_an_operator_makes_an_agency_systems_token_with_the_signing_key(production, capsys):
    assert cli.main(["tokens", "system", "000.00.18.H56", "--days", "30"]) == 0
    token = capsys.readouterr().out.strip()
    caller = verify_token(token, keys.pem_setting(keys.TOKEN_VERIFY_KEY), TokenLimits())
    assert (caller.username, caller.agency_code, caller.roles) == ("system@000.00.18.H56", "000.00.18.H56",
                                                                  ("system",))
    assert (caller.expires_at - caller.issued_at).days == 30


def test_an_operator_makes_reportings_token_for_the_national_portal_push(production, monkeypatch, capsys):
    assert cli.main(["tokens", "reporting", "--days", "90"]) == 0
    token = capsys.readouterr().out.strip()
    caller = verify_token(token, keys.pem_setting(keys.TOKEN_VERIFY_KEY), TokenLimits())  # a system's cap
    assert (caller.username, caller.agency_code, caller.roles) == ("service@reporting", None, ("portal_sync",))
    # production's reporting refuses to push without it rather than make one
    from services.reporting import dvcqg
    monkeypatch.setenv("DVCQG_URL", "https://lgsp.example.vn")
    for name, value in (("DVCQG_USERNAME", "tinh"), ("DVCQG_PASSWORD", "secret"), ("DVCQG_AGENCY_CODE", "H56")):
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match="REPORTING_SERVICE_TOKEN"):
        dvcqg.settings_from_env()
    monkeypatch.setenv("REPORTING_SERVICE_TOKEN", token)
    assert dvcqg.settings_from_env() is not None and dvcqg.caller_token() == token


def test_the_operators_command_refuses_a_token_beyond_the_cap(production, monkeypatch, capsys):
    monkeypatch.setenv("MOTCUA_SYSTEM_TOKEN_MAX_DAYS", "90")
    assert cli.main(["tokens", "system", "000.00.18.H56", "--days", "3650"]) == 2
    assert "between 1 and 90" in capsys.readouterr().err


def test_without_the_signing_key_no_token_can_be_made(production, monkeypatch):
    """A service's or a worker's machine holds no signing key: the command cannot make a token there."""
    monkeypatch.delenv(keys.TOKEN_SIGNING_KEY)
    with pytest.raises(SystemExit, match=f"{keys.TOKEN_SIGNING_KEY} must be set"):
        cli.main(["tokens", "system", "000.00.18.H56"])


def test_production_runs_no_example_worker_without_an_operators_token(production, monkeypatch):
    from motcua import run

    monkeypatch.delenv("MOTCUA_WORKER_TOKEN", raising=False)
    with pytest.raises(SystemExit, match="motcua tokens system 000.00.18.H56"):
        run.example_worker_token("000.00.18.H56")
    monkeypatch.setenv("MOTCUA_WORKER_TOKEN", "the-operators-token")
    assert run.example_worker_token("000.00.18.H56") == "the-operators-token"


def test_keys_commands_make_a_key_and_a_token_pair(tmp_path, capsys):
    assert cli.main(["keys", "new"]) == 0
    assert keys.is_strong(capsys.readouterr().out.strip())
    private, public = tmp_path / "signing.pem", tmp_path / "verify.pem"
    assert cli.main(["keys", "token-pair", str(private), str(public)]) == 0
    assert private.stat().st_mode & 0o077 == 0  # the owner's only
    from motcua.identity import signing_key, verify_key

    assert signing_key(private.read_text()).public_key() == verify_key(public.read_text())


@pytest.mark.parametrize("setting, url", [
    ("AMQP_URI", "amqp://motcua-intake:motcua-intake@rabbitmq:5672/"),  # compose's demo user
    ("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"),
    ("INTAKE_DB_URL", "postgresql+psycopg://motcua_intake:motcua@postgres:5432/motcua_intake"),
])
def test_production_refuses_published_or_short_passwords_in_urls(production, monkeypatch, setting, url):
    monkeypatch.setenv(setting, url)
    with pytest.raises(SystemExit, match=f"{setting}'s password") as refused:
        nameko_config(services=["intake"])
    assert url not in str(refused.value) and "@" not in str(refused.value)


def test_production_takes_private_passwords_and_passwordless_urls(production, monkeypatch):
    monkeypatch.setenv("AMQP_URI", f"amqp://motcua-intake:{keys.new_key()}@rabbitmq:5672/")
    monkeypatch.setenv("INTAKE_DB_URL", "postgresql+psycopg:///motcua_intake?host=/run/postgresql")  # peer auth
    assert nameko_config(services=["intake"])["AMQP_URI"].startswith("amqp://motcua-intake:")


@pytest.mark.parametrize("secret", [None, "development-postal-callback-secret", "short"])
def test_production_refuses_a_postal_callback_secret_unset_weak_or_published(production, monkeypatch, secret):
    """The carrier's callbacks move a dossier (delivered: returned): their key is held to every key's rules."""
    from services.intake import postal

    monkeypatch.setenv("POSTAL_URL", "https://donhang.vnpost.vn/api")
    if secret is None:
        monkeypatch.delenv(keys.POSTAL_CALLBACK_SECRET, raising=False)
    else:
        monkeypatch.setenv(keys.POSTAL_CALLBACK_SECRET, secret)
    with pytest.raises(SystemExit):
        postal.settings_from_env()
    strong = keys.new_key()
    monkeypatch.setenv(keys.POSTAL_CALLBACK_SECRET, strong)
    assert postal.settings_from_env().callback_secret == strong
