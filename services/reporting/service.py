"""Reporting (báo cáo, tra cứu): projections from every event; the timeliness report; public tracking."""
from __future__ import annotations

from functools import partial

from nameko.dependency_providers import Config
from nameko.timer import timer

from motcua.access import AgencyTree, audit_refusals, scope_of
from motcua.bus import batch_handler
from motcua.db import Database, utcnow
from motcua.errors import ValidationFailed, load_valid
from motcua.identity import STAFF_ROLES, Caller
from motcua.logs import Tracing
from motcua.metrics import Metrics
from motcua.revocation import Revocations
from motcua.rpc import TimedRpcProxy, rpc
from services.reporting import (
    aggregates,
    dvcqg,
    exports,
    leaders,
    projections,
    schemas,
    timeliness,
    tracking,
)
from services.reporting.dependencies import NationalPortal, Province, StatusGauge
from services.reporting.models import Base

# Every event of the contract about a dossier (motcua/contracts/events.py): stored, and applied to its
# dossier's row. Workflow's supplement_needed, payment_required and processing_stopped move no status
# (intake's answer does): they are kept for the national portal's history.
SUBSCRIPTIONS = (
    ("intake", "dossier_submitted"), ("intake", "dossier_received"), ("intake", "dossier_refused"),
    ("intake", "dossier_processing_started"), ("intake", "dossier_result_ready"), ("intake", "result_returned"),
    ("intake", "supplement_requested"), ("intake", "dossier_supplemented"), ("intake", "dossier_withdrawn"),
    ("intake", "dossier_rescheduled"), ("intake", "payment_requested"), ("intake", "payment_received"),
    ("intake", "dossier_stopped"), ("intake", "dossier_rated"), ("intake", "postal_shipment_updated"),
    ("intake", "payment_refunded"), ("intake", "fee_paid"),
    ("workflow", "task_assigned"), ("workflow", "dossier_transferred"), ("workflow", "supplement_needed"),
    ("workflow", "payment_required"), ("workflow", "processing_stopped"), ("workflow", "delay_predicted"),
    ("workflow", "task_completed"), ("workflow", "task_overdue"), ("workflow", "dossier_overdue"),
    ("workflow", "result_ready"), ("workflow", "task_rescheduled"),
)


