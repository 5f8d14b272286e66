"""Reporting (báo cáo, tra cứu): projections from every event; the timeliness report; public tracking."""
from __future__ import annotations

from nameko.dependency_providers import Config
from nameko.timer import timer

from motcua.bus import event_handler
from motcua.db import Database, utcnow
from motcua.errors import ValidationFailed, load_valid
from motcua.metrics import Metrics
from motcua.rpc import rpc
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


class ReportingService:
    name = "reporting"

    db = Database(Base)
    metrics = Metrics()
    config = Config()
    province = Province()
    status_gauge = StatusGauge()
    portal = NationalPortal()

    @rpc
    def health(self):
        return self.db.health()

    @rpc
    def timeliness_report(self, date_from, date_to, agency=None, by="agency"):
        """The standard report (II.06a) per agency or per field, with the agency-tree roll-up."""
        query = load_valid(schemas.report_query, {"from": date_from, "to": date_to, "agency": agency, "by": by})
        return self._report(query)

    @rpc
    def report_drill_down(self, date_from, date_to, cell, key=None, by="agency", rollup=False, agency=None):
        """The dossiers behind one figure of the standard report."""
        query = load_valid(schemas.drill_down_query, {"from": date_from, "to": date_to, "cell": cell, "key": key,
                                                      "by": by, "rollup": rollup, "agency": agency})
        p = self.province
        return timeliness.drill_down(self.db.session, query["date_from"], query["date_to"], p.zone, p.agency_names,
                                     utcnow(), query["cell"], by=query["by"], key=query["key"],
                                     rollup=query["rollup"], agency=query["agency"], parents=p.parents)

    @rpc
    def report_export(self, date_from, date_to, format, agency=None, by="agency"):
        """The standard report as a file: {filename, content_type, content_base64}."""
        query = load_valid(schemas.export_query, {"from": date_from, "to": date_to, "agency": agency, "by": by,
                                                  "format": format})
        return exports.as_file(self._report(query), query["format"])

    @rpc
    def leaders_dashboard(self, agency=None):
        """Today / this month / this year, per agency, for leaders."""
        query = load_valid(schemas.dashboard_query, {"agency": agency})
        p = self.province
        if query["agency"] is not None and query["agency"] not in p.agency_names:
            raise ValidationFailed("unknown agency", field="agency")
        return leaders.dashboard(self.db.session, p.zone, p.agency_names, p.parents, utcnow(), agency=query["agency"])

    @rpc
    def daily_series(self, date_from, date_to, agency=None):
        query = load_valid(schemas.report_query, {"from": date_from, "to": date_to, "agency": agency})
        p = self.province
        if query["agency"] is not None and query["agency"] not in p.agency_names:
            raise ValidationFailed("unknown agency", field="agency")
        return leaders.series(self.db.session, query["date_from"], query["date_to"], agency=query["agency"],
                              parents=p.parents)

    @rpc
    def public_statistics(self, date_from, date_to):
        query = load_valid(schemas.report_query, {"from": date_from, "to": date_to})
        p = self.province
        return leaders.public_statistics(self.db.session, query["date_from"], query["date_to"], p.zone,
                                         p.agency_names, p.parents, utcnow())

    def _report(self, query: dict) -> dict:
        """From the pre-aggregated counters (aggregates.py): the same figures as the GROUP BY in timeliness."""
        p = self.province
        return aggregates.report(self.db.session, query["date_from"], query["date_to"], p.zone, p.agency_names,
                                 utcnow(), agency=query["agency"], by=query["by"], parents=p.parents)

    @rpc
    def track(self, code, key):
        query = load_valid(schemas.track_query, {"code": code, "key": key})
        return tracking.track(self.db.session, query["code"], query["key"], self.config["SECRET"],
                              self.province.zone)

    @rpc
    def rebuild_projections(self):
        return projections.rebuild_all(self.db, self.province.zone)

    # The national portal (DVCQG): push what is due, reconcile now and then; both idle when it is off.
    @timer(interval=dvcqg.PUSH_INTERVAL)
    def push_to_national_portal(self):
        if self.portal is not None:
            return dvcqg.push_due(self.db, self.portal, self.province.zone, utcnow())

    @timer(interval=dvcqg.RECONCILE_INTERVAL)
    def reconcile_with_national_portal(self):
        if self.portal is not None:
            return dvcqg.reconcile(self.db, self.portal, utcnow())

    @rpc
    def national_portal_status(self):
        """The DVCQG re-send queue: rows per state and the failing dossiers with their error."""
        return {"enabled": self.portal is not None, **dvcqg.summary(self.db.session)}

    # Reporting listens to every event of the contract (motcua/contracts/events.py).
    @event_handler("intake", "dossier_submitted")
    def on_dossier_submitted(self, event):
        self._record(event)

    @event_handler("intake", "dossier_received")
    def on_dossier_received(self, event):
        self._record(event)

    @event_handler("intake", "dossier_refused")
    def on_dossier_refused(self, event):
        self._record(event)

    @event_handler("intake", "dossier_processing_started")
    def on_dossier_processing_started(self, event):
        self._record(event)

    @event_handler("intake", "dossier_result_ready")
    def on_dossier_result_ready(self, event):
        self._record(event)

    @event_handler("intake", "result_returned")
    def on_result_returned(self, event):
        self._record(event)

    @event_handler("intake", "supplement_requested")
    def on_supplement_requested(self, event):
        self._record(event)

    @event_handler("intake", "dossier_supplemented")
    def on_dossier_supplemented(self, event):
        self._record(event)

    @event_handler("intake", "dossier_withdrawn")
    def on_dossier_withdrawn(self, event):
        self._record(event)

    @event_handler("intake", "dossier_rescheduled")
    def on_dossier_rescheduled(self, event):
        self._record(event)

    @event_handler("intake", "payment_requested")
    def on_payment_requested(self, event):
        self._record(event)

    @event_handler("intake", "payment_received")
    def on_payment_received(self, event):
        self._record(event)

    @event_handler("intake", "dossier_stopped")
    def on_dossier_stopped(self, event):
        self._record(event)

    @event_handler("workflow", "task_assigned")
    def on_task_assigned(self, event):
        self._record(event)

    @event_handler("workflow", "dossier_transferred")
    def on_dossier_transferred(self, event):
        self._record(event)

    # Kept in the event store (the national portal's history); the status moves with intake's answer.
    @event_handler("workflow", "supplement_needed")
    def on_supplement_needed(self, event):
        self._record(event)

    @event_handler("workflow", "payment_required")
    def on_payment_required(self, event):
        self._record(event)

    @event_handler("workflow", "processing_stopped")
    def on_processing_stopped(self, event):
        self._record(event)

    @event_handler("workflow", "delay_predicted")
    def on_delay_predicted(self, event):
        self._record(event)

    @event_handler("intake", "dossier_rated")
    def on_dossier_rated(self, event):
        self._record(event)

    @event_handler("workflow", "task_completed")
    def on_task_completed(self, event):
        self._record(event)

    @event_handler("workflow", "task_overdue")
    def on_task_overdue(self, event):
        self._record(event)

    @event_handler("workflow", "dossier_overdue")
    def on_dossier_overdue(self, event):
        self._record(event)

    @event_handler("workflow", "result_ready")
    def on_result_ready(self, event):
        self._record(event)

    def _record(self, event):
        projections.record(self.db, event, self.province.zone)
