"""Watching it (issue 16 §2): the rules pass `promtool check rules` and their unit tests, every alert has a
runbook in docs/operations.md, and every dashboard panel's query parses and names only metrics that exist:
Motcua's own (read from the code that registers them), the rules' recorded series, and the exporters'."""
import importlib.util
import json
import re
import shutil
import subprocess

import pytest
import yaml

from motcua.config import ROOT

RULES = ROOT / "deploy" / "prometheus" / "rules"
GRAFANA = ROOT / "deploy" / "grafana"
# Series of the exporters compose runs beside Motcua, as they document them: RabbitMQ's rabbitmq_prometheus
# plugin (per-object metrics on), prometheus-community's postgres_exporter, the blackbox exporter's TLS probe,
# and Prometheus's own `up`. The RabbitMQ and PostgreSQL names were each seen in a live scrape (RabbitMQ
# 3.10.8, postgres_exporter 0.11.1: Debian 12's) when the pictures in docs/operations.md were drawn.
EXPORTED_ELSEWHERE = {
    "up", "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queue_consumers",
    "rabbitmq_global_messages_received_total", "rabbitmq_global_messages_delivered_total", "rabbitmq_connections",
    "rabbitmq_channels", "rabbitmq_process_resident_memory_bytes", "rabbitmq_resident_memory_limit_bytes",
    "rabbitmq_disk_space_available_bytes", "pg_up", "pg_stat_database_numbackends", "pg_settings_max_connections",
    "pg_stat_database_xact_commit", "pg_stat_database_xact_rollback", "pg_database_size_bytes",
    "probe_ssl_earliest_cert_expiry",
}
SUFFIXES = {"Counter": ("_total",), "Histogram": ("_bucket", "_sum", "_count"), "Gauge": ("",)}
DEFINITION = re.compile(r'\b(Counter|Histogram|Gauge|gauge_from|GroupCountGauge)\(\s*"(motcua_[a-z_]+)"')


def promtool():
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is missing: deploy/dev/ensure-services.sh promtool (apt-get install -y prometheus)")
    return found


def motcua_series() -> set[str]:
    """Every series name Motcua's code registers, with the suffixes the client library adds."""
    names = set()
    for path in [*ROOT.glob("motcua/**/*.py"), *ROOT.glob("services/**/*.py")]:
        for kind, name in DEFINITION.findall(path.read_text()):
            names |= {name + suffix for suffix in SUFFIXES.get(kind, ("",))}
    return names


def rules():
    return yaml.safe_load((RULES / "motcua.rules.yml").read_text())["groups"]


def recorded() -> set[str]:
    return {rule["record"] for group in rules() for rule in group["rules"] if "record" in rule}


def metric_names(expr: str) -> set[str]:
    """The series an expression selects: identifiers that are neither functions, keywords nor labels."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    words = re.findall(r"(?<![\w:])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()", expr)
    keywords = {"and", "or", "unless", "offset", "bool", "by", "on"}
    return {w for w in words if w not in keywords}


def test_rules_pass_promtool_check_and_their_unit_tests():
    tool = promtool()
    checked = subprocess.run([tool, "check", "rules", str(RULES / "motcua.rules.yml")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([tool, "test", "rules", str(RULES / "tests" / "motcua.test.yml")],
                            capture_output=True, text=True, cwd=RULES / "tests")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_each_alert_the_issue_names_exists_with_a_runbook_section():
    alerts = {rule["alert"]: rule for group in rules() for rule in group["rules"] if "alert" in rule}
    assert {"MotcuaServiceDown", "MotcuaOutboxLagGrowing", "MotcuaDeadLetters", "MotcuaAgencyTaskQueueDeep",
            "MotcuaOverdueSpike", "MotcuaNotificationFailureRate", "MotcuaNationalPortalBacklog",
            "MotcuaCertificateExpiry"} <= set(alerts)
    operations = (ROOT / "docs" / "operations.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
               for heading in re.findall(r"^#+ (.+)$", operations, re.MULTILINE)}
    tested = (RULES / "tests" / "motcua.test.yml").read_text()
    for name, alert in alerts.items():
        page, _, anchor = alert["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{name}: no section #{anchor}"
        assert f"alertname: {name}" in tested, f"{name} has no promtool unit test"


def test_rules_name_only_series_that_exist():
    known = motcua_series() | recorded() | EXPORTED_ELSEWHERE
    for group in rules():
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - known
            assert not unknown, (rule.get("alert") or rule["record"], unknown)


def load_dashboards_module():
    spec = importlib.util.spec_from_file_location("motcua_dashboards", GRAFANA / "dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_provisioned_dashboards_are_the_generated_ones():
    module = load_dashboards_module()
    assert {"overview", "services", "agencies", "rabbitmq-postgresql"} == set(module.DASHBOARDS)
    for name, board in module.DASHBOARDS.items():
        written = json.loads((GRAFANA / "dashboards" / f"{name}.json").read_text())
        assert written == board, f"deploy/grafana/dashboards/{name}.json is stale: run deploy/grafana/dashboards.py"


def test_every_panel_query_parses_and_names_only_existing_metrics(tmp_path):
    known = motcua_series() | recorded() | EXPORTED_ELSEWHERE
    exprs = []
    for board in load_dashboards_module().DASHBOARDS.values():
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                assert metric_names(expr) <= known, (board["title"], panel["title"], metric_names(expr) - known)
                # Grafana's variables, as Grafana would substitute them, so promtool parses real PromQL
                exprs.append(expr.replace("$service", ".*").replace("$agency", ".*"))
    checked = tmp_path / "panels.rules.yml"
    checked.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": [
        {"record": f"panel:query_{i}", "expr": expr} for i, expr in enumerate(exprs)]}]}))
    result = subprocess.run([promtool(), "check", "rules", str(checked)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_name_reader_is_not_fooled_by_labels_and_functions():
    assert metric_names('sum by (queue) (rate(motcua_dead_letters_total{queue=~"a.b"}[5m])) > on (queue) '
                        'group_left () (x:y or vector(1))') == {"motcua_dead_letters_total", "x:y"}


def test_compose_loads_the_rules_the_dashboards_and_keeps_documents_on_a_volume():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in services["prometheus"]["volumes"]
    assert yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["rule_files"] == [
        "/etc/prometheus/rules/*.rules.yml"]
    assert {"./deploy/grafana/provisioning:/etc/grafana/provisioning:ro",
            "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro"} <= set(services["grafana"]["volumes"])
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/motcua.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["uid"] == load_dashboards_module().DATASOURCE["uid"]
    assert "documents:/var/lib/motcua/documents" in services["intake"]["volumes"] and "documents" in compose["volumes"]
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "INTAKE_BLOB_DIR=/var/lib/motcua/documents" in dockerfile
    [user] = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user not in ("root", "0")
