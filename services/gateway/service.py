"""The gateway: the only HTTP server. Each request becomes RPC calls to the services that own the data;
staff actions are written to the audit log once the owning service accepted them."""
from __future__ import annotations

from nameko.dependency_providers import Config
from nameko.rpc import rpc
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from werkzeug.wrappers import Response

from motcua.db import Database
from motcua.errors import load_valid
from motcua.metrics import Metrics
from services.gateway import accounts, audit, routes
from services.gateway.api_catalog import CatalogApi
from services.gateway.api_dossiers import DossierApi
from services.gateway.api_notify import NotifyApi
from services.gateway.api_reports import ReportApi
from services.gateway.api_tasks import TaskApi
from services.gateway.http import read_json, route
from services.gateway.models import Base
from services.gateway.rpc import TimedRpcProxy
from services.gateway.schemas import TokenRequestSchema

DEFAULT_TOKEN_TTL_SECONDS = 3600


class GatewayService(CatalogApi, DossierApi, TaskApi, ReportApi, NotifyApi):
    """The only HTTP server; each area's routes live in its api_*.py mixin."""

    name = "gateway"
    db = Database(Base, relay=False)  # the gateway emits no events: nothing to relay
    metrics = Metrics()
    config = Config()
    intake = TimedRpcProxy("intake")
    workflow = TimedRpcProxy("workflow")
    notify = TimedRpcProxy("notify")
    reporting = TimedRpcProxy("reporting")

    @rpc
    def health(self):
        return self.db.health()

    @route("GET", "/")
    def landing(self, request):
        return Response(routes.LANDING_PAGE, mimetype="text/html")

    @route("GET", "/health")
    def platform_health(self, request):
        proxies = {"intake": self.intake, "workflow": self.workflow, "notify": self.notify,
                   "reporting": self.reporting}
        return routes.platform_health(self.db.session, proxies)

    @route("GET", "/metrics")
    def prometheus(self, request):
        return Response(generate_latest(self.metrics.registry), content_type=CONTENT_TYPE_LATEST)

    @route("POST", "/api/v1/auth/token")
    def issue_token(self, request):
        body = load_valid(TokenRequestSchema(), read_json(request))
        caller = accounts.authenticate(self.db.session, body["username"], body["password"])
        audit.record(self.db, caller, "auth.token", request.remote_addr)
        ttl = int(self.config.get("TOKEN_TTL_SECONDS", DEFAULT_TOKEN_TTL_SECONDS))
        return accounts.token_response(caller, self.config["SECRET"], ttl)