class ReportingService(Revocations):
    name = "reporting"

    db = Database(Base)
    metrics = Metrics()
    tracing = Tracing()  # each call's trace id, in its log lines and passed on (motcua.logs)
    config = Config()
    province = Province()
    status_gauge = StatusGauge()
    portal = NationalPortal()
    # Within the RPC deadline: a service that is down must not hold the push timer (the batch is retried later).
    intake = TimedRpcProxy("intake")  # the applicant's identity and documents, for the portal only
    gateway = TimedRpcProxy("gateway")  # the officers' full names and titles, for the portal's progress lines

    @rpc
    def health(self):
        return self.db.health()

    @rpc
    @audit_refusals
    def timeliness_report(self, date_from, date_to, caller_token, agency=None, by="agency"):
        """The standard report (II.06a) per agency or per field, with the agency-tree roll-up (staff)."""
        self._staff(caller_token)
        query = load_valid(schemas.report_query, {"from": date_from, "to": date_to, "agency": agency, "by": by})
        return self._report(query)

    @rpc
    @audit_refusals
    def report_drill_down(self, date_from, date_to, cell, caller_token, key=None, by="agency", rollup=False,
                          agency=None):
        """The dossiers behind one figure of the standard report: only those the caller may see as dossiers
        (motcua.access.scope_of: their own agency's, a leader's sub-tree, every one for a platform admin)."""
        caller = self._staff(caller_token)
        query = load_valid(schemas.drill_down_query, {"from": date_from, "to": date_to, "cell": cell, "key": key,
                                                      "by": by, "rollup": rollup, "agency": agency})
        p = self.province
        return timeliness.drill_down(self.db.session, query["date_from"], query["date_to"], p.zone, p.agency_names,
                                     utcnow(), query["cell"], by=query["by"], key=query["key"],
                                     rollup=query["rollup"], agency=query["agency"], parents=p.parents,
                                     scope=scope_of(caller, AgencyTree(p.parents)))

    @rpc
    @audit_refusals
    def report_export(self, date_from, date_to, format, caller_token, agency=None, by="agency"):
        """The standard report as a file: {filename, content_type, content_base64} (staff)."""
        self._staff(caller_token)
        query = load_valid(schemas.export_query, {"from": date_from, "to": date_to, "agency": agency, "by": by,
                                                  "format": format})
        return exports.as_file(self._report(query), query["format"], self._reporting_agency(query["agency"]),
                               utcnow().astimezone(self.province.zone).date())

    @rpc
    @audit_refusals
    def leaders_dashboard(self, caller_token, agency=None):
        """Today / this month / this year, per agency, for leaders (staff)."""
        self._staff(caller_token)
        query = load_valid(schemas.dashboard_query, {"agency": agency})
        p = self.province
        self._known_agency(query["agency"])
        return leaders.dashboard(self.db.session, p.zone, p.agency_names, p.parents, utcnow(), agency=query["agency"])

    @rpc
    @audit_refusals
    def leaders_period(self, date_from, date_to, caller_token, agency=None, by="agency"):
        """The dashboard's figures for any period a leader picks, by agency or field (staff)."""
        self._staff(caller_token)
        query = load_valid(schemas.report_query, {"from": date_from, "to": date_to, "agency": agency, "by": by})
        p = self.province
        self._known_agency(query["agency"])
        return leaders.period(self.db.session, query["date_from"], query["date_to"], p.zone, p.agency_names,
                              p.parents, utcnow(), agency=query["agency"], by=query["by"])

    @rpc
    @audit_refusals
    def daily_series(self, date_from, date_to, caller_token, agency=None):
        self._staff(caller_token)
        query = load_valid(schemas.report_query, {"from": date_from, "to": date_to, "agency": agency})
        p = self.province
        self._known_agency(query["agency"])
        return leaders.series(self.db.session, query["date_from"], query["date_to"], agency=query["agency"],
                              parents=p.parents)

    def _known_agency(self, agency: str | None) -> None:
        if agency is not None and agency not in self.province.agency_names:
            raise ValidationFailed("unknown agency", field="agency")

    def _staff(self, caller_token) -> Caller:
        return self.authorised(caller_token, *STAFF_ROLES)

    @rpc
    def public_statistics(self, date_from, date_to):
        query = load_valid(schemas.report_query, {"from": date_from, "to": date_to})
        p = self.province
        return leaders.public_statistics(self.db.session, query["date_from"], query["date_to"], p.zone,
                                         p.agency_names, p.parents, utcnow())

    def _reporting_agency(self, agency: str | None) -> str:
        """The agency a report is made by: the one asked for, else the agency tree's root(s)."""
        p = self.province
        codes = [agency] if agency else sorted(code for code, parent in p.parents.items() if parent is None)
        return ", ".join(p.agency_names[code] for code in codes)

    def _report(self, query: dict) -> dict:
        """From the pre-aggregated counters (aggregates.py): the same figures as the GROUP BY in timeliness."""
        p = self.province
        return aggregates.report(self.db.session, query["date_from"], query["date_to"], p.zone, p.agency_names,
                                 utcnow(), agency=query["agency"], by=query["by"], parents=p.parents)

    @rpc
    def track(self, code, key):
        query = load_valid(schemas.track_query, {"code": code, "key": key})
        return tracking.track(self.db.session, query["code"], query["key"], self.config["TRACKING_KEY"],
                              self.province.zone)

    @rpc
    @audit_refusals
    def rebuild_projections(self, caller_token):
        """Replay the event store into every projection: a platform admin's operation."""
        self.authorised(caller_token, "admin")
        return projections.rebuild_all(self.db, self.province.zone)

    # The national portal (DVCQG): push what is due, reconcile now and then; both idle when it is off.
    @timer(interval=dvcqg.PUSH_INTERVAL)
    def push_to_national_portal(self):
        if self.portal is not None:
            p = self.province
            token = dvcqg.caller_token()
            # intake's part of the dossiers (dvcqg.IntakeRecords), the gateway's officers (dvcqg.Officers)
            return dvcqg.push_due(self.db, self.portal, partial(self.intake.national_portal_records, caller_token=token),
                                  partial(self.gateway.officers, caller_token=token), p.zone, p.agency_names, utcnow())

    @timer(interval=dvcqg.RECONCILE_INTERVAL)
    def reconcile_with_national_portal(self):
        if self.portal is not None:
            return dvcqg.reconcile(self.db, self.portal, self.province.zone, utcnow())

    @rpc
    @audit_refusals
    def national_portal_status(self, caller_token):
        """The DVCQG re-send queue: rows per state and the failing dossiers with their error (platform admin)."""
        self.authorised(caller_token, "admin")
        return {"enabled": self.portal is not None, **dvcqg.summary(self.db.session)}

    # Reporting listens to every event of the contract (motcua/contracts/events.py), in batches.
    @batch_handler(*SUBSCRIPTIONS)
    def on_events(self, events):
        projections.project(self.db.session, events, self.province.zone)
