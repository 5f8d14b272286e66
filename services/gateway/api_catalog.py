"""HTTP API v1: the catalogue: agencies and procedures (danh mục thủ tục), and the working calendar."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from motcua.contracts.rpc import CalendarDecisionV1, CalendarDueV1
from motcua.errors import load_valid
from services.gateway import routes
from services.gateway.http import query, read_json, route
from motcua.contracts.views import ProcessViewV1


class ProcedureSearchQuery(Schema):
    q = fields.Str(validate=validate.Length(max=200), metadata={"description": "words of the name, diacritics optional"})
    limit = fields.Int(validate=validate.Range(min=1, max=2000),
                       metadata={"description": "at most this many, best first (default: every match)"})


class CatalogApi:
    """Routes mixed into GatewayService, which provides the RPC proxies, config and database."""

    @route("GET", "/api/v1/agencies", auth="public")
    def list_agencies(self, request):
        return self.intake.list_agencies()

    @route("GET", "/api/v1/procedures", query=ProcedureSearchQuery, auth="public")
    def list_procedures(self, request):
        asked = load_valid(ProcedureSearchQuery, query(request))
        return self.intake.list_procedures(query=asked.get("q"), limit=asked.get("limit"))

    @route("GET", "/api/v1/procedures/<code>", auth="public")
    def get_procedure(self, request, code):
        return routes.procedure_with_steps(self.intake, self.workflow, code)

    @route("GET", "/api/v1/procedures/<code>/process", response=ProcessViewV1, auth="public")
    def get_procedure_process(self, request, code):
        """The procedure's process (quy trình): its steps, agencies, roles and allowances."""
        return self.workflow.get_process(code)

    @route("GET", "/api/v1/procedures/<code>/versions/<int:version>", auth="public")
    def get_procedure_version(self, request, code, version):
        """The version a dossier was received under, as it was (without today's process)."""
        return self.intake.get_procedure(code, version=version)

    @route("GET", "/api/v1/calendar/due", query=CalendarDueV1, auth="public")
    def calendar_due(self, request):
        params = query(request)
        load_valid(CalendarDueV1, params)  # 400 naming the field before any RPC
        return self.intake.calendar_due(params)

    @route("POST", "/api/v1/calendar/decisions", body=CalendarDecisionV1, status=201, command=True)
    def record_calendar_decision(self, request):
        """The province's admin records an official calendar decision (a day off or a working day, with
        its document): counted at once by intake, appointments it touches moved (docs/rules.md)."""
        caller, token = self.caller_of(request)
        body = read_json(request)
        load_valid(CalendarDecisionV1, body)  # 400 naming the field before any RPC
        with self.audited(request, caller, "calendar.decide", detail=f"{body['date']} {body['kind']}"):
            return 201, self.intake.record_calendar_decision(body, caller_token=token,
                                                             idempotency_key=request.idempotency_key)
