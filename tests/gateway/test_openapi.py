"""The OpenAPI document (/api/v1/openapi.json) and its HTML page (/api/v1/docs), built from the real routes."""
import json
import re

import pytest
from nameko.containers import ServiceContainer
from openapi_spec_validator import validate

import motcua.embedded
from motcua.config import ROOT, nameko_config
from services.gateway.http import JsonHttpHandler
from services.gateway.openapi import docs_page, openapi_document, openapi_path
from services.gateway.service import GatewayService

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def document():
    return openapi_document(GatewayService)


def operations(document):
    return {(method.upper(), path): op for path, item in document["paths"].items() for method, op in item.items()}


def container_routes() -> set[tuple[str, str]]:
    """The JSON API's routes as nameko binds them to a container (not as openapi.py walks the class);
    the HTML pages have their own handler and stay out of the API's document."""
    motcua.embedded.install()
    container = ServiceContainer(GatewayService, nameko_config("embedded://"))
    return {(method, entrypoint.url) for entrypoint in container.entrypoints
            if isinstance(entrypoint, JsonHttpHandler) for method in entrypoint.method.split(",")}


def readme_contract() -> set[tuple[str, str]]:
    """(method, path) of the README's first API table; `/refuse` after `…/{code}/receive` is a sibling."""
    text = (ROOT / "README.md").read_text()
    table = text.split("| method and path | who | what |", 1)[1].split("\n\n", 1)[0]
    found = set()
    for row in table.splitlines()[2:]:
        method = path = None
        first_cell = re.split(r"(?<!\\)\|", row)[1]  # `\|` separates alternatives within it
        for cell in re.findall(r"`([^`]+)`", first_cell):
            words = cell.split()
            if words[0] in METHODS:
                method, path = words[0], re.split(r"[\[?]", words[1])[0]
            elif words[0].startswith("/") and path:
                path = path.rsplit("/", 1)[0] + words[0]
            else:
                continue
            found.add((method, path))
    return found


def test_the_document_is_valid_openapi_3(document):
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "POST /api/v1/auth/token"}


def test_every_route_of_the_gateway_is_in_it(document):
    routes = container_routes()
    assert len(routes) > 30
    assert {(method, openapi_path(url)) for method, url in routes} == set(operations(document))


def test_the_readme_contract_paths_are_in_it(document):
    contract = readme_contract()
    assert ("POST", "/api/v1/dossiers/{code}/refuse") in contract and len(contract) >= 14
    unnamed = {(method, re.sub(r"\{\w+}", "{}", path)) for method, path in operations(document)}
    assert {(method, re.sub(r"\{\w+}", "{}", path)) for method, path in contract} <= unnamed  # `{id}`: any name


def test_path_parameters_are_in_openapi_syntax_typed_by_their_converter(document):
    assert not [path for path in document["paths"] if "<" in path]
    document_id = operations(document)[("GET", "/api/v1/dossiers/{code}/documents/{document_id}")]["parameters"]
    assert [(p["name"], p["in"], p["schema"]["type"]) for p in document_id] == [
        ("code", "path", "string"), ("document_id", "path", "integer")]


def test_bodies_and_queries_are_the_marshmallow_schemas(document):
    ops, schemas = operations(document), document["components"]["schemas"]
    body = ops[("POST", "/api/v1/dossiers")]["requestBody"]["content"]["application/json"]["schema"]
    submit = schemas[body["$ref"].rsplit("/", 1)[1]]
    assert set(submit["required"]) == {"procedure_code", "channel", "applicant"}
    assert submit["properties"]["channel"]["enum"] == ["online", "counter", "postal"]
    due = {p["name"]: p for p in ops[("GET", "/api/v1/calendar/due")]["parameters"]}
    assert due["start"]["required"] and due["start"]["schema"]["format"] == "date-time"
    assert due["days"]["schema"] == {"type": "number", "minimum": 0.0, "maximum": 3650.0}
    assert due["unit"]["schema"]["enum"] == ["working_days", "calendar_days", "working_hours"]
    report = {p["name"] for p in ops[("GET", "/api/v1/reports/timeliness")]["parameters"]}
    assert report == {"from", "to", "agency"}  # data_key names, as the client sends them
    tasks = ops[("GET", "/api/v1/tasks")]["responses"]["200"]["content"]["application/json"]["schema"]
    assert tasks == {"type": "array", "items": {"$ref": "#/components/schemas/TaskViewV1"}}
    dossier = ops[("GET", "/api/v1/dossiers/{code}")]["responses"]["200"]["content"]["application/json"]["schema"]
    assert dossier == {"$ref": "#/components/schemas/DossierViewV1"}
    assert {"applicant", "history", "documents", "status_code"} <= set(schemas["DossierViewV1"]["properties"])


