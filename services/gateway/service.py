"""The gateway: the only HTTP server. Each request becomes RPC calls to the services that own the data;
staff actions are written to the audit log once the owning service accepted them."""
from __future__ import annotations

import contextlib

from nameko.dependency_providers import Config
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from werkzeug.wrappers import Response

from motcua.bus import event_handler
from motcua.contracts.events import EVENT_SCHEMAS, SESSION_EVENTS, DossierEvent, RunEvent, TaskFacts
from motcua.db import Database, utcnow
from motcua.errors import Forbidden, NotFound, Unauthorized, WrongKey
from motcua.idempotency import CommandUnitOfWork, ForgetExpiredKeys
from motcua.identity import PORTAL_SYNC_ROLE, STAFF_ROLES, verify_caller
from motcua.logs import Tracing
from motcua.metrics import Metrics, scrape_allowed
from motcua.rpc import rpc
from services.gateway import audit, routes, throttle, users
from services.gateway.api_admin import AdminApi
from services.gateway.api_auth import AuthApi
from services.gateway.api_catalog import CatalogApi
from services.gateway.api_docs import DocsApi
from services.gateway.api_dossiers import DossierApi
from services.gateway.api_notify import NotifyApi
from services.gateway.api_reports import ReportApi
from services.gateway.api_payments import PaymentApi
from services.gateway.api_signatures import SignatureApi
from services.gateway.api_vneid import OidcApi, OidcProviders
from services.gateway.api_tasks import TaskApi
from services.gateway.dependencies import AccessGuard, AuditLog, Changes, Reads, TrackingAnswers, broadcast_handler
from services.gateway.errors import TooManyRequests
from services.gateway.http import bearer_token, route
from services.gateway.models import Base
from services.gateway.pages import Pages
from services.gateway.rpc import TimedRpcProxy


# What the gateway watches: every intake event about a dossier (its view changed: long polls, and
# public tracking's cache), every workflow event about a dossier's run (tracking's cache), of which
# those about a task change the inboxes of the agencies they name (long polls).
DOSSIER_EVENTS = tuple(sorted(t for t, (_v, schema) in EVENT_SCHEMAS.items() if isinstance(schema, DossierEvent)))
RUN_EVENTS = tuple(sorted(t for t, (_v, schema) in EVENT_SCHEMAS.items() if isinstance(schema, RunEvent)))
TASK_EVENTS = frozenset(t for t, (_v, schema) in EVENT_SCHEMAS.items() if isinstance(schema, TaskFacts))


