"""notify: tells citizens (email, SMS) and agencies' systems (signed webhooks) about their dossiers.

Event handlers only plan the messages owed (committed with the consumer's batch, then acked); notify's
scheduler (dependencies.Notifications) sends them, retries, and dead-letters. See domain.py.
"""
from __future__ import annotations

from motcua.bus import batch_handler
from nameko.dependency_providers import Config

from motcua.db import Database, utcnow
from motcua.errors import load_valid
from motcua.idempotency import Command, ForgetExpiredKeys, account_scope, run_once, ttl_of
from motcua.identity import STAFF_ROLES
from motcua.logs import Tracing
from motcua.metrics import Metrics
from motcua.revocation import Revocations
from motcua.rpc import rpc
from services.notify import preferences, templates
from services.notify.dependencies import Notifications
from services.notify.domain import PLANNER
from services.notify.models import Base
from services.notify.repository import NotifyUnitOfWork
from services.notify.schemas import (
    DeadLettersIn,
    DeliveryOut,
    ListDeliveriesIn,
    PreferencesIn,
    PreviewIn,
    ReceiptIn,
    ResendIn,
    preferences_out,
)

_delivery_out = DeliveryOut()
_deliveries_out = DeliveryOut(many=True)


class NotifyService(Revocations):
    name = "notify"

    db = Database(Base, relay=False, unit_of_work=NotifyUnitOfWork)  # notify emits no events: no relay
    expired_keys = ForgetExpiredKeys()
    metrics = Metrics()
    tracing = Tracing()  # each call's trace id, in its log lines and passed on (motcua.logs)
    notifier = Notifications()
    config = Config()

    # The events that message someone: the applicant, or (overdue) the agency's office. A batch's
    # events are planned together: the applicants' choices read in one statement, the messages
    # written in one.
    @batch_handler(("intake", "dossier_submitted"), ("intake", "dossier_received"),
                   ("intake", "supplement_requested"), ("intake", "dossier_supplemented"),
                   ("intake", "dossier_refused"), ("intake", "dossier_result_ready"), ("intake", "result_returned"),
                   ("intake", "dossier_withdrawn"), ("intake", "dossier_rescheduled"),
                   ("intake", "payment_requested"), ("intake", "dossier_stopped"),
                   ("workflow", "task_overdue"), ("workflow", "dossier_overdue"), consumer=PLANNER)
    def on_events(self, events):
        self.notifier.plan_new(self.db, events)

    @rpc
    def health(self):
        return self.db.health()

    # Staff and operators' calls verify their caller here too, not only at the gateway: a process on
    # the bus past the gateway holds no valid token. (Notify emits no events, so its refusals are not
    # audited by an access_denied event as intake's are; the gateway audits what it lets through.)
    @rpc
    def list_deliveries(self, dossier_code, caller_token):
        """The dossier's delivery log (staff; the gateway first asks intake whether they may see the dossier)."""
        self.authorised(caller_token, *STAFF_ROLES)
        args = load_valid(ListDeliveriesIn, {"dossier_code": dossier_code})
        return _deliveries_out.dump(self.db.deliveries.of_dossier(args["dossier_code"]))

    @rpc
    def list_dead_letters(self, caller_token, limit=100):
        self.authorised(caller_token, "admin")
        args = load_valid(DeadLettersIn, {"limit": limit})
        return _deliveries_out.dump(self.db.deliveries.dead_letters(args["limit"]))

    @rpc
    def resend(self, delivery_id, caller_token, idempotency_key=None):
        """A dead letter sent again, by a platform admin (the idempotency key is theirs)."""
        caller = self.authorised(caller_token, "admin")
        args = load_valid(ResendIn, {"delivery_id": delivery_id})
        command = Command.of(idempotency_key, "notify.resend", account_scope(caller.username), [args["delivery_id"]])

        def resend():
            return _delivery_out.dump(self.notifier.resend(self.db, args["delivery_id"]))

        return run_once(self.db, command, resend, utcnow(), ttl_of(self.config))

    @rpc
    def delivery_receipt(self, provider, token, body):
        args = load_valid(ReceiptIn, {"provider": provider, "body": body})
        delivery = self.notifier.receipt(self.db, args["provider"], token, args["body"])
        return {"id": delivery.id, "status": delivery.status}

    @rpc
    def preview(self, event_type, channel, caller_token, agency_code=None):
        self.authorised(caller_token, *STAFF_ROLES)
        args = load_valid(PreviewIn, {"event_type": event_type, "channel": channel, "agency_code": agency_code})
        return templates.preview(self.notifier.templates, args["event_type"], args["channel"], args["agency_code"],
                                 self.notifier.tz, self.notifier.agency_names)

    @rpc
    def get_preferences(self, dossier_code):
        args = load_valid(ListDeliveriesIn, {"dossier_code": dossier_code})
        recorded = self.db.preferences.recorded(args["dossier_code"])
        return preferences_out(preferences.view(preferences.in_force(recorded)))

    @rpc
    def set_preferences(self, dossier_code, choices, source="tracking"):
        args = load_valid(PreferencesIn, {"dossier_code": dossier_code, "choices": choices, "source": source})
        return preferences_out(self.notifier.set_preferences(self.db, args["dossier_code"],
                                                             args["choices"], args["source"]))