def test_bodies_with_documents_may_also_be_multipart(document):
    ops = operations(document)
    for key in (("POST", "/api/v1/dossiers"), ("POST", "/api/v1/dossiers/{code}/supplement")):
        form = ops[key]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form["properties"]["dossier"]["type"] == "string"
        assert form["additionalProperties"]["format"] == "binary"
    assert "multipart/form-data" not in ops[("POST", "/api/v1/dossiers/{code}/withdraw")]["requestBody"]["content"]


def test_every_operation_documents_its_errors_with_the_error_schema(document):
    error = {"$ref": "#/components/schemas/Error"}
    for (method, path), op in operations(document).items():
        errors = {status: r for status, r in op["responses"].items() if status >= "400"}
        assert "503" in errors, (method, path)
        assert all(r["content"]["application/json"]["schema"] == error for r in errors.values()), (method, path)
    token = operations(document)[("GET", "/api/v1/tasks")]
    assert {"401", "403"} <= set(token["responses"]) and token["security"] == [{"bearer": []}]
    submit = operations(document)[("POST", "/api/v1/dossiers")]
    assert {"400", "413", "415"} <= set(submit["responses"]) and {} in submit["security"]
    assert operations(document)[("GET", "/api/v1/agencies")]["security"] == []
    login = operations(document)[("POST", "/api/v1/auth/token")]["responses"]
    assert login["429"]["description"] == "too_many_requests"  # declared on the route: errors=(429,)


def test_long_polls_document_their_headers_and_304(document):
    ops = operations(document)
    for key in (("GET", "/api/v1/dossiers/{code}"), ("GET", "/api/v1/tasks")):
        op = ops[key]
        assert {"If-None-Match", "Prefer"} <= {p["name"] for p in op["parameters"] if p["in"] == "header"}
        assert set(op["responses"]["200"]["headers"]) == set(op["responses"]["304"]["headers"]) == {
            "ETag", "Preference-Applied"}
    assert "304" not in ops[("GET", "/api/v1/agencies")]["responses"]


def test_operations_are_tagged_by_area_and_summarised(document):
    ops = operations(document)
    assert ops[("GET", "/api/v1/agencies")]["tags"] == ["catalog"]
    assert ops[("GET", "/health")]["tags"] == ["platform"]
    assert ops[("GET", "/api/v1/procedures/{code}/process")]["summary"].startswith("The procedure's process")
    assert {tag["name"] for tag in document["tags"]} == {op["tags"][0] for op in ops.values()}


def test_the_docs_page_lists_every_operation_with_its_fields(document):
    page = docs_page(document)
    for method, path in operations(document):
        assert f"<code>{method} {path}</code>" in page
    assert "<code>procedure_code</code></td><td>body</td>" in page
    assert "<code>start</code></td><td>query</td><td>string (date-time)</td>" in page
    assert "<script" not in page and "http" not in page.replace("/api/v1/openapi.json", "").split("<body>")[1][:300]


def test_the_routes_serve_the_document_and_the_page(document):
    service = GatewayService()
    served = GatewayService.openapi_json(service, None)
    assert served.mimetype == "application/json" and json.loads(served.get_data()) == json.loads(json.dumps(document))
    page = GatewayService.api_docs(service, None)
    assert page.mimetype == "text/html" and "/api/v1/openapi.json" in page.get_data(as_text=True)


def test_commands_document_their_idempotency_key_and_every_answer_names_it(document):
    commands = {(path, method) for path, methods in document["paths"].items() for method, op in methods.items()
                if any(p.get("name") == "Idempotency-Key" for p in op["parameters"])}
    assert {("/api/v1/dossiers", "post"), ("/api/v1/dossiers/{code}/receive", "post"),
            ("/api/v1/dossiers/{code}/return", "post"), ("/api/v1/tasks/{task_id}/complete", "post")} <= commands
    assert ("/api/v1/dossiers/search", "post") not in commands  # a read, though a POST
    receive = document["paths"]["/api/v1/dossiers/{code}/receive"]["post"]
    assert all("Idempotency-Key" in answer["headers"] for answer in receive["responses"].values())