class GatewayService(AuthApi, AdminApi, CatalogApi, DossierApi, TaskApi, ReportApi, NotifyApi, SignatureApi, OidcApi,
                     PaymentApi, DocsApi, Pages):
    """The only HTTP server; each area's routes live in its api_*.py mixin."""

    name = "gateway"
    # Its outbox: sessions' events (token_revoked, account_changed) for the other gateway instances;
    # its inbox: the access_denied events it audits.
    db = Database(Base, unit_of_work=CommandUnitOfWork)  # its own commands (accounts) once per key
    expired_keys = ForgetExpiredKeys()
    reads = Reads()
    access = AccessGuard()
    audit_writer = AuditLog()
    changes = Changes()
    tracking = TrackingAnswers()
    metrics = Metrics()
    oidc = OidcProviders()
    tracing = Tracing()  # each call's trace id, in its log lines and passed on (motcua.logs)
    config = Config()
    intake = TimedRpcProxy("intake")
    workflow = TimedRpcProxy("workflow")
    notify = TimedRpcProxy("notify")
    reporting = TimedRpcProxy("reporting")

    def caller_from_token(self, token):
        """Every caller of the HTTP edge is verified here: the API's bearer token and the console's
        session cookie alike. Signature, algorithm and lifetime, then revocation (logout) and the
        account's state; 401 otherwise."""
        caller = verify_caller(self.config, token)
        self.access.check(caller)
        return caller

    def caller_of(self, request):
        """The verified caller of an API request and their raw token (passed on as `caller_token`)."""
        token = bearer_token(request)
        return self.caller_from_token(token), token

    def optional_caller_of(self, request):
        """(caller, token) when the request carries a token (which must then be valid), else (None, None)."""
        return self.caller_of(request) if bearer_token(request) else (None, None)

    def audited(self, request, caller, action, **on):
        """`with self.audited(request, caller, "dossier.read", dossier_code=code): ...` records the
        outcome (allowed, or denied on 403/404) with who, when and from where."""
        if caller is None:  # an applicant acting without an account: nothing of staff to audit
            return contextlib.nullcontext()
        return audit.audited(self.audit_writer, caller, action, request.remote_addr, self.db.rollback, **on)

    def record_audit(self, caller, action, remote_addr, **on):
        """Record an action whose outcome is decided, once the request's own transaction is over
        (its writes committed; what it still holds, reads, is let go): returns once the row is
        stored, else raises AuditUnavailable (503)."""
        self.db.rollback()
        audit.record(self.audit_writer, caller, action, remote_addr, **on)

    @contextlib.contextmanager
    def proving(self, request, caller, code, owner: bool = False):
        """`with self.proving(request, caller, code): ...` around a call in which an applicant without
        an account proves a dossier theirs (its tracking key, or the ID number): a wrong proof
        counts against the dossier, the address at it and the address, and too many answer 429 (chống
        dò; throttle.proof_keys). A right one forgets nothing: the key is a step towards the ID number,
        and a key holder tracking between wrong ID numbers must not reset their count; misses leave
        with the window only. `owner`: the tracking key is checked for the owner's own browser, which
        proved it before (no limit: it guesses nothing)."""
        if caller is not None:  # staff: their scope is checked by the owning service
            yield
            return
        secret, now = self.config["THROTTLE_KEY"], utcnow()
        policy = throttle.ThrottlePolicy.for_dossier_proofs(self.config)
        limits = throttle.proof_keys(policy, secret, code, request.remote_addr, owner)
        # One statement; nothing written for a right proof.
        wait = None if owner else self.reads.run(
            lambda connection: throttle.retry_after(connection, policy, limits, now))
        if wait is not None:
            raise TooManyRequests("too many wrong tries for this dossier: try again later", retry_after=wait)
        try:
            yield
        except (Forbidden, WrongKey):  # a wrong ID number, a wrong tracking key
            throttle.record_failure(self.db.session, limits, now)
            raise

    def count_anonymous_submission(self, request, caller) -> None:
        """Nộp hồ sơ without an account (the API and the portal's form): `SUBMISSIONS_PER_ADDRESS` a window."""
        self.count_anonymous(request, caller, throttle.ThrottlePolicy.for_anonymous_submissions(self.config),
                             "submissions")

    def count_anonymous(self, request, caller, policy: throttle.ThrottlePolicy, what: str) -> None:
        """A client without an account does `what` (e.g. "submissions": SUBMISSIONS_PER_ADDRESS dossiers)
        at most `policy`'s limit from one address within its window; past it, 429 with Retry-After before
        anything reaches a service. Each try let through counts (a valid one or not: the service's answer
        is not awaited). A caller signed in (a receptionist at the counter, an applicant) is not counted."""
        if caller is not None:
            return
        limits = throttle.address_keys(policy, self.config["THROTTLE_KEY"], request.remote_addr)
        if not limits:
            return
        # Counted and checked at once (throttle.claim), so concurrent tries cannot overshoot.
        claimed = throttle.claim(self.db.session, policy, limits, utcnow())
        if claimed.retry_after is not None:
            raise TooManyRequests(f"too many {what} from this address: try again later",
                                  retry_after=claimed.retry_after)

    @event_handler("intake", "access_denied")
    def on_intake_access_denied(self, event):
        self.db.apply_once(event, "gateway.on_intake_access_denied", audit.record_denied_by_service)

    @event_handler("workflow", "access_denied")
    def on_workflow_access_denied(self, event):
        self.db.apply_once(event, "gateway.on_workflow_access_denied", audit.record_denied_by_service)

    @event_handler("reporting", "access_denied")
    def on_reporting_access_denied(self, event):
        self.db.apply_once(event, "gateway.on_reporting_access_denied", audit.record_denied_by_service)

    @broadcast_handler("gateway", *sorted(SESSION_EVENTS), uses=("access",))
    def on_session_event(self, body):
        """A logout or an account change on any gateway instance: this one's cache learns it at once."""
        self.access.apply(body)

    @broadcast_handler("intake", *DOSSIER_EVENTS, uses=("changes", "tracking"))
    def on_dossier_event(self, body):
        self.changes.dossier_changed(body)
        self.tracking.heard(body.get("data") or {})

    @broadcast_handler("workflow", *RUN_EVENTS, uses=("changes", "tracking"))
    def on_run_event(self, body):
        self.tracking.heard(body.get("data") or {})
        if body.get("event_type") in TASK_EVENTS:
            self.changes.tasks_changed(body)

    @rpc
    def health(self):
        return self.db.health()

    @rpc
    def officers(self, usernames, caller_token):
        """{username: {full_name, title}} of staff accounts, for the forms intake prints on a staff
        caller's behalf and the progress lines reporting pushes to the national portal with its own token
        (verified and checked for revocation like the HTTP edge's)."""
        self.caller_from_token(caller_token).require(*STAFF_ROLES, PORTAL_SYNC_ROLE)
        return users.officers(self.db.session, usernames)

    @route("GET", "/health", auth="public")
    def platform_health(self, request):
        proxies = {"intake": self.intake, "workflow": self.workflow, "notify": self.notify,
                   "reporting": self.reporting}
        return routes.platform_health(self.db.session, proxies, {
            "long_polls_held": self.changes.feed.held(), "audit_rows_pending": self.audit_writer.pending()})

    @route("GET", "/health/self", auth="public")
    def own_health(self, request):
        """This gateway instance alone: it answers, and its own database does. What an orchestrator's
        probes ask (deploy/k8s): `/health` is the whole platform's, and one service down must not take
        every gateway out of rotation nor restart them."""
        return routes.own_health(self.db.session)

    @route("GET", "/metrics", response="text/plain", auth="public")
    def prometheus(self, request):
        if not self.config.get("PUBLIC_METRICS", True):  # production: the metrics port only (METRICS_PORTS)
            raise NotFound("metrics are served on the gateway's metrics port")
        if not scrape_allowed(self.config, request.headers.get("Authorization")):
            raise Unauthorized("metrics need the scrape token")
        return Response(generate_latest(self.metrics.registry), content_type=CONTENT_TYPE_LATEST)
