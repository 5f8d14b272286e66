"""Schemathesis against the embedded platform, from its own /api/v1/openapi.json: no request gets a 5xx.

A real dossier (received, so it has a task and notifications) is made first and its identifiers are
offered to the generator (schemathesis dictionaries), so the fuzzing reaches past "no such dossier".
"""
import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from tests.e2e.client import COMMUNE, LAND_OFFICE, Api

pytestmark = pytest.mark.e2e

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"))  # per operation, fuzzing phase
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261201")  # fixed: CI runs the same cases every time
TRACKING_KEY = "4321"  # the last 4 digits of the client's applicant's phone
FORMS = ("01", "02", "03", "04", "06")
# Operations that end the run's own session: logout revokes its token; changing an account (the admin's
# own is one GET /api/v1/users away) outdates the account's tokens. Fuzzed in the main run, they would
# turn the rest of it into 401s; so each is fuzzed after it, alone, with a token of its own.
SESSION_ENDING = ("logout", "update_user")


def known_values(api: Api) -> dict[str, list]:
    """Identifiers that exist on the platform, by the parameter they may fill."""
    dossier = api.submit()
    api.receive(dossier["code"])
    task = api.open_task(dossier["code"], LAND_OFFICE, "specialist")
    today = date.today()
    return {"path.code": [dossier["code"], "1.012786", COMMUNE], "path.task_id": [task["id"]],
            "path.form": list(FORMS), "path.document_id": [1], "path.delivery_id": [1, 2], "path.version": [1],
            "query.key": [TRACKING_KEY], "query.agency": [COMMUNE, LAND_OFFICE], "query.from": [today.replace(month=1, day=1).isoformat()],
            "query.to": [today.isoformat()], "body.procedure_code": ["1.012786"], "body.agency_code": [COMMUNE]}


def config_file(path: Path, values: dict[str, list]) -> Path:
    """A schemathesis.toml: each parameter drawn from its known values half of the time."""
    lines = ["[parameters]"]
    lines += [f'"{name}" = {{ dictionary = "{_name(name)}", probability = 0.5 }}' for name in values]
    for name, entries in values.items():
        lines += [f"[dictionaries.{_name(name)}]", f"values = {json.dumps(entries)}"]  # a JSON array is TOML
    path.write_text("\n".join(lines) + "\n")
    return path


def _name(parameter: str) -> str:
    return parameter.replace(".", "_")


def login(api: Api, username: str = "admin") -> str:
    """A fresh token (its own jti): taken before the run, which fuzzes logins into the throttle."""
    response = api.call("POST", "/api/v1/auth/token", json={"username": username, "password": "demo"})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def schemathesis(base: str, config: Path, token: str, *selection: str) -> tuple[int, int, str]:
    """Runs schemathesis on the operations selected, asserting it found no failure: (operations tested,
    operations in the document, the summary)."""
    result = subprocess.run(
        [str(SCHEMATHESIS), "--config-file", str(config), "run", f"{base}/api/v1/openapi.json",
         "--checks", "not_a_server_error", "--max-examples", str(MAX_EXAMPLES), "--seed", SEED, "--workers", "2",
         "--header", f"Authorization: Bearer {token}", "--request-timeout", "30", "--no-color", *selection],
        capture_output=True, text=True, timeout=600, cwd=config.parent)
    report = result.stdout[max(result.stdout.find("FAILURES"), 0):]  # the failures with their curl, or all
    assert result.returncode == 0, report[:12000] + result.stderr[-2000:]
    summary = result.stdout[result.stdout.find("SUMMARY"):]
    counts = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", summary)
    assert counts and counts[1] == counts[3], result.stdout  # every operation selected was tested
    return int(counts[3]), int(counts[2]), summary


@pytest.mark.timeout(900)  # three schemathesis runs of up to 600 s each would outlive the suite's 300 s
def test_no_generated_request_gets_a_server_error(embedded):
    base, var = embedded
    api = Api(base)
    config = config_file(var / "schemathesis.toml", known_values(api))
    tokens = {operation: login(api) for operation in ("main", *SESSION_ENDING)}
    started = time.monotonic()
    exclusions = [arg for operation in SESSION_ENDING for arg in ("--exclude-operation-id", operation)]
    runs = [schemathesis(base, config, tokens["main"], *exclusions)]
    runs += [schemathesis(base, config, tokens[operation], "--include-operation-id", operation)
             for operation in SESSION_ENDING]
    assert sum(tested for tested, _total, _summary in runs) == runs[0][1]  # the whole document, once
    print(f"schemathesis: {time.monotonic() - started:.0f}s", *(summary for *_, summary in runs), sep="\n")
