"""The OpenAPI 3 document of the HTTP API, built from the routes the gateway really has.

Every `@route` entrypoint of the service class is walked (method, URL, docstring, RouteDoc), so a new
route is documented without a list to keep by hand; its JSON body, query parameters and, where a
service has one, its answer are the marshmallow schemas the API validates with (apispec); its error
answers are the error table's. `docs_page` renders the document as a plain HTML page (no script).
"""
from __future__ import annotations

import functools
import html
import inspect
import re
import sys

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields, validate
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

from motcua import idempotency
from services.gateway.errors import ERRORS, INTERNAL
from services.gateway.http import JsonHttpHandler, PathIdConverter, RouteDoc

TITLE = "Motcua API — Một cửa điện tử"
API_VERSION = "1"
# werkzeug's `<name>`, `<int:name>`, `<any(a, b):name>`: the converter decides the parameter's type.
PATH_PARAMETER = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
CONVERTER_TYPES = {"int": {"type": "integer", "minimum": 0, "maximum": PathIdConverter.MAX},
                   "float": {"type": "number", "minimum": 0}}
BEARER = "bearer"
SECURITY = {"bearer": [{BEARER: []}], "optional": [{BEARER: []}, {}], "public": []}
AREA_OF_SERVICE_MODULE = "platform"  # routes declared in service.py itself
ERROR_CODES = sorted({code for _status, code in ERRORS.values()} | {INTERNAL[1]})
SUCCESS_DESCRIPTIONS = {200: "OK", 201: "Created", 204: "No content"}


class MissingDocumentSchema(Schema):
    key = fields.Str(required=True)
    name = fields.Str(required=True)


class ErrorDetailSchema(Schema):
    code = fields.Str(required=True, validate=validate.OneOf(ERROR_CODES))
    message = fields.Str(required=True)
    field = fields.Str(required=True, allow_none=True, metadata={"description": "the bad field, dotted"})
    allowed = fields.List(fields.Str(), metadata={"description": "409 illegal_transition: the allowed actions"})
    missing = fields.List(fields.Nested(MissingDocumentSchema), metadata={
        "description": "400 on field `documents`: the procedure's mandatory documents an online submission "
                       "lacks, each by key and catalogue name"})


class ErrorSchema(Schema):
    """Every error answer: `{"error": {"code", "message", "field"}}` (services/gateway/errors.py)."""

    error = fields.Nested(ErrorDetailSchema, required=True)


def http_routes(service_cls):
    """(method, werkzeug URL, function) of every `@route` entrypoint of the service class."""
    for _name, fn in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(fn, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, JsonHttpHandler):
                for method in entrypoint.method.split(","):
                    yield method.strip().upper(), entrypoint.url, fn


def openapi_path(url: str) -> str:
    """`/dossiers/<code>/documents/<int:document_id>` → `/dossiers/{code}/documents/{document_id}`."""
    return PATH_PARAMETER.sub(lambda m: "{" + m["name"] + "}", url)


@functools.cache
def openapi_document(service_cls) -> dict:
    """The OpenAPI 3 document of every HTTP route of `service_cls` (built once per process)."""
    plugin = MarshmallowPlugin()
    spec = APISpec(title=TITLE, version=API_VERSION, openapi_version="3.0.3", plugins=[plugin],
                   info={"description": "Hệ thống một cửa điện tử — the provincial one-stop-shop platform. "
                                        "Errors are always `{\"error\": {\"code\", \"message\", \"field\"}}`."})
    plugin.converter.add_attribute_function(_numeric_bounds)
    spec.components.security_scheme(BEARER, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                             "description": "POST /api/v1/auth/token"})
    spec.components.schema("Error", schema=ErrorSchema)
    areas = {}
    for method, url, fn in sorted(http_routes(service_cls), key=lambda r: (r[1], r[0])):
        area = _area(fn)
        areas.setdefault(area, _first_paragraph(inspect.getdoc(sys.modules[fn.__module__])))
        spec.path(path=openapi_path(url), operations={method.lower(): _operation(method, url, fn, area)})
    for area, description in sorted(areas.items()):
        spec.tag({"name": area, "description": description})
    return spec.to_dict()


def _numeric_bounds(self, field, ret, **_) -> dict:
    """A Decimal read from a string (`as_string`) gets its bounds as strings from apispec: numbers."""
    if isinstance(field, fields.Decimal):
        return {key: float(ret[key]) for key in ("minimum", "maximum") if key in ret}
    return {}


def _area(fn) -> str:
    """The tag: the api module's area (`api_dossiers.py` → dossiers), `platform` for service.py."""
    module = fn.__module__.rsplit(".", 1)[-1]
    return module.removeprefix("api_") if module != "service" else AREA_OF_SERVICE_MODULE


