"""The service layer of online payments (payments.py has the platform's format): orders made for a
dossier awaiting payment (status 6: a step's obligation) or, for a level-4 procedure with a fee, for that
fee from submission on (purpose "fee": paid, it is a line of the history, the status unchanged), settled only by the platform's verified notification or its daily
statement, once per order (the order's row lock; a repeat is answered "already confirmed"), with the
amount and currency checked against the order; a settled payment resumes the dossier as the counter's
cash confirmation does and attaches the electronic receipt (biên lai điện tử)."""
from __future__ import annotations

import logging
import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import insert, or_, select, update

from motcua.backoff import backoff
from motcua.errors import Conflict, NotFound
from motcua.faults import TransientFailure
from motcua.identity import Caller
from services.intake import documents, forms
from services.intake.domain import ApplicantProof
from services.intake import dossiers
from services.intake.dossiers import Policy, _load, publish
from services.intake.models import payment_orders as orders
from services.intake.payments import (
    CURRENCY,
    Notice,
    PaymentMetrics,
    PaymentPlatform,
    PaymentSettings,
    RefundRefused,
    answer,
)

log = logging.getLogger(__name__)
RECEIPT_KEY = "receipt:bien_lai"  # the receipt's place among the dossier's documents
REFUND_RETRY_SECONDS, REFUND_RETRY_CAP_SECONDS = 30, 6 * 3600  # the platform away: 30 s, 1 min, … 6 h


def start(uow, policy: Policy, platform: PaymentPlatform, settings: PaymentSettings, metrics: PaymentMetrics,
          code: str, caller: Caller | None, proof: ApplicantProof, now: datetime) -> dict:
    """A payment order for what the dossier owes (the pending one again if the amount did not change),
    and the platform's URL to send the applicant to: a step's obligation while it awaits payment, else
    its procedure's fee due at submission (level 4) until paid."""
    dossier = _load(uow, code)  # locked: two tabs of one applicant make one order
    dossier.check_applicant(caller, proof)
    purpose, amount = _owed(policy, dossier)
    order_id = uow.session.scalar(select(orders.c.order_id).where(
        orders.c.dossier_code == code, orders.c.status == "pending", orders.c.amount_vnd == amount,
        orders.c.purpose == purpose))
    if order_id is None:
        order_id = uuid.uuid4().hex[:20]
        uow.session.execute(insert(orders).values(order_id=order_id, dossier_code=code, amount_vnd=amount,
                                                  currency=CURRENCY, status="pending", purpose=purpose,
                                                  created_at=now))
        metrics.orders.inc()
    uow.commit()
    url = platform.payment_url(order_id, amount, f"Thanh toan ho so {code}", settings.return_url, now)
    return {"order_id": order_id, "dossier_code": code, "amount_vnd": amount, "currency": CURRENCY,
            "purpose": purpose, "payment_url": url}


def _owed(policy: Policy, dossier) -> tuple[str, int]:
    """What an online payment of the dossier is for now: ("obligation", amount) at status 6, else ("fee",
    the procedure's fee on its channel when the procedure is level 4); Conflict when nothing is due."""
    if dossier.status == "awaiting_payment":
        return "obligation", dossier.awaits_payment_of()
    return "fee", dossier.fee_due_online(submission_fee(policy, dossier))


def submission_fee(policy: Policy, dossier) -> int:
    """The fee (lệ phí) a level-4 procedure ("full" online) charges on the dossier's channel; 0 otherwise."""
    try:
        procedure = policy.catalog.procedure(dossier.procedure_code, version=dossier.procedure_version)
    except NotFound:
        return 0
    if procedure.online_level != "full" or dossier.channel not in procedure.channels:
        return 0
    return procedure.terms(dossier.channel).fee


