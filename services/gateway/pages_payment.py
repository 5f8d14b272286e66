"""Thanh toán trực tuyến on the citizens' portal: a dossier awaiting payment (status 6) or a level-4
procedure's fee due from submission is paid through the national payment platform's pattern that intake
owns (services/intake/online_payments.py): the portal asks intake for the order (the applicant's proof, or
a VNeID sign-in, as for every applicant action), sends the browser to the platform's page, and the
platform's signed return lands on `/thanh-toan/ket-qua`, which says what intake knows: confirmed only once
the platform's server-to-server notification (IPN) or its statement settled the order; the return itself
settles nothing, and may arrive first (the page then says it waits, and looks again by itself)."""
from __future__ import annotations

from urllib.parse import quote

from motcua.contracts.views import PAYMENT_RETURN_PAGE
from services.gateway.api_payments import platform_params
from services.gateway.pages_http import form_again, form_data, form_key, page, render
from services.gateway.pages_portal import payment_offered

PAY_FORM = "portal/pay.html"
LOOK_AGAIN_SECONDS = 3  # the return came before the notification: the page reloads itself meanwhile


class PaymentPages:
    """Pages mixed into GatewayService (with PortalPages), which provides the RPC proxies and config."""

    @page("GET", "/ho-so/<code>/thanh-toan")
    def portal_pay_form(self, request, code):
        """The applicant's proof (tracking key, ID number) before the order; a signed-in citizen's own
        dossier needs none (the dossier's page posts here at once)."""
        context = self._applicant_context(request, code, {})
        return render(PAY_FORM, **context, pay=payment_offered(context["tracked"]["status"], context["procedure"]))

    @page("POST", "/ho-so/<code>/thanh-toan")
    def portal_pay(self, request, code):
        """The order, then on to the platform. A page that sends the browser on (not a redirect: the
        portal's pages allow forms to post only to the portal, `form-action 'self'`, and browsers hold a
        form's redirect to that too)."""
        values = form_data(request)
        citizen, token = self._citizen(request)

        def context() -> dict:
            shown = self._applicant_context(request, code, values)
            return {**shown, "pay": payment_offered(shown["tracked"]["status"], shown["procedure"])}

        with form_again(PAY_FORM, context), self.proving(request, citizen, code):
            order = self.intake.start_payment(code, {"key": values.get("key") or None,
                                                     "id_number": values.get("id_number") or None},
                                              caller_token=token, idempotency_key=form_key(values))
        return render("portal/pay_redirect.html", order=order, citizen=citizen,
                      headers={"Referrer-Policy": "no-referrer"})  # the platform learns nothing of our URLs

    @page("GET", PAYMENT_RETURN_PAGE)
    def portal_payment_return(self, request):
        """The platform's signed return: what intake knows of the order (a forged return is refused by
        intake's signature check and audited there: the error page)."""
        known = self.intake.payment_return(platform_params(request))
        citizen, _token = self._citizen(request)
        code = known.get("dossier_code")
        outcome = _outcome(known)
        back = None
        if code:
            back = f"/ho-so/{quote(code, safe='')}" if citizen else f"/tra-cuu?code={quote(code, safe='')}"
        return render("portal/pay_result.html", outcome=outcome, known=known, back=back, citizen=citizen,
                      look_again=LOOK_AGAIN_SECONDS)


def _outcome(known: dict) -> str:
    """What the citizen is told: "confirmed" (the order settled paid), "not_due" (paid, but the dossier
    owed nothing by then: the counter refunds it), "waiting" (the platform says paid, its notification
    has not settled the order yet), "failed" (not paid, or cancelled), "unknown" (no such order here)."""
    status = known.get("status")
    if status in ("paid", "refund_due", "refunded"):
        return "confirmed"
    if status == "paid_not_due":
        return "not_due"
    if status == "pending":
        return "waiting" if known.get("platform_says") == "paid" else "failed"
    return "failed" if status == "failed" else "unknown"
