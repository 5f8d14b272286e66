"""What the HTTP API does beyond passing a call on: who may submit, merged views, platform health."""
from __future__ import annotations

from typing import Callable

from werkzeug.wrappers import Request

from motcua.db import ping as ping_database
from motcua.identity import Caller
from services.gateway.http import bearer_token
from services.gateway.rpc import ping_all


def submitter(request: Request, verify: Callable[[str | None], Caller],
              channel: str) -> tuple[Caller | None, str | None]:
    """Who submits: online, anyone (a token sent must still be valid); at the counter or by post,
    a receptionist (cán bộ tiếp nhận). `verify`: the gateway's `caller_from_token`."""
    token = bearer_token(request)
    if channel == "online" and token is None:
        return None, None
    caller = verify(token)
    if channel != "online":
        caller.require("receptionist")
    return caller, token


def with_citizen_identity(body, caller: Caller | None):
    """A submission's body with the signed-in citizen's name and ID number as the applicant's."""
    if caller is None or not caller.is_citizen or not isinstance(body, dict):
        return body
    applicant = body.get("applicant") if isinstance(body.get("applicant"), dict) else {}
    return {**body, "applicant": {**applicant, "full_name": caller.citizen_name or applicant.get("full_name"),
                                  "id_number": caller.citizen_id}}


def procedure_with_steps(intake, workflow, code: str) -> dict:
    """A procedure (thủ tục) from intake, with the steps of its process (quy trình) from workflow."""
    procedure = intake.get_procedure(code)
    return {**procedure, "steps": workflow.get_process(code)["steps"]}


def own_health(session) -> tuple[int, dict]:
    """200 while the gateway's own database answers, else 503 (the error's type only)."""
    try:
        ping_database(session)
    except Exception as exc:  # reported in the answer, not raised
        return 503, {"status": "unavailable", "service": "gateway", "checks": {"database": f"error: {type(exc).__name__}"}}
    return 200, {"status": "ok", "service": "gateway", "checks": {"database": "ok"}}


def platform_health(session, proxies: dict, gateway: dict) -> tuple[int, dict]:
    """200 when every service answers its health() in time and the gateway's database does; else 503.
    `gateway`: the gateway's own figures (long polls held, audit rows waiting for their batch)."""
    services = ping_all(proxies)
    try:
        ping_database(session)
        database = "ok"
    except Exception as exc:  # reported in the answer, not raised
        database = f"error: {type(exc).__name__}"
    failed = sorted(name for name, state in services.items() if state != "ok")
    if database != "ok":
        failed.append("database")
    body = {"status": "unavailable" if failed else "ok", "services": services, "database": database,
            "gateway": gateway}
    if failed:
        body["failed"] = failed
    return (503 if failed else 200), body
