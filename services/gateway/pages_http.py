"""The pages' edge: HTML routes on the gateway's one HTTP entrypoint, Jinja2 templates (autoescaped),
the HTML error page (status from the one error table), forms shown again with their errors, and the
staff session: a cookie holding the access token, a CSRF token bound to it on every POST form."""
from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import hmac
import json
import re
import secrets
import uuid
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from nameko.web.handlers import HttpRequestHandler
from werkzeug.wrappers import Request, Response

from motcua.catalog import AGENCY_CODE
from motcua.contracts.rpc import MAX_DOCUMENT_BYTES, document_type, nfc
from motcua.db import utcnow
from motcua.errors import Forbidden, MotcuaError, Unauthorized, ValidationFailed
from motcua.identity import token_holder
from motcua.text import fold, strip_diacritics
from services.gateway import kept_input, pages_vi
from services.gateway.errors import ServiceUnavailable, retry_after, status_and_code
from services.gateway.http import JsonHttpHandler, https_only, log_failure


SESSION_COOKIE = "motcua_session"
SID_COOKIE = "motcua_sid"
RENEWED, RENEWED_TTL = "motcua.renewed_token", "motcua.renewed_ttl"  # request.environ: the page's new cookie
# A console form posted once the session had expired: its input is kept server-side (kept_input.py) for
# the page it was on, which shows it again after the new sign-in; this cookie names it (the ended
# sign-in's SID_COOKIE, which the new sign-in replaces).
PENDING_COOKIE = "motcua_pending"
PENDING_SECONDS = int(kept_input.KEPT_FOR.total_seconds())
KEPT_TAKEN = "motcua.kept_taken"  # request.environ: the page took the kept input, its cookie goes
LOGIN_COOKIE = "motcua_login"  # a nonce binding the login form's CSRF token before any session exists
MAX_FORM_BYTES = 25 * 1024 * 1024  # uploads: intake checks each document (MAX_DOCUMENT_BYTES at most)
MAX_FIELD_BYTES = 1024 * 1024
# A form shown again keeps the files it accepted as hidden fields (`kept.<key>.filename`, `.content`,
# base64): such a field holds one whole document.
KEPT_FIELD_BYTES = MAX_DOCUMENT_BYTES * 4 // 3 + 4
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "same-origin",
}  # and what every answer carries (http.EVERY_ANSWER: nosniff, no-store)
# A signed-in officer's page runs one script, the gateway's own static file (static/session.js: the
# warning before the session ends, and its renewal): no inline script, no eval, no other origin.
STAFF_SECURITY_HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": SECURITY_HEADERS["Content-Security-Policy"]
                          + "; script-src 'self'; connect-src 'self'"}

templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(default=True, default_for_string=True),
                        trim_blocks=True, lstrip_blocks=True)


def local_time(value: str | None, with_time: bool = True) -> str:
    """An ISO instant (already in the province's time) as "dd/mm/yyyy HH:MM"."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value)
    return moment.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")


templates.filters.update(
    when=local_time, status=lambda s: pages_vi.STATUSES.get(s, s), channel=lambda c: pages_vi.CHANNELS.get(c, c),
    action=lambda a: pages_vi.ACTIONS.get(a, a), timeliness=lambda t: pages_vi.TIMELINESS.get(t, t or "—"),
    role=lambda r: pages_vi.ROLES.get(r, r), fee=pages_vi.fee, processing_time=pages_vi.processing_time,
    online_level=lambda o: pages_vi.ONLINE_LEVELS.get(o, o), urlquote=lambda s: quote(str(s), safe=""),
    history_note=pages_vi.history_note, unaccented=strip_diacritics, megabytes=pages_vi.megabytes,
    file_size=pages_vi.file_size, decimal=pages_vi.decimal, vnd=pages_vi.vnd,
    pct=lambda v: "—" if v is None else f"{v:.2f}".replace(".", ",") + " %",
)
FORM_KEY = re.compile(r"^[0-9a-f]{32}$")


def document_names(procedure: dict) -> dict[str, str]:
    """The catalogue's name of each document key of a procedure (as intake's `get_procedure` gives it)."""
    return {d["key"]: d["name"] for d in procedure["documents"]}


def picked_agency(text: str | None, agencies: dict[str, str]) -> str | None:
    """The agency an `agency_picker` (templates/_forms.html) names: 'Sở Tư pháp (000.00.06.H56)', the
    bare code, or a name typed whole with or without diacritics; None for none of these (the province)."""
    if not text:
        return None
    code = AGENCY_CODE.search(text)
    if code and code.group(0) in agencies:
        return code.group(0)
    typed = fold(text).strip()
    named = [c for c, name in agencies.items() if fold(name).strip() == typed]
    return named[0] if len(named) == 1 else None


def form_key(values: dict) -> str | None:
    """The idempotency key a form was shown with (a hidden `idempotency_key`, made when the form is
    rendered): a double submit or a browser's retry of that form is then one command."""
    key = values.get("idempotency_key", "")
    return key if FORM_KEY.match(key) else None


