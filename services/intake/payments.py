"""Thanh toán trực tuyến (level-4 services): a dossier's fee or tax paid through the national payment
platform, in its pattern (as VNPAY-style gateways that the platform connects): a payment order made
here, the applicant redirected to the platform's page with the order signed (HMAC-SHA512 over the
sorted, URL-encoded parameters), a signed return to the browser, and a signed server-to-server
notification (IPN) that alone changes state; a daily statement to reconcile against.

The port is `PaymentPlatform`: `payment_url(order, return_url, now)`, `notification(params)` (a verified
`Notice`, or Unauthorized: `forged`), `statement(day)`. `PlatformAdapter` is the HTTP adapter; the rules of
orders (idempotent on the order id, amount and currency checked) live in `online_payments.py`.
`motcua/simulators/payment.py` is the local platform; `docs/connections.md` has the configuration table.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol
from urllib.parse import quote_plus, urlencode
from zoneinfo import ZoneInfo

import requests
from prometheus_client import CollectorRegistry, Counter, Histogram

from motcua.config import env, is_production
from motcua.contracts.views import PAYMENT_RETURN_PAGE
from motcua.errors import Unauthorized
from motcua.faults import TransientFailure
from motcua.keys import key_setting

CURRENCY = "VND"
VERSION = "2.1.0"
PLATFORM_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # the platform's timestamps (yyyyMMddHHmmss) are local time
SIGNATURE = "vnp_SecureHash"


def canonical(params: dict) -> str:
    """The signed text: every `vnp_` parameter but the signature, sorted by name, URL-encoded."""
    return "&".join(f"{k}={quote_plus(str(v))}" for k, v in sorted(params.items())
                    if k.startswith("vnp_") and k not in (SIGNATURE, "vnp_SecureHashType") and v not in (None, ""))


def sign(params: dict, secret: bytes) -> str:
    return hmac.new(secret, canonical(params).encode(), hashlib.sha512).hexdigest()


def signed(params: dict, secret: bytes) -> dict:
    return {**params, SIGNATURE: sign(params, secret)}


def is_authentic(params: dict, secret: bytes) -> bool:
    given = params.get(SIGNATURE)
    return isinstance(given, str) and hmac.compare_digest(given.lower(), sign(params, secret))


def platform_time(moment: datetime) -> str:
    return moment.astimezone(PLATFORM_TZ).strftime("%Y%m%d%H%M%S")


def forged(what: str) -> Unauthorized:
    """A return, notification or statement line whose signature is not the platform's: refused (and
    audited by the entrypoint, `audit_refusals`), never applied. Plain Unauthorized: it crosses RPC."""
    return Unauthorized(f"{what}'s signature is not the platform's", field=SIGNATURE)


class PlatformUnavailable(TransientFailure):
    """The payment platform is down, too slow, or answered something that is no statement."""


class RefundRefused(Exception):
    """The platform answered a refund, signed, with a refusal: asking again would be refused again."""

    def __init__(self, code: str):
        super().__init__(f"the payment platform refused the refund (vnp_ResponseCode {code})")
        self.code = code


REFUNDED_BEFORE = "94"  # the platform's answer to a refund of an order it has refunded already


@dataclass(frozen=True)
class Notice:
    """What a verified return or notification says of an order."""

    order_id: str
    amount_vnd: int
    currency: str
    succeeded: bool
    transaction_no: str | None
    paid_at: str | None  # the platform's yyyyMMddHHmmss

    @classmethod
    def of(cls, params: dict) -> "Notice":
        try:
            minor = int(params["vnp_Amount"])
        except (KeyError, TypeError, ValueError):
            minor = -1
        return cls(order_id=str(params.get("vnp_TxnRef", "")), amount_vnd=minor // 100 if minor >= 0 else -1,
                   currency=str(params.get("vnp_CurrCode", CURRENCY)),
                   succeeded=params.get("vnp_ResponseCode") == "00" and params.get("vnp_TransactionStatus") == "00",
                   transaction_no=params.get("vnp_TransactionNo"), paid_at=params.get("vnp_PayDate"))


class PaymentPlatform(Protocol):
    def payment_url(self, order_id: str, amount_vnd: int, info: str, return_url: str, now: datetime) -> str: ...

    def notification(self, params: dict) -> Notice: ...

    def statement(self, day: date) -> list[Notice]: ...

    def refund(self, order_id: str, amount_vnd: int, transaction_no: str | None, now: datetime) -> str | None: ...


@dataclass(frozen=True)
class PaymentSettings:
    """The configuration table (docs/connections.md, "Online payment")."""

    url: str
    merchant: str
    secret: bytes
    return_url: str
    timeout: float
    refund_on: frozenset[str]  # the outcomes after a payment whose fee the law returns: "stopped", "refused"

    @classmethod
    def from_env(cls) -> "PaymentSettings | None":
        url = env("INTAKE_PAYMENT_URL")
        if url is None:
            return None
        if is_production() and not url.startswith("https://"):
            raise SystemExit("INTAKE_PAYMENT_URL must be an https:// URL when MOTCUA_ENV=production")
        return cls(url=url.rstrip("/"), merchant=env("INTAKE_PAYMENT_MERCHANT", "MOTCUA01"),
                   secret=key_setting("INTAKE_PAYMENT_SECRET"),
                   return_url=env("INTAKE_PAYMENT_RETURN_URL", default_return_url()),
                   timeout=float(env("INTAKE_PAYMENT_TIMEOUT_SECONDS", "10")),
                   refund_on=frozenset(o for o in env("INTAKE_PAYMENT_REFUND_ON", "stopped").split(",") if o))


def default_return_url() -> str:
    """Where the platform sends the browser back by default: the citizens' portal page that says whether
    the payment is confirmed (the gateway's `/thanh-toan/ket-qua`; the API's JSON answer is
    `/api/v1/payments/return`)."""
    address = (env("GATEWAY_ADDRESS") or "0.0.0.0:8000").replace("0.0.0.0", "localhost")
    return f"http://{address}{PAYMENT_RETURN_PAGE}"


class PaymentMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.orders = Counter("motcua_payment_orders", "Payment orders created", registry=registry)
        self.notifications = Counter("motcua_payment_notifications", "Payment notifications (IPN) by outcome "
                                     "(paid, failed, repeat, forged, unknown_order, wrong_amount)", ["outcome"],
                                     registry=registry)
        self.settle_lag = Histogram("motcua_payment_settle_lag_seconds", "From the order to the platform's "
                                    "confirmation of the payment (notification or statement)", registry=registry,
                                    buckets=(5, 15, 30, 60, 120, 300, 900, 3600, 6 * 3600, 86400, 2 * 86400))
        self.refunds = Counter("motcua_payment_refunds", "Refunds sent to the platform, by outcome (refunded, "
                               "failed: tried again later, refused: left to the counter)", ["outcome"], registry=registry)
        self.reconciliations = Counter("motcua_payment_reconciliation", "Orders compared with the platform's "
                                       "statement, by result (matched, applied, missing_at_platform, unavailable)",
                                       ["result"], registry=registry)


class PlatformAdapter:
    def __init__(self, settings: PaymentSettings, http: requests.Session | None = None):
        self.settings = settings
        self.http = http or requests.Session()

    def payment_url(self, order_id: str, amount_vnd: int, info: str, return_url: str, now: datetime) -> str:
        params = {"vnp_Version": VERSION, "vnp_Command": "pay", "vnp_TmnCode": self.settings.merchant,
                  "vnp_Amount": str(amount_vnd * 100), "vnp_CurrCode": CURRENCY, "vnp_TxnRef": order_id,
                  "vnp_OrderInfo": info, "vnp_OrderType": "billpayment", "vnp_Locale": "vn",
                  "vnp_ReturnUrl": return_url, "vnp_CreateDate": platform_time(now)}
        return f"{self.settings.url}/paymentv2/vpcpay.html?{urlencode(signed(params, self.settings.secret))}"

    def notification(self, params: dict) -> Notice:
        if not is_authentic(params, self.settings.secret) or params.get("vnp_TmnCode") != self.settings.merchant:
            raise forged("the payment notification")
        return Notice.of(params)

    def statement(self, day: date) -> list[Notice]:
        """The platform's statement (đối soát) of one day: every transaction, each signed as a notice."""
        query = signed({"vnp_TmnCode": self.settings.merchant, "vnp_Date": day.strftime("%Y%m%d")},
                       self.settings.secret)
        status, body = self._call("GET", "/merchant_webapi/statement", params=query)
        rows = body.get("transactions") if isinstance(body, dict) and status == 200 else None
        if not isinstance(rows, list):
            raise PlatformUnavailable(f"the payment platform answered no statement (HTTP {status})")
        if not all(isinstance(row, dict) and is_authentic(row, self.settings.secret) for row in rows):
            raise forged("a line of the platform's statement")
        return [Notice.of(row) for row in rows]

    def refund(self, order_id: str, amount_vnd: int, transaction_no: str | None, now: datetime) -> str | None:
        """Hoàn tiền: the whole amount of a settled order back to the payer; the platform's refund number,
        or None when it says the order was refunded before (an earlier try whose answer was lost).
        RefundRefused when it refuses; PlatformUnavailable when it is away or its answer is not signed."""
        request = signed({"vnp_RequestId": f"{order_id}-{platform_time(now)}", "vnp_Version": VERSION,
                          "vnp_Command": "refund", "vnp_TmnCode": self.settings.merchant,
                          "vnp_TransactionType": "02", "vnp_TxnRef": order_id, "vnp_Amount": str(amount_vnd * 100),
                          "vnp_TransactionNo": transaction_no or "", "vnp_CreateBy": "motcua",
                          "vnp_CreateDate": platform_time(now), "vnp_OrderInfo": f"Hoan tien {order_id}"},
                         self.settings.secret)
        _status, body = self._call("POST", "/merchant_webapi/api/transaction", json=request)
        if not isinstance(body, dict) or not is_authentic(body, self.settings.secret):
            raise PlatformUnavailable("the payment platform's refund answer is not signed by it")
        code = str(body.get("vnp_ResponseCode"))
        if code == REFUNDED_BEFORE:
            return None
        if code != "00":
            raise RefundRefused(code)
        return str(body.get("vnp_TransactionNo", ""))

    def _call(self, method: str, path: str, **request) -> tuple[int, object]:
        """(HTTP status, JSON body) of one call to the platform; PlatformUnavailable when it is away, too
        slow, or answers no JSON."""
        try:
            response = self.http.request(method, f"{self.settings.url}{path}", timeout=self.settings.timeout,
                                         **request)
            return response.status_code, response.json()
        except requests.RequestException as exc:
            raise PlatformUnavailable(f"payment platform unreachable ({type(exc).__name__})") from None
        except ValueError:
            raise PlatformUnavailable(f"the payment platform answered no JSON ({path})") from None


def answer(code: str, message: str) -> dict:
    """The IPN answer the platform expects (RspCode "00": taken; it retries on anything else but the
    codes saying the order is settled or unknown)."""
    return {"RspCode": code, "Message": message}


