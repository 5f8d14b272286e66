"""What the HTTP API does beyond passing a call on: who may submit, merged views, platform health."""
from __future__ import annotations

from sqlalchemy import text
from werkzeug.wrappers import Request

from motcua.errors import ValidationFailed
from motcua.identity import Caller, verify_token
from services.gateway.http import bearer_token
from services.gateway.rpc import ping_all

MAX_IDEMPOTENCY_KEY = 128

LANDING_PAGE = """<!doctype html>
<html lang="vi">
<head><meta charset="utf-8"><title>Motcua — Một cửa điện tử</title></head>
<body>
<h1>Motcua — Một cửa điện tử</h1>
<p>Motcua là nền tảng một cửa điện tử dùng chung cho cả tỉnh: người dân và doanh nghiệp nộp hồ sơ
thủ tục hành chính trực tuyến, tại Bộ phận Một cửa hoặc qua bưu chính công ích; cán bộ tiếp nhận,
xử lý, liên thông giữa các cơ quan và trả kết quả; ai có mã hồ sơ cũng tra cứu được tiến độ; lãnh đạo
theo dõi từng cơ quan giải quyết hồ sơ trước hạn, đúng hạn hay trễ hạn.</p>
<ul>
<li><a href="/api/v1/procedures">Danh mục thủ tục hành chính</a> (API JSON)</li>
<li><a href="/api/v1/agencies">Danh sách cơ quan</a></li>
<li><a href="/health">Tình trạng hệ thống</a></li>
</ul>
<p>Hướng dẫn: tệp README.md của mã nguồn — cách chạy, ví dụ curl đưa một hồ sơ đi hết quy trình,
bảng cấu hình.</p>
</body>
</html>
"""


def submitter(request: Request, secret: str, channel: str) -> tuple[Caller | None, str | None]:
    """Who submits: online, anyone (a token sent must still be valid); at the counter or by post,
    a receptionist (cán bộ tiếp nhận)."""
    token = bearer_token(request)
    if channel == "online" and token is None:
        return None, None
    caller = verify_token(token, secret)
    if channel != "online":
        caller.require("receptionist")
    return caller, token


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed(f"at most {MAX_IDEMPOTENCY_KEY} characters", field="Idempotency-Key")
    return key


def procedure_with_steps(intake, workflow, code: str) -> dict:
    """A procedure (thủ tục) from intake, with the steps of its process (quy trình) from workflow."""
    procedure = intake.get_procedure(code)
    return {**procedure, "steps": workflow.get_process(code)["steps"]}


def platform_health(session, proxies: dict) -> tuple[int, dict]:
    """200 when every service answers its health() in time and the gateway's database does; else 503."""
    services = ping_all(proxies)
    try:
        session.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:  # reported in the answer, not raised
        database = f"error: {type(exc).__name__}"
    failed = sorted(name for name, state in services.items() if state != "ok")
    if database != "ok":
        failed.append("database")
    body = {"status": "unavailable" if failed else "ok", "services": services, "database": database}
    if failed:
        body["failed"] = failed
    return (503 if failed else 200), body