def key_for_form(values: dict | None = None) -> str:
    """The key a form is rendered with: the one it was posted with when shown again (its command may
    have been done though its answer was lost), else a new one."""
    return form_key(values or {}) or uuid.uuid4().hex


def form_values(session, action: str, values: dict | None = None) -> dict:
    """What a console form posting to `action` shows in its fields: the values it was posted with when
    shown again with errors, else what was typed into it when the session ended (kept_input.py)."""
    return values or (session.kept_for(action) if session is not None else {})


templates.globals.update(rating_labels=pages_vi.RATINGS, return_methods=pages_vi.RETURN_METHODS,
                         key_for_form=key_for_form, form_values=form_values,
                         kept_limit=f"{kept_input.MAX_KEPT_CHARS:,}".replace(",", "."))


def render(template: str, status: int = 200, headers: dict | None = None, **context) -> Response:
    html = templates.get_template(template).render(**context)
    policy = STAFF_SECURITY_HEADERS if context.get("session") is not None else SECURITY_HEADERS
    return Response(html, status=status, headers={**policy, **(headers or {})}, mimetype="text/html")


def redirect(location: str) -> Response:
    return Response(status=303, headers={"Location": location, **SECURITY_HEADERS})


class Redirect(Exception):
    """Leave the handler for another page (e.g. the login form); `pending`: a form's input kept for
    after it (PENDING_COOKIE's value)."""

    def __init__(self, location: str, pending: str | None = None):
        super().__init__(location)
        self.location, self.pending = location, pending


class FormRejected(Exception):
    """The form shown again, with what was wrong, as the page's answer."""

    def __init__(self, response: Response):
        super().__init__(response.status_code)
        self.response = response


def field_errors(exc: MotcuaError) -> dict[str, str]:
    """Every refused field with its Vietnamese message (the first one at least)."""
    errors = {}
    for field, message in _flatten((exc.details or {}).get("errors") or {}):
        errors.setdefault(field, pages_vi.field_error(field, message))
    missing = (exc.details or {}).get("missing") or ()
    for document in missing:  # each at its own file field, named as the catalogue names it
        errors.setdefault(f"documents.{document['key']}", pages_vi.missing_document(document["name"]))
    if not missing:
        errors.setdefault(exc.field or "form", pages_vi.field_error(exc.field, exc.message))
    return errors


def _flatten(messages, prefix: str = ""):
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        yield prefix, messages[0]


@contextlib.contextmanager
def form_again(template: str, context):
    """Inside: the services' 4xx refusals become `template` again, rendered with `context()` and
    `errors`, with the error table's status. Services down and internal errors become the error page."""
    try:
        yield
    except MotcuaError as exc:
        status, _code = status_and_code(exc)
        if status >= 500 or isinstance(exc, ServiceUnavailable):
            raise
        errors, wait = field_errors(exc), retry_after(exc)
        if wait is not None:  # the throttle's own wait, in words on the page as in the header
            errors = {field: f"{message} {pages_vi.waiting(wait)}" for field, message in errors.items()}
        response = render(template, status=status, errors=errors, **context())
        if wait is not None:
            response.headers["Retry-After"] = str(wait)
        raise FormRejected(response) from None