def _operation(method: str, url: str, fn, area: str) -> dict:
    doc: RouteDoc = getattr(fn, "route_doc", RouteDoc())
    text = inspect.getdoc(fn) or ""
    summary = _first_paragraph(text) or fn.__name__.replace("_", " ").capitalize()
    path_parameters = [{"in": "path", "name": m["name"], "required": True,
                        "schema": CONVERTER_TYPES.get(m["converter"], {"type": "string"})}
                       for m in PATH_PARAMETER.finditer(url)]
    operation = {"operationId": fn.__name__, "summary": summary, "tags": [area],
                 "parameters": path_parameters + ([{"in": "query", "schema": doc.query}] if doc.query else []),
                 "security": SECURITY[doc.auth],
                 "responses": {str(doc.status): _success(doc), **_errors(method, doc, bool(path_parameters))}}
    if doc.watch:
        _long_poll(operation)
    if doc.command:
        _command(operation)
    if "\n\n" in text:  # the paragraphs after the summary
        operation["description"] = text.split("\n\n", 1)[1].strip()
    if doc.body is not None:
        content = {"application/json": {"schema": doc.body}}
        if doc.multipart:
            content["multipart/form-data"] = {"schema": MULTIPART_DOSSIER}
        operation["requestBody"] = {"required": True, "content": content}
    return operation


# The multipart form of a body with documents (api_dossiers.read_body): the JSON fields in one part,
# each document a file part named by its key in the procedure.
MULTIPART_DOSSIER = {
    "type": "object",
    "properties": {"dossier": {"type": "string", "description": "the JSON body's fields, as JSON text "
                                                              "(documents may be left out: they are the file parts)"}},
    "additionalProperties": {"type": "string", "format": "binary",
                             "description": "a document's file, the part named by the document's key"},
}


# A route that answers an ETag and takes a long poll (watch.py).
ETAG = r'^(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*$'
LONG_POLL_PARAMETERS = [
    {"in": "header", "name": "If-None-Match", "required": False,
     "schema": {"type": "string", "pattern": ETAG, "maxLength": 200},
     "description": "the ETag of the answer the client has: 304 while it is still the current one"},
    {"in": "header", "name": "Prefer", "required": False, "schema": {"type": "string", "pattern": r"^wait=[0-9]{1,2}$"},
     "description": "`wait=<seconds>` (RFC 7240, at most 30): with If-None-Match, hold the request until the "
                    "answer changes (then 200), or until the wait ends (then 304)"},
]
LONG_POLL_HEADERS = {
    "ETag": {"description": "the answer's entity tag, to send back in If-None-Match", "schema": {"type": "string"}},
    "Preference-Applied": {"description": "`wait` when the request's `Prefer: wait` was honoured",
                           "schema": {"type": "string", "enum": ["wait"]}},
}


def _long_poll(operation: dict) -> None:
    operation["parameters"] += LONG_POLL_PARAMETERS
    operation["responses"]["200"]["headers"] = LONG_POLL_HEADERS
    operation["responses"]["304"] = {"description": "Not modified: the client's ETag is current (a long poll's "
                                                    "wait ended without a change)", "headers": LONG_POLL_HEADERS}


# A state-changing route (http.route's `command`): carried out once per Idempotency-Key.
IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header", "name": idempotency.HEADER, "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH, "pattern": r"^[ -~]+$"},
    "description": "makes the command safe to repeat (a lost answer, a 503, a timeout): a repeat with the same "
                   "key and body gets the first answer (same status and body) and changes nothing again; the "
                   "same key with another body is refused (409, field `Idempotency-Key`). Keys are the "
                   "caller's own (per account, or per applicant without one) and kept 24 hours "
                   "(`MOTCUA_IDEMPOTENCY_KEY_HOURS`). Without one, the gateway makes one and returns it.",
}
IDEMPOTENCY_KEY_HEADER = {idempotency.HEADER: {
    "description": "the key this command ran under (the client's, or the one the gateway made): send it again "
                   "to repeat the request safely", "schema": {"type": "string"}}}


def _command(operation: dict) -> None:
    operation["parameters"].append(IDEMPOTENCY_KEY_PARAMETER)
    for response in operation["responses"].values():
        response["headers"] = {**response.get("headers", {}), **IDEMPOTENCY_KEY_HEADER}


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").split("\n\n", 1)[0].split())


def _success(doc: RouteDoc) -> dict:
    description = SUCCESS_DESCRIPTIONS.get(doc.status, "OK")
    if isinstance(doc.response, str):  # a media type: a page, a PDF, a file
        schema = {"type": "string"} if doc.response.startswith("text/") else {"type": "string", "format": "binary"}
        return {"description": description, "content": {doc.response: {"schema": schema}}}
    return {"description": description, "content": {"application/json": {"schema": doc.response or {}}}}