def settle(uow, policy: Policy, notice: Notice, now: datetime, metrics: PaymentMetrics) -> dict:
    """Apply what the platform says of an order (a verified notice), once; the IPN answer."""
    order = uow.session.execute(select(orders).where(orders.c.order_id == notice.order_id).with_for_update()).first()
    if order is None:
        metrics.notifications.labels("unknown_order").inc()
        return answer("01", "Order not found")
    if notice.currency != CURRENCY or notice.amount_vnd != order.amount_vnd:
        metrics.notifications.labels("wrong_amount").inc()
        return answer("04", "Invalid amount")
    if order.status != "pending":
        metrics.notifications.labels("repeat").inc()
        return answer("02", "Order already confirmed")
    if not notice.succeeded:
        _settled(uow, order.order_id, "failed", notice, None, now)
        metrics.notifications.labels("failed").inc()
        return answer("00", "Confirm Success")
    receipt_number = f"BL-{now.astimezone(policy.calendar.tz):%y%m%d}-{order.order_id[:8].upper()}"
    dossier = _load(uow, order.dossier_code)
    try:
        amount = (dossier.fee_due_online(submission_fee(policy, dossier)) if order.purpose == "fee"
                  else dossier.awaits_payment_of())
    except Conflict:  # IllegalTransition is one
        # Paid while no longer due (withdrawn, paid in cash meanwhile, the fee paid by another order): the
        # money is recorded, the dossier unchanged; the counter refunds it (docs/connections.md).
        _settled(uow, order.order_id, "paid_not_due", notice, None, now)
        metrics.notifications.labels("paid_not_due").inc()
        return answer("00", "Confirm Success")
    pdf = forms.payment_receipt(dossier, policy.catalog, policy.calendar.tz, receipt_number, order.order_id,
                                notice.transaction_no, amount, now)
    receipt = documents.Upload(RECEIPT_KEY, f"bien-lai-{receipt_number}.pdf", pdf)
    documents.keep([receipt], policy.store)
    if order.purpose == "fee":
        dossier.fee_paid(amount, receipt_number, receipt.ref(), now)
    else:
        dossier.paid_online(receipt_number, receipt.ref(), policy.schedule(dossier), now)
    publish(uow, dossier)
    _settled(uow, order.order_id, "paid", notice, receipt_number, now)
    metrics.notifications.labels("paid").inc()
    metrics.settle_lag.observe((now - order.created_at).total_seconds())
    return answer("00", "Confirm Success")


def _settled(uow, order_id: str, status: str, notice: Notice, receipt_number: str | None, now: datetime) -> None:
    uow.session.execute(update(orders).where(orders.c.order_id == order_id).values(
        status=status, transaction_no=notice.transaction_no, receipt_number=receipt_number, settled_at=now))
    uow.commit()


def order_status(uow, notice: Notice) -> dict:
    """The browser's return: what we know of the order (the notification, not the return, settles it)."""
    order = uow.session.execute(select(orders).where(orders.c.order_id == notice.order_id)).first()
    return {"order_id": notice.order_id, "platform_says": "paid" if notice.succeeded else "not_paid",
            "dossier_code": order.dossier_code if order else None, "status": order.status if order else "unknown"}


def reconcile(uow, policy: Policy, platform: PaymentPlatform, day: date, now: datetime,
              metrics: PaymentMetrics) -> dict:
    """Đối soát: the platform's statement of `day` against our orders: a payment it holds that we missed
    (a lost notification) is applied now; one we hold as paid that it does not list is reported."""
    statement = platform.statement(day)
    applied, matched = [], []
    for notice in statement:
        if notice.succeeded:
            outcome = settle(uow, policy, notice, now, metrics)["RspCode"]
            (applied if outcome == "00" else matched).append(notice.order_id)
    listed = {notice.order_id for notice in statement}
    tz = policy.calendar.tz
    paid_here = uow.session.execute(select(orders.c.order_id, orders.c.settled_at).where(
        orders.c.status.in_(("paid", "paid_not_due")))).all()
    missing = sorted(row.order_id for row in paid_here
                     if row.settled_at.astimezone(tz).date() == day and row.order_id not in listed)
    for result, found in (("applied", applied), ("matched", matched), ("missing_at_platform", missing)):
        metrics.reconciliations.labels(result).inc(len(found))
    return {"date": day.isoformat(), "statement_lines": len(statement), "applied": applied, "matched": len(matched),
            "missing_at_platform": missing}


