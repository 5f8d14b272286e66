"""HTTP API v1: notifications (delivery log, dead letters, templates, receipts, citizens' choices),
owned by notify."""
from __future__ import annotations

import contextlib

from marshmallow import INCLUDE, RAISE, Schema, fields, validate

from motcua.contracts.rpc import NotificationPreviewV1
from motcua.contracts.views import NOTIFY_CHANNELS, DeliveryViewV1, PreferenceViewV1
from motcua.errors import Forbidden, Unauthorized, load_valid
from motcua.identity import STAFF_ROLES, Caller
from services.gateway.audit import DENIED
from services.gateway.api_reports import TRACK_QUERY
from services.gateway.http import query, read_json, route

RECEIPT_TOKEN_HEADER = "X-Receipt-Token"


class DeadLettersQuery(Schema):
    class Meta:
        unknown = RAISE

    limit = fields.Int(load_default=100, validate=validate.Range(min=1, max=1000))


class ReceiptQuery(Schema):
    token = fields.Str(metadata={"description": f"the carrier's token, unless sent as {RECEIPT_TOKEN_HEADER}"})


class CarrierReport(Schema):
    """A brandname gateway's report in the query (services/notify/brandname.py), and its token."""

    class Meta:
        unknown = INCLUDE

    token = fields.Str(metadata={"description": f"the gateway's token, unless sent as {RECEIPT_TOKEN_HEADER}"})
    SMSID = fields.Str()
    SendStatus = fields.Str()


class CarrierReceipt(Schema):
    """Whatever the carrier posts: notify reads it with the carrier's configured rule."""

    class Meta:
        unknown = INCLUDE


NotificationChoices = Schema.from_dict({channel: fields.Bool() for channel in NOTIFY_CHANNELS}, name="NotificationChoices")
NotificationPreferences = Schema.from_dict({channel: fields.Nested(PreferenceViewV1) for channel in NOTIFY_CHANNELS},
                                           name="NotificationPreferences")


class NotifyApi:
    """Routes mixed into GatewayService, which provides the RPC proxies, config and database."""

    @route("GET", "/api/v1/dossiers/<code>/notifications", response=DeliveryViewV1(many=True))
    def dossier_notifications(self, request, code):
        """The dossier's delivery log, for staff who may see the dossier (intake decides who)."""
        caller, token = self.caller_of(request)
        with self.audited(request, caller, "dossier.notifications", dossier_code=code):
            self.intake.get_dossier(code, caller_token=token)
            return self.notify.list_deliveries(code, caller_token=token)

    @route("GET", "/api/v1/notifications/dead-letters", query=DeadLettersQuery, response=DeliveryViewV1(many=True))
    def dead_letters(self, request):
        _caller, token = _admin(self, request)
        return self.notify.list_dead_letters(token, load_valid(DeadLettersQuery, query(request))["limit"])

    @route("POST", "/api/v1/notifications/deliveries/<int:delivery_id>/resend", response=DeliveryViewV1,
           command=True)
    def resend_delivery(self, request, delivery_id):
        caller, token = _admin(self, request)
        delivery = self.notify.resend(delivery_id, caller_token=token, idempotency_key=request.idempotency_key)
        self.record_audit(caller, "notification.resend", request.remote_addr,
                     dossier_code=delivery["dossier_code"], task_id=delivery_id)
        return delivery

    @route("POST", "/api/v1/notifications/preview", body=NotificationPreviewV1)
    def preview_template(self, request):
        """A template rendered with sample data: `{"event_type", "channel", "agency_code"?}`."""
        caller, token = self.caller_of(request)
        caller.require(*STAFF_ROLES)
        body = read_json(request)
        body = body if isinstance(body, dict) else {}  # notify names the missing field
        return self.notify.preview(body.get("event_type"), body.get("channel"), caller_token=token,
                                   agency_code=body.get("agency_code"))

    @route("POST", "/api/v1/notifications/receipts/<provider>", body=CarrierReceipt, query=ReceiptQuery,
           auth="public")
    def delivery_receipt(self, request, provider):
        """An SMS carrier's delivery receipt, authenticated by the token configured for it."""
        token = request.headers.get(RECEIPT_TOKEN_HEADER) or query(request).get("token") or ""
        return self._carrier_report(request, provider, token, read_json(request))

    @route("GET", "/api/v1/notifications/receipts/<provider>", query=CarrierReport, auth="public")
    def delivery_report(self, request, provider):
        """A brandname gateway's delivery report, as it calls back: an HTTP GET whose query carries the
        report (SMSID, SendStatus, SendSuccess, …) and the token configured for it."""
        report = query(request)
        token = request.headers.get(RECEIPT_TOKEN_HEADER) or report.pop("token", "")
        return self._carrier_report(request, provider, token, report)

    def _carrier_report(self, request, provider, token, body):
        """notify decides; a refused token (a forged report) is answered 401 and audited."""
        with refusals_audited(self, request, f"carrier:{provider[:32]}", "notification.receipt"):
            return self.notify.delivery_receipt(provider, token, body)

    @route("GET", "/api/v1/track/<code>/notifications", query=TRACK_QUERY, response=NotificationPreferences,
           auth="public", errors=(429,))
    def notification_choices(self, request, code):
        """The citizen's notification choices, with the same code + key as public tracking."""
        self.tracked(request, code)
        return self.notify.get_preferences(code)

    @route("PUT", "/api/v1/track/<code>/notifications", query=TRACK_QUERY, body=NotificationChoices,
           response=NotificationPreferences, auth="public", errors=(429,))
    def set_notification_choices(self, request, code):
        """`{"email": false, "sms": true}`: opt out of (or back into) a channel for this dossier."""
        self.tracked(request, code)
        return self.notify.set_preferences(code, read_json(request), source="tracking")


@contextlib.contextmanager
def refusals_audited(service, request, who: str, action: str):
    """An outside system's call (a carrier's report, a callback) that the owning service refuses as
    unauthenticated (a forged one) is answered 401 and written to the audit log, denied, in its name."""
    try:
        yield
    except Unauthorized as refused:
        service.record_audit(Caller(who, None), action, request.remote_addr, outcome=DENIED, detail=refused.message)
        raise


def _admin(service, request):
    """The platform admin calling, and their token (notify checks it again)."""
    caller, token = service.caller_of(request)
    if not caller.is_admin:
        raise Forbidden("requires the platform admin")
    return caller, token
