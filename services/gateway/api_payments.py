"""HTTP API v1: online payment (thanh toán trực tuyến) through the national payment platform, owned by
intake: the applicant starts an order and is sent to the platform; the platform's server-to-server
notification (IPN) and the browser's return come back here, signed, and intake checks the signature."""
from __future__ import annotations

from marshmallow import Schema, fields

from motcua.contracts.rpc import ApplicantActionV1
from motcua.errors import Unauthorized, load_valid
from services.gateway.http import query, read_json, route

MAX_PARAMS = 40  # the platform sends about fifteen


class PaymentOrderOut(Schema):
    order_id = fields.Str()
    dossier_code = fields.Str()
    amount_vnd = fields.Int()
    currency = fields.Str()
    payment_url = fields.Str()


class IpnAnswer(Schema):
    RspCode = fields.Str()
    Message = fields.Str()


class ReconcileBody(Schema):
    date = fields.Date(required=True)


def platform_params(request) -> dict:
    params = query(request)
    return {k: v for k, v in list(params.items())[:MAX_PARAMS] if isinstance(v, str)}


class PaymentApi:
    """Routes mixed into GatewayService, which provides the RPC proxies."""

    @route("POST", "/api/v1/dossiers/<code>/payments", body=ApplicantActionV1, response=PaymentOrderOut,
           auth="optional", errors=(429,), command=True)
    def start_payment(self, request, code):
        """Pay online what a dossier awaiting payment (status 6) owes: the order and the platform's URL.
        The applicant signed in with VNeID, or with the tracking key and ID number, or the counter."""
        caller, token = self.optional_caller_of(request)
        body = load_valid(ApplicantActionV1, read_json(request))
        with self.proving(request, caller, code):
            return self.intake.start_payment(code, body, caller_token=token, idempotency_key=request.idempotency_key)

    @route("GET", "/api/v1/payments/ipn", response=IpnAnswer, auth="public")
    def payment_ipn(self, request):
        """The platform's signed notification (IPN): answered in its format; a forged one is refused
        (RspCode 97) and audited by intake's access_denied event."""
        try:
            return self.intake.payment_notification(platform_params(request))
        except Unauthorized:
            return {"RspCode": "97", "Message": "Invalid signature"}

    @route("GET", "/api/v1/payments/return", auth="public")
    def payment_return(self, request):
        """Where the platform sends the browser back: the order's status as intake knows it."""
        return self.intake.payment_return(platform_params(request))

    @route("POST", "/api/v1/payments/reconcile", body=ReconcileBody)
    def reconcile_payments(self, request):
        """Đối soát: one day's statement of the platform against the orders (platform admin)."""
        caller, token = self.caller_of(request)
        body = load_valid(ReconcileBody, read_json(request))
        with self.audited(request, caller, "payments.reconcile"):
            return self.intake.reconcile_payments(body["date"].isoformat(), caller_token=token)