def _errors(method: str, doc: RouteDoc, has_path_parameters: bool) -> dict:
    """The error table's answers this route can give."""
    statuses = {503, *doc.errors}
    if doc.body is not None or doc.query is not None or has_path_parameters or doc.command:
        statuses.add(400)
    if doc.body is not None:
        statuses |= {413, 415}
    if doc.auth != "public":
        statuses |= {401, 403}
    if has_path_parameters:
        statuses.add(404)
    if method not in ("GET", "HEAD"):
        statuses.add(409)
    return {str(status): {"description": ", ".join(_codes(status)),
                          "content": {"application/json": {"schema": ErrorSchema}}}
            for status in sorted(statuses)}


def _codes(status: int) -> list[str]:
    return sorted({code for code_status, code in ERRORS.values() if code_status == status})


def docs_page(document: dict) -> str:
    """The document as a readable HTML page, server-side and offline: per area, each operation with
    its parameters, body fields and answers (tài liệu API)."""
    schemas = document["components"]["schemas"]
    parts = [f"<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>{_e(TITLE)}</title>"
             "<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}"
             "code{background:#f3f3f3}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:.2em .5em;text-align:left}.op{margin:1.5em 0;border-top:1px solid #ddd}</style></head>"
             f"<body><h1>{_e(TITLE)}</h1><p>{_e(document['info'].get('description', ''))}</p>"
             "<p>Tài liệu máy đọc được (machine-readable): <a href=\"/api/v1/openapi.json\">"
             "/api/v1/openapi.json</a> (OpenAPI 3).</p>"]
    operations = [(op["tags"][0], path, method, op) for path, item in document["paths"].items()
                  for method, op in item.items()]
    for tag in document.get("tags", []):
        parts.append(f"<h2 id=\"{_e(tag['name'])}\">{_e(tag['name'])}</h2><p>{_e(tag.get('description', ''))}</p>")
        parts += [_operation_html(path, method, op, schemas)
                  for area, path, method, op in operations if area == tag["name"]]
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation_html(path: str, method: str, op: dict, schemas: dict) -> str:
    auth = {0: "công khai (public)", 1: "cần token (bearer token)"}.get(len(op["security"]),
                                                                         "token tùy chọn (optional token)")
    rows = [(p["name"], p["in"], _type(p.get("schema", {})), p.get("required", False))
            for p in op.get("parameters", [])]
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body is not None:
        target = _resolve(body, schemas)
        required = set(target.get("required", []))
        rows += [(name, "body", _type(prop), name in required)
                 for name, prop in target.get("properties", {}).items()]
    html_rows = "".join(f"<tr><td><code>{_e(n)}</code></td><td>{_e(where)}</td><td>{_e(t)}</td>"
                        f"<td>{'có (yes)' if req else ''}</td></tr>" for n, where, t, req in rows)
    table = ("<table><tr><th>tham số (parameter)</th><th>ở đâu (in)</th><th>kiểu (type)</th>"
             f"<th>bắt buộc (required)</th></tr>{html_rows}</table>") if rows else ""
    answers = "".join(f"<li><code>{_e(status)}</code> {_e(response.get('description', ''))}"
                      f"{_media(response)}</li>" for status, response in op["responses"].items())
    return (f"<div class=\"op\"><h3><code>{_e(method.upper())} {_e(path)}</code></h3>"
            f"<p>{_e(op['summary'])}</p>{_paragraph(op.get('description'))}<p>Xác thực (auth): {auth}</p>"
            f"{table}<p>Trả lời (responses):</p><ul>{answers}</ul></div>")


def _paragraph(text: str | None) -> str:
    return f"<p>{_e(text)}</p>" if text else ""


def _media(response: dict) -> str:
    media = [f"{m} ({_type(c.get('schema', {}))})" for m, c in response.get("content", {}).items()]
    return f" — {_e(', '.join(media))}" if media else ""


def _resolve(schema: dict, schemas: dict) -> dict:
    ref = schema.get("$ref")
    return schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else schema


def _type(schema: dict) -> str:
    """A short reading of a JSON schema: `string (date-time)`, `array of Task`, `one of: a, b`."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "enum" in schema:
        return "one of: " + ", ".join(map(str, schema["enum"]))
    if schema.get("type") == "array":
        return "array of " + _type(schema.get("items", {}))
    kind = schema.get("type", "any")
    return f"{kind} ({schema['format']})" if "format" in schema else kind


def _e(text) -> str:
    return html.escape(str(text))