# -- refunds (hoàn phí): marked in the transaction of the outcome that calls for one, sent by a timer --

def processing_stopped(uow, data: dict, refund_on: frozenset[str]) -> None:
    """Workflow stopped the processing (status 8): and, where the law returns the fee, the paid order is due."""
    dossiers.processing_stopped(uow, data)
    if "stopped" in refund_on:
        _refund_due(uow, data["dossier_code"])


def result_ready(uow, data: dict, refund_on: frozenset[str]) -> None:
    """The result is ready; a refused one returns the fee where the law says so."""
    dossiers.result_ready(uow, data)
    if data.get("outcome") == "refused" and "refused" in refund_on:
        _refund_due(uow, data["dossier_code"])


def _refund_due(uow, code: str) -> None:
    uow.session.execute(update(orders).where(orders.c.dossier_code == code, orders.c.status == "paid")
                        .values(status="refund_due"))


REFUND_CLAIM = timedelta(minutes=5)  # an instance's hold on the orders it sends, past any platform timeout


def send_refunds(uow, platform: PaymentPlatform, now: datetime, metrics: PaymentMetrics, limit: int = 20) -> int:
    """The orders due a refund whose turn has come, oldest turn first, each claimed by this instance
    (another running the same timer skips them) and sent in its own transaction. Refunded, or refunded
    before by a try whose answer was lost: marked `refunded`, a line of the dossier's history
    (`payment_refunded`) in the transaction that marks it. The platform away: tried again after a
    growing delay. Refused by the platform: `refund_refused` with its code, left to the counter (asking
    again would be refused again). How many were refunded."""
    due = uow.session.execute(
        select(orders).where(orders.c.status == "refund_due",
                             or_(orders.c.refund_next_at.is_(None), orders.c.refund_next_at <= now))
        .order_by(orders.c.refund_next_at.asc().nulls_first(), orders.c.order_id)
        .limit(limit).with_for_update(skip_locked=True)).all()
    if due:
        uow.session.execute(update(orders).where(orders.c.order_id.in_([o.order_id for o in due]))
                            .values(refund_next_at=now + REFUND_CLAIM, refund_attempts=orders.c.refund_attempts + 1))
    uow.commit()  # claimed; no transaction held across the platform's calls
    refunded = 0
    for order in due:
        mine = (orders.c.order_id == order.order_id, orders.c.status == "refund_due")
        try:
            refund_number = platform.refund(order.order_id, order.amount_vnd, order.transaction_no, now)
        except TransientFailure:
            delay = backoff(order.refund_attempts + 1, base=REFUND_RETRY_SECONDS, cap=REFUND_RETRY_CAP_SECONDS)
            uow.session.execute(update(orders).where(*mine).values(refund_next_at=now + timedelta(seconds=delay)))
            uow.commit()
            metrics.refunds.labels("failed").inc()
            continue
        except RefundRefused as refusal:
            uow.session.execute(update(orders).where(*mine).values(status="refund_refused", refund_note=str(refusal)))
            uow.commit()
            log.warning("refund of order %s (dossier %s) refused by the platform: %s", order.order_id,
                        order.dossier_code, refusal.code)
            metrics.refunds.labels("refused").inc()
            continue
        marked = uow.session.execute(update(orders).where(*mine).values(status="refunded"))
        dossier = uow.dossiers.get(order.dossier_code) if marked.rowcount else None
        if dossier is not None:
            dossier.payment_refunded(order.order_id, order.amount_vnd, refund_number or "", now)
            publish(uow, dossier)
        uow.commit()
        metrics.refunds.labels("refunded").inc()
        refunded += 1
    return refunded
