"""The HTTP edge on nameko's web server: JSON in and out, errors from the one table, HTTP metrics.

`route(method, url)` declares an entrypoint whose method returns a payload, `(status, payload)` or a
Response; whatever it raises becomes the error table's JSON answer inside the worker, so nameko never
logs an exception message (remote messages may quote personal data). Unknown routes and wrong
methods answer the same JSON, and every request is counted by route template, never raw path.
"""
from __future__ import annotations

import functools
import json
import logging
import re
import time
import traceback
from dataclasses import dataclass

import eventlet
from marshmallow import Schema
from nameko.exceptions import RemoteError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from prometheus_client import Counter, Gauge, Histogram
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import IntegerConverter, Map
from werkzeug.wrappers import Request, Response

from motcua import idempotency, logs
from motcua.config import is_production
from motcua.contracts.rpc import nfc
from motcua.metrics import LATENCY_BUCKETS, metrics_for
from services.gateway.errors import (
    INTERNAL,
    UNAVAILABLE,
    InvalidJson,
    ServiceUnavailable,
    UnsupportedMediaType,
    error_body,
    retry_after,
    status_and_code,
)
from services.gateway.proxies import Proxies, trusted_networks
from services.gateway.watch import Held

log = logging.getLogger(__name__)
MACHINE_PATHS = ("/api/", "/health", "/metrics")
_QUERY = re.compile(r"\?[^\s\"]*")


class QueryStringsRedacted(logging.Filter):
    """The access log's request lines without their query strings: a tracking key (the phone's last
    digits) or a portal search travels in one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg, record.args = record.getMessage(), None
        record.msg = _QUERY.sub("?[redacted]", str(record.msg))
        return True


ACCESS_LOG_FILTER = QueryStringsRedacted()

MAX_BODY_BYTES = 1024 * 1024
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def json_response(payload, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status, headers=headers,
                    mimetype="application/json")


def log_failure(exc: BaseException, where: str = "") -> None:
    """What the server's own failures leave in the log: the type and the code path only (an
    exception's message may quote personal data); a service that did not answer, by name."""
    if status_and_code(exc) == INTERNAL:
        log.error("internal error%s (%s)\n%s", where, _kind(exc), "".join(traceback.format_tb(exc.__traceback__)))
    elif isinstance(exc, ServiceUnavailable):
        log.warning("service unavailable: %s", exc.message)
    elif status_and_code(exc) == UNAVAILABLE:  # a failure that passes: a service's, or the gateway's database
        log.warning("unavailable for now%s (%s)", where, _kind(exc))


def error_response(exc: BaseException) -> Response:
    status, body = error_body(exc)
    log_failure(exc)
    headers = None
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers = {"Allow": ", ".join(sorted(exc.valid_methods))}
    elif (wait := retry_after(exc)) is not None:
        headers = {"Retry-After": str(wait)}
    return json_response(body, status, headers)


def _kind(exc: BaseException) -> str:
    if isinstance(exc, RemoteError):
        return f"RemoteError {exc.exc_type}"
    return type(exc).__qualname__


def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES):
    """The request body as JSON (strings in NFC); 415 unless it is declared JSON, 400 if it is not."""
    mimetype = request.mimetype
    # Checked here: Werkzeug 3's get_json() raises a 415 that nameko would turn into a 500.
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json")
    request.max_content_length = max_bytes
    return parse_json(request.get_data(cache=False))


def parse_json(data: bytes | str, what: str = "the body"):
    """JSON text as Python values, strings in NFC; NaN and Infinity refused (they are not JSON), and
    so is nesting deeper than MAX_JSON_DEPTH, before parsing (the parser recurses once per level)."""
    _check_depth(data, what)
    try:
        return nfc(json.loads(data, parse_constant=_not_json))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        raise InvalidJson(f"{what} is not valid JSON") from None


