"""Local simulators of the national systems Motcua connects to (docs/connections.md): small HTTP servers
speaking each system's own format, started by the tests and, when configured, by `make run`
(`MOTCUA_SIMULATORS`). Each keeps what it received in memory and can be told to fail (down, slow,
garbage, refusals) so that the failure paths are tested here without the internet."""
from __future__ import annotations

import os

from motcua.config import env, is_production


def start_configured() -> list:
    """`make run`'s simulators: those named in MOTCUA_SIMULATORS (comma-separated: `dvcqg`), each started
    on a free local port, and the connector's settings pointed at it unless they are set already.
    Refused in production: a simulator is no national system."""
    names = [name.strip() for name in (env("MOTCUA_SIMULATORS") or "").split(",") if name.strip()]
    if names and is_production():
        raise SystemExit("MOTCUA_SIMULATORS is for development: production connects to the real systems")
    started = []
    for name in names:
        if name not in STARTERS:
            raise SystemExit(f"MOTCUA_SIMULATORS: no simulator {name!r} (known: {', '.join(sorted(STARTERS))})")
        simulator, settings = STARTERS[name]()
        for key, value in settings.items():
            os.environ.setdefault(key, value)
        print(f"simulator {name} on {simulator.url}", flush=True)
        started.append(simulator)
    return started


def _dvcqg():
    from motcua.simulators.dvcqg import DvcqgSimulator

    simulator = DvcqgSimulator().start()
    return simulator, {"DVCQG_URL": simulator.url, "DVCQG_USERNAME": simulator.username,
                       "DVCQG_PASSWORD": simulator.password, "DVCQG_AGENCY_CODE": simulator.agency_code}


STARTERS = {"dvcqg": _dvcqg}
