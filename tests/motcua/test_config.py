"""Settings: typed from the environment; a process reads only the settings of the services it runs."""
import pytest

from motcua.config import (
    POOL_OVERFLOW,
    SERVICES,
    PlatformSettings,
    PoolSize,
    db_connections_at_most,
    db_pool,
    nameko_config,
)


def test_a_process_reads_only_its_own_services_settings(monkeypatch):
    monkeypatch.setenv("NOTIFY_DB_URL", "postgresql+psycopg://notify@db/notify")
    monkeypatch.setenv("INTAKE_DB_URL", "postgresql+psycopg://intake@db/intake")
    config = nameko_config("amqp://broker", services=["notify"])
    assert config["DB_URLS"] == {"notify": "postgresql+psycopg://notify@db/notify"}
    assert set(config["METRICS_PORTS"]) == {"notify"}
    assert "SMTP" in config and not {"WEB_SERVER_ADDRESS", "LOGIN_MAX_FAILURES", "SLA_CHECK_SECONDS"} & set(config)
    everything = nameko_config("embedded://")  # the embedded platform runs them all
    assert set(everything["DB_URLS"]) == {"gateway", "intake", "workflow", "notify", "reporting"}


def test_a_setting_of_the_wrong_type_stops_the_process_naming_it(monkeypatch):
    monkeypatch.setenv("MOTCUA_EVENT_BATCH_SIZE", "lots")
    with pytest.raises(SystemExit, match="MOTCUA_EVENT_BATCH_SIZE must be a whole number"):
        nameko_config("embedded://", services=["reporting"])
    monkeypatch.delenv("MOTCUA_EVENT_BATCH_SIZE")
    assert nameko_config("embedded://", services=["reporting"])["EVENT_BATCH_SIZE"] == 64


def test_retry_settings_are_typed_and_a_dead_letter_key_reaches_only_its_service(monkeypatch):
    monkeypatch.setenv("MOTCUA_RETRY_FOR_SECONDS", "600")
    monkeypatch.setenv("NOTIFY_DEAD_LETTER_KEY", "only notify holds this")
    config = nameko_config("amqp://broker", services=["notify"])
    assert (config["RETRY_FOR_SECONDS"], config["RETRY_BASE_SECONDS"], config["RETRY_CAP_SECONDS"]) == (600, 1, 300)
    assert config["DEAD_LETTER_KEYS"] == {"notify": "only notify holds this"}
    assert "notify" not in nameko_config("amqp://broker", services=["reporting"])["DEAD_LETTER_KEYS"]
    monkeypatch.setenv("MOTCUA_RETRY_FOR_SECONDS", "an hour")
    with pytest.raises(SystemExit, match="MOTCUA_RETRY_FOR_SECONDS must be a number"):
        nameko_config("embedded://", services=["reporting"])


def test_the_five_services_fit_the_default_connection_budget(monkeypatch):
    """Sized from the worker count, one instance of each service stays within PostgreSQL's default
    100 connections less its reserved ones, with room for tools."""
    monkeypatch.setenv("INTAKE_DB_URL", "postgresql+psycopg://intake@db/intake")
    config = nameko_config("amqp://broker", services=["intake"])
    needed = sum(db_connections_at_most(service, config["max_workers"]) for service in SERVICES)
    assert needed <= PlatformSettings.db_connection_limit <= 97
    assert db_pool("intake", 10) == PoolSize(11, POOL_OVERFLOW) and POOL_OVERFLOW <= 2


def test_a_platform_over_its_connection_budget_does_not_start(monkeypatch):
    monkeypatch.setenv("INTAKE_DB_URL", "postgresql+psycopg://intake@db/intake")
    monkeypatch.setenv("MOTCUA_DB_CONNECTION_LIMIT", "60")
    with pytest.raises(SystemExit, match=r"MOTCUA_DB_CONNECTION_LIMIT=60: set MOTCUA_MAX_WORKERS to 7 or less"):
        nameko_config("amqp://broker", services=["intake"])
    monkeypatch.setenv("MOTCUA_MAX_WORKERS", "7")
    assert nameko_config("amqp://broker", services=["intake"])["max_workers"] == 7
    monkeypatch.delenv("INTAKE_DB_URL")  # SQLite, one connection per service: no budget to keep
    monkeypatch.setenv("MOTCUA_MAX_WORKERS", "50")
    assert nameko_config("embedded://", services=["intake"])["max_workers"] == 50
