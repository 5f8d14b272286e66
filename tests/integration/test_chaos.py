"""The chaos suite's short run (`make chaos` is the long one): a few hundred dossiers through their whole
life on two instances of every service, on a RabbitMQ node of the suite's own and fresh databases, each
fault once at a random (seeded) moment under load: every instance's service SIGKILLed, the broker's
connections closed, the broker restarted, each service's database refusing connections for 20 s, a
duplicate storm, poison in every inbox. Expected, with no person acting: every dossier returned and
every figure of `chaos.run.zeros` zero: nothing done twice (dossier codes, actions, tasks, deliveries,
events), no gap in any agency's day of dossier codes, nothing lost or parked beyond the poison. Timers
once with two workflow instances: tests/integration/test_sla.py."""
import json
import subprocess
import sys

import pytest

from chaos.run import table, zeros
from motcua.config import ROOT

DOSSIERS = 300


@pytest.mark.timeout(1500)
def test_the_platform_survives_every_fault_on_its_own(postgres, tmp_path):
    out = tmp_path / "chaos"
    log = tmp_path / "chaos.out"
    with open(log, "w") as output:
        run = subprocess.Popen(
            [sys.executable, "-m", "chaos", "--dossiers", str(DOSSIERS), "--concurrency", "10", "--seed", "11",
             "--outage", "20", "20", "--patience", "120", "--quiet-timeout", "180", "--out", str(out)],
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        try:
            run.wait(timeout=1300)
        except subprocess.TimeoutExpired:
            run.terminate()  # the suite stops its stack, its broker and drops its databases
            run.wait(timeout=90)
    assert (out / "figures.json").exists(), log.read_text()[-4000:]
    results = json.loads((out / "figures.json").read_text())
    report = table(results) + f"\n(logs under {out})"
    assert results["dossiers"]["submitted"] == DOSSIERS, report
    assert results["dossiers"]["returned"] == DOSSIERS, report
    assert not {name: value for name, value in zeros(results).items() if value}, report
    assert results["quiescence_s"]["reached"], report