# No request of the API nests deeper than a few levels; 200,000 levels made the parser's recursion a 500.
MAX_JSON_DEPTH = 32
# A string (whose brackets are text) or one bracket: the depth is counted over these matches only.
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _check_depth(data: bytes | str, what: str) -> None:
    raw = data.encode(errors="replace") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:  # the usual body: no scan needed
        return
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        bracket = match.group()
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidJson(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
        elif bracket in (b"]", b"}"):
            depth -= 1


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def query(request: Request) -> dict:
    return nfc(request.args.to_dict())


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class HttpMetrics:
    def __init__(self, registry):
        labels = ["method", "route", "status"]
        self.requests = Counter("motcua_http_requests", "HTTP requests by route template and status",
                                labels, registry=registry)
        self.latency = Histogram("motcua_http_request_duration_seconds",
                                 "HTTP request latency (a long poll's wait for a change left out)",
                                 labels, buckets=LATENCY_BUCKETS, registry=registry)
        self.held = Gauge("motcua_http_held_requests", "Long polls waiting for a change now", ["route"],
                          registry=registry)
        self.holds = Counter("motcua_http_holds", "Long polls ended, by how: changed (answered 200) or "
                             "timeout (304)", ["route", "outcome"], registry=registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method if method in KNOWN_METHODS else "other", route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)


# What every answer says to the browser, API and pages alike: don't guess a type other than the one
# declared, and don't keep a copy (answers carry personal data; a counter's or a kiosk's shared browser
# and any cache between must not keep them). An answer that may be kept says so itself (static assets).
EVERY_ANSWER = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
# Browsers come back over HTTPS only, for a year, once they were answered over it.
HSTS = "max-age=31536000"


def https_only(request: Request) -> bool:
    """Whether the browser is told to use HTTPS only (HSTS, `Secure` cookies): the request came over
    TLS (to the gateway or to a trusted proxy), or this is production, where every request must."""
    return request.is_secure or is_production()


def secure(response: Response, request: Request) -> Response:
    for name, value in EVERY_ANSWER.items():
        response.headers.setdefault(name, value)
    if https_only(request):
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


class JsonWsgiApp(WsgiApp):
    def __call__(self, environ, start_response):
        started = time.perf_counter()
        # A request is where a trace begins: its worker takes it (`context_data_from_headers`), and the
        # access log line, written after the answer in this same greenthread, carries it too.
        logs.set_trace(logs.new_trace(), self.server.container.service_name)
        self.server.proxies.resolve(environ)  # the client's address and scheme, before anything reads them
        request = Request(environ, shallow=True)
        route, held = "unmatched", 0.0
        try:
            rule, values = self.url_map.bind_to_environ(environ).match(return_rule=True)
            route = rule.rule
            request.path_values = values
            response = rule.endpoint.handle_request(request)
            while isinstance(response, Held):
                waited = time.perf_counter()
                response = self._hold(response, rule, values, environ)
                held += time.perf_counter() - waited
        except HTTPException as exc:  # unknown route, wrong method
            response = self._unmatched(request, exc)
        self.server.http_metrics.observe(request.method, route, response.status_code,
                                         time.perf_counter() - started - held)
        return secure(response, request)(environ, start_response)

    def _hold(self, held: Held, rule, values: dict, environ) -> Response | Held:
        """A long poll, held here in the connection's own greenthread (not a worker: no worker slot,
        no database connection, no RPC) until its resource changes: then the route runs again."""
        metrics = self.server.http_metrics
        metrics.held.labels(rule.rule).inc()
        try:
            changed = held.wait()
        finally:
            metrics.held.labels(rule.rule).dec()
        metrics.holds.labels(rule.rule, "changed" if changed else "timeout").inc()
        if not changed:
            return held.not_modified
        request = Request(environ, shallow=True)
        request.path_values = values
        return rule.endpoint.handle_request(request)

    def _unmatched(self, request: Request, exc: HTTPException) -> Response:
        """JSON for the API; a page for a person who typed or followed a wrong address."""
        if self.server.error_page is not None and not request.path.startswith(MACHINE_PATHS):
            return self.server.error_page(exc)
        return error_response(exc)


class PathIdConverter(IntegerConverter):
    """`<int:…>` path values are database ids: a number beyond any id (PostgreSQL's integer) names no
    resource (404), instead of overflowing the database's integer (a 500)."""

    MAX = 2**31 - 1

    def __init__(self, map, *args, **kwargs):
        super().__init__(map, *args, **{"max": self.MAX, **kwargs})


class JsonWebServer(WebServer):
    error_page = None  # set by the pages' handler, when the gateway serves pages

    def setup(self):
        super().setup()
        self.proxies = Proxies(trusted_networks(self.container.config.get("TRUSTED_PROXIES")))
        self.http_metrics = HttpMetrics(metrics_for(self.container).registry)
        logging.getLogger("nameko.web.server").addFilter(ACCESS_LOG_FILTER)  # the access log's logger

    def get_wsgi_app(self):
        return JsonWsgiApp(self)

    def context_data_from_headers(self, request):
        # Never from the request's headers: a client does not choose the trace its request is logged under.
        return {logs.TRACE_KEY: logs.current_trace()}

    def start(self):
        if not self._starting:  # nameko's start, without eventlet's SO_REUSEPORT (see motcua.metrics)
            self._starting = True
            self._sock = eventlet.listen(self.bind_addr, reuse_port=False)
            self._sock.settimeout(None)  # kombu#838, as nameko's does
            self._serv = self.get_wsgi_server(self._sock, self.get_wsgi_app())
            self._gt = self.container.spawn_managed_thread(self.run)

    def make_url_map(self):
        # No redirects for a trailing or doubled slash: an API client gets a plain 404 instead.
        url_map = Map(strict_slashes=False, merge_slashes=False, converters={"int": PathIdConverter})
        for provider in self._providers:
            rule = provider.get_url_rule()
            rule.endpoint = provider
            url_map.add(rule)
        return url_map


class JsonHttpHandler(HttpRequestHandler):
    server = JsonWebServer()

    def check_signature(self, args, kwargs):
        """Nothing to check, and nameko's check (inspect, on every request) costs: a `route`'s
        entrypoint takes whatever path values its URL rule has (`(service, request, **values)`)."""

    def response_from_result(self, result):
        # A held long poll goes back to the web app, which waits outside the worker.
        return result if isinstance(result, Held) else super().response_from_result(result)

    def response_from_exception(self, exc):
        # Only failures before the worker runs get here (e.g. a signature mismatch).
        return error_response(exc)


def to_response(result) -> Response | Held:
    if isinstance(result, Response | Held):
        return result
    if isinstance(result, tuple):
        status, payload = result
        return json_response(payload, status)
    return json_response(result)


@dataclass(frozen=True)
class RouteDoc:
    """What the OpenAPI document (openapi.py) says of a route beyond its method, URL and docstring:
    marshmallow schemas of its JSON body, query and answer (or the answer's media type), the success
    status, whether it takes a bearer token ("bearer": required, "optional", "public"), and the error
    statuses it has beyond those its inputs and token imply (e.g. 429), and whether the body may also
    come as multipart/form-data (a `dossier` part with the JSON fields, one file part per document),
    and whether it answers with an ETag and takes a long poll (`If-None-Match` + `Prefer: wait`), and
    whether it is a command: it changes state, once per `Idempotency-Key` (see `route`)."""

    body: type[Schema] | Schema | None = None
    query: type[Schema] | Schema | None = None
    response: type[Schema] | Schema | str | None = None
    status: int = 200
    auth: str = "bearer"
    errors: tuple[int, ...] = ()
    multipart: bool = False
    watch: bool = False
    command: bool = False


def route(method: str, url: str, **doc):
    """Declare a JSON HTTP entrypoint (see the module docstring); `doc`: its RouteDoc fields.

    A `command` (a state-changing route) runs under an idempotency key, `request.idempotency_key`:
    the client's `Idempotency-Key`, or a new one; every answer, an error's too, names it in the same
    header, so a client that got a 503 or no answer at all can repeat the request under it."""
    route_doc = RouteDoc(**doc)

    def decorate(fn):
        @functools.wraps(fn)
        def entrypoint(service, request, **path_values):
            try:
                if route_doc.command:
                    request.idempotency_key = idempotency.key_or_new(request.headers.get(idempotency.HEADER))
                response = to_response(fn(service, request, **nfc(path_values)))
            except Exception as exc:
                response = error_response(exc)
            if getattr(request, "idempotency_key", None):
                response.headers[idempotency.HEADER] = request.idempotency_key
            return response

        entrypoint.route_doc = route_doc
        return JsonHttpHandler.decorator(method, url)(entrypoint)

    return decorate