def error_page(exc: BaseException) -> Response:
    status, _code = status_and_code(exc)
    log_failure(exc, " on a page")
    title, message = pages_vi.STATUS_PAGES.get(status, pages_vi.STATUS_PAGES[500])
    response = render("error.html", status=status, title=title, message=message, status_code=status)
    if (wait := retry_after(exc)) is not None:
        response.headers["Retry-After"] = str(wait)
    return response


class PageHttpHandler(HttpRequestHandler):
    """The gateway's one web server (the API's), for pages: not an API route (OpenAPI leaves it out)."""

    server = JsonHttpHandler.server

    def setup(self):
        super().setup()
        self.server.error_page = error_page  # unknown addresses outside the API are a page, too

    def response_from_exception(self, exc):
        # Only failures before the worker runs get here (e.g. a signature mismatch).
        return error_page(exc)


def page(method: str, url: str):
    """Declare an HTML page on the gateway's HTTP entrypoint: errors are an HTML page, never JSON."""

    def decorate(fn):
        @functools.wraps(fn)
        def entrypoint(service, request, **path_values):
            response = answer(service, request, **path_values)
            signed_out = any(cookie.startswith(f"{SESSION_COOKIE}=") for cookie in response.headers.getlist("Set-Cookie"))
            if RENEWED in request.environ and not signed_out:
                set_session(response, request, request.environ[RENEWED], request.environ[RENEWED_TTL], renewed=True)
            if KEPT_TAKEN in request.environ:  # shown once: a reload shows the form as it is
                response.delete_cookie(PENDING_COOKIE, path="/can-bo", httponly=True, samesite="Strict")
            return response

        def answer(service, request, **path_values):
            try:
                return fn(service, request, **nfc(path_values))
            except Redirect as exc:
                response = redirect(exc.location)
                if exc.pending:
                    response.set_cookie(PENDING_COOKIE, exc.pending, max_age=PENDING_SECONDS, httponly=True,
                                        samesite="Strict", secure=https_only(request), path="/can-bo")
                return response
            except FormRejected as exc:
                return exc.response
            except Exception as exc:
                return error_page(exc)

        return PageHttpHandler.decorator(method, url)(entrypoint)

    return decorate


def form_data(request: Request, max_field_bytes: int = MAX_FIELD_BYTES) -> dict:
    """The posted fields in NFC, stripped (a multipart body may carry files: see `uploads`)."""
    request.max_content_length = MAX_FORM_BYTES
    request.max_form_memory_size = max_field_bytes
    return {key: value.strip() for key, value in nfc(request.form.to_dict()).items()}


def province_zone(config) -> ZoneInfo:
    return ZoneInfo(config.get("TIME_ZONE", "Asia/Ho_Chi_Minh"))


def province_today(config) -> date:
    return datetime.now(province_zone(config)).date()


def query_data(request: Request) -> dict:
    """The query string's fields, in NFC and stripped."""
    return {key: value.strip() for key, value in nfc(request.args.to_dict()).items()}


def uploads(request: Request) -> list[dict]:
    """The chosen files as the RPC's documents (`{key, filename, content_base64}`), field name = key."""
    return [{"key": key, "filename": upload.filename,
             "content_base64": base64.b64encode(upload.read()).decode()}
            for key, upload in request.files.items(multi=True) if upload.filename]


def checked_uploads(request: Request, values: dict) -> tuple[list[dict], dict[str, str]]:
    """The chosen files and those a form shown again kept (a new choice replaces a kept one), each
    checked as intake will (size, type from the content): the accepted ones as the RPC's documents, and
    per refused one `documents.<key>` → which file and why, in Vietnamese, with the limit the form shows."""
    files = {key: (f"kept.{key}.filename", f"kept.{key}.content") for key in
             {name[len("kept."):-len(".content")] for name in values if name.startswith("kept.")
              and name.endswith(".content")}}
    accepted: dict[str, dict] = {}
    for key, (filename_field, content_field) in files.items():
        try:
            data = base64.b64decode(values[content_field], validate=True)
        except (ValueError, TypeError):
            continue  # not what this page rendered: as if no file had been kept
        accepted[key] = {"key": key, "filename": values.get(filename_field) or key, "data": data}
    for key, upload in request.files.items(multi=True):
        if upload.filename:
            accepted[key] = {"key": key, "filename": nfc(upload.filename), "data": upload.read()}
    documents, refused = [], {}
    for key, upload in accepted.items():
        data, name = upload["data"], upload["filename"]
        if not data:
            refused[f"documents.{key}"] = f"Tệp «{name}» rỗng."
        elif len(data) > MAX_DOCUMENT_BYTES:
            refused[f"documents.{key}"] = (f"Tệp «{name}» nặng {pages_vi.megabytes(len(data))}, quá giới hạn "
                                           f"{pages_vi.megabytes(MAX_DOCUMENT_BYTES)} mỗi tệp.")
        elif document_type(data) is None:
            refused[f"documents.{key}"] = f"Tệp «{name}» không phải PDF, JPEG hoặc PNG."
        else:
            documents.append({"key": key, "filename": name, "content_base64": base64.b64encode(data).decode()})
    return documents, refused


def keyed(secret: str, purpose: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:40]


class Session:
    """A signed-in officer: the verified caller, the raw token (passed on as `caller_token`) and the
    CSRF token every POST form of the console carries, bound to the sign-in (SID_COOKIE: it outlives
    the tokens a sliding session renews, so a form rendered before a renewal is still accepted);
    `kept`: what was typed into one of this page's forms when the session had ended (kept_input.py)."""

    def __init__(self, caller, token: str, secret: str, sid: str | None = None, zone: ZoneInfo | None = None,
                 kept: kept_input.Kept | None = None, warn_before: int = 120):  # config's SESSION_WARNING_SECONDS
        self.caller, self.token, self.kept, self.warn_before = caller, token, kept, warn_before
        self.csrf = keyed(secret, "csrf", sid or token)
        # When the session ends unless the officer does something before (every page shows it), and in
        # how many seconds (the page's script warns `warn_before` seconds ahead: its clock may differ).
        self.ends_at = session_end(caller, zone)
        self.expires_in = max(int((caller.expires_at - datetime.now(timezone.utc)).total_seconds()), 0) \
            if caller.expires_at else None

    def check(self, form: dict) -> None:
        if not hmac.compare_digest(form.get("csrf", ""), self.csrf):
            raise Forbidden("the form's CSRF token does not match the session", field="csrf")

    def kept_for(self, action: str) -> dict[str, str]:
        return self.kept.for_action(action) if self.kept else {}


def session_end(caller, zone: ZoneInfo | None) -> str | None:
    """The caller's token's end as the pages say it: HH:MM in the province's time."""
    return caller.expires_at.astimezone(zone).strftime("%H:%M") if caller.expires_at and zone else None


def staff_session(service, request: Request) -> Session:
    """The officer of the session cookie; without a valid one, to the login form and back (a form's
    input kept for that page)."""
    token = request.cookies.get(SESSION_COOKIE)
    try:
        caller = service.caller_from_token(token)
    except Unauthorized:
        back = back_after_login(request)
        kept = keep_posted_input(service, request, back, token) if request.method == "POST" else None
        raise Redirect(f"/can-bo/dang-nhap?tiep={quote(back, safe='')}", kept) from None
    # Sliding: past half its life, the token is renewed (the page's answer carries the new cookie).
    if caller.expires_at is not None and caller.issued_at is not None and \
            caller.expires_at - datetime.now(timezone.utc) < (caller.expires_at - caller.issued_at) / 2:
        caller, token = renew(service, request, caller)
    kept = taken_input(service, request, caller) if request.method == "GET" else None  # shown on a page only
    return Session(caller, token, service.config["FORM_KEY"], request.cookies.get(SID_COOKIE),
                   province_zone(service.config), kept, int(service.config.get("SESSION_WARNING_SECONDS", 120)))


def renew(service, request: Request, caller) -> tuple:
    """A new token for the caller now (the old one revoked, audited `auth.renew`: `renew_session`); the
    page's answer carries its cookie. Once per request: a second call gives the first one's."""
    if RENEWED not in request.environ:
        renewed = service.renew_session(caller, request.remote_addr)
        request.environ[RENEWED], request.environ[RENEWED_TTL] = renewed["access_token"], renewed["expires_in"]
    token = request.environ[RENEWED]
    return service.caller_from_token(token), token


def keep_posted_input(service, request: Request, page: str, token: str | None) -> str | None:
    """Keep a console form's input posted after the session ended, for `page` (kept_input.py): the
    value of PENDING_COOKIE (the ended sign-in's id), or None (nothing typed, or not a form of this
    browser's sign-in: its CSRF token must match the browser's SID_COOKIE)."""
    secret, sid = service.config["FORM_KEY"], request.cookies.get(SID_COOKIE)
    values = form_data(request)
    if not sid or not hmac.compare_digest(values.get("csrf", ""), keyed(secret, "csrf", sid)):
        return None
    had_files = any(upload.filename for upload in request.files.values())
    stored = kept_input.keep(service.db, keyed(secret, "kept", sid), page, request.path, values, had_files,
                             token_holder(service.config, token), utcnow())
    return sid if stored else None


def taken_input(service, request: Request, caller) -> kept_input.Kept | None:
    """What was typed on this page when the session ended, if this browser left some (its cookie)."""
    secret = request.cookies.get(PENDING_COOKIE)
    if not secret:
        return None
    kept = kept_input.take(service.db, keyed(service.config["FORM_KEY"], "kept", secret),
                           request.full_path.rstrip("?"), caller.username, utcnow())
    if kept is not None:
        request.environ[KEPT_TAKEN] = True
    return kept


def signed_value(secret: str, purpose: str, value) -> str:
    """`value` (JSON) for a cookie, signed for `purpose` (never readable as another purpose's)."""
    body = base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()
    return f"{body}.{keyed(secret, purpose, body)}"


def verified_value(request: Request, cookie: str, secret: str, purpose: str):
    """The value of a cookie `signed_value` for `purpose`, or None if its signature does not hold."""
    body, _, mac = request.cookies.get(cookie, "").partition(".")
    if not body or not hmac.compare_digest(mac, keyed(secret, purpose, body)):
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(body))
    except (binascii.Error, ValueError):
        return None


def back_after_login(request: Request) -> str:
    """Where a new sign-in returns to: the page asked for; for a form posted when the session had
    expired, the page the form was on (its Referer, when it is this site's), never the POST's own
    address (a GET there is 405)."""
    if request.method == "GET":
        return request.full_path.rstrip("?")
    referer = urlsplit(request.headers.get("Referer", ""))
    same_site = referer.netloc == request.host and referer.scheme in ("http", "https")
    return safe_next(referer.path + (f"?{referer.query}" if referer.query else "") if same_site else None,
                     "/can-bo")


def set_session(response: Response, request: Request, token: str, ttl_seconds: int, renewed: bool = False) -> Response:
    response.set_cookie(SESSION_COOKIE, token, max_age=ttl_seconds, httponly=True, samesite="Strict",
                        secure=https_only(request), path="/")
    if not renewed:  # a new sign-in: a new session identifier, which its CSRF tokens are bound to
        response.set_cookie(SID_COOKIE, secrets.token_urlsafe(24), httponly=True, samesite="Strict",
                            secure=https_only(request), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/can-bo/dang-nhap")
    return response


def clear_session(response: Response) -> Response:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
    response.delete_cookie(SID_COOKIE, path="/", httponly=True, samesite="Strict")
    return response


def login_nonce(request: Request) -> str:
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def check_login_csrf(request: Request, form: dict, secret: str) -> None:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(form.get("csrf", ""), keyed(secret, "login", nonce)):
        raise ValidationFailed("the login form expired", field="csrf")


def remember_login_nonce(response: Response, request: Request, nonce: str) -> Response:
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="Strict",
                        secure=https_only(request), path="/can-bo/dang-nhap")
    return response


# A path of this site and its query, in RFC 3986's characters only: a browser drops tabs and line
# breaks from a URL and reads a backslash as a slash, so `/\t/evil.example` or `/\\evil.example`
# would become `//evil.example`, another site. The second character may not start an authority.
_SAME_SITE_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")


def safe_next(target: str | None, default: str) -> str:
    """Only a path of this site (no scheme, no other host) is a place to go back to after login."""
    return target if target and _SAME_SITE_PATH.fullmatch(target) else default
