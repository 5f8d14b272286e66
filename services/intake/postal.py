"""The public postal service (bưu chính công ích, VNPost-style): the dossier picked up at the applicant's
address, the result delivered there, each asked for at submission (`postal: {pickup, delivery}`).

A shipment is owed in the transaction of the event that makes it due (domain.OWED_ON: submission for a pickup,
the result ready for a delivery; `shipments`, one row per dossier and kind). `send_due` (intake's timer)
makes the carrier's order for each one due, retrying with backoff, and records it on the dossier
(history, `postal_shipment_updated`). The carrier reports each shipment's progress to our callback
(`apply_callback`, through the gateway): picked up, delivered, returned...; a result delivered by post is
the result returned (status 10, method postal), by intake, the dossier's owner.

Wire protocol (MyVNPost's customer-partner API as public integrations call it; docs/connections.md):
  POST {url}/customer-partner/GetAccessToken  {"username", "password"}       → {"token"}
  POST {url}/customer-partner/CreateOrder     header `token`; {"orderCreationStatus": 1, "type": "GUI",
       "informationOrder": {"senderName", "senderPhone", "senderAddress", "receiverName", "receiverPhone",
       "receiverAddress", "serviceCode", "saleOrderCode", "contentNote", "weight", "sendType", …}}
                                                → {"originalID", "itemCode", "status", "totalFee"}
  callback (ours to agree with the carrier): POST, JSON {"originalID", "itemCode", "saleOrderCode",
       "status", "statusDate"}, `X-Postal-Signature: hex HMAC-SHA256(secret, body)`.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from prometheus_client import CollectorRegistry, Counter, Histogram

from motcua.backoff import backoff
from motcua.config import env
from motcua.db import UnitOfWork
from motcua.errors import NotFound, Unauthorized, ValidationFailed
from motcua.http import CallFailed, post_json
from motcua.keys import POSTAL_CALLBACK_SECRET, key_setting
from services.intake.dossiers import publish

SIGNATURE_HEADER = "X-Postal-Signature"
# The carrier's order statuses (MyVNPost's table as public integrations list it) that are news for the
# dossier; the others (created, processing, being transported…) change nothing we show.
CARRIER_STATUSES = {
    "6": "picked_up", "7": "picked_up",  # received goods successfully; the post office has them
    "12": "in_transit",                   # delivering
    "14": "delivered",
    "15": "failed",                       # delivery failed (tried again by the postman)
    "8": "failed",                        # pickup failed
    "9": "cancelled", "22": "cancelled",
    "20": "returned",                     # returned to the sender (chuyển hoàn)
}
SERVICE_CODE = "ETN011"  # the postal service's code for the province's contract (configurable)


@dataclass(frozen=True)
class PostalSettings:
    url: str
    username: str | None = None
    password: str | None = None
    callback_secret: str = ""
    service_code: str = SERVICE_CODE
    province_name: str = ""  # the agencies' addresses: "<agency name>, <province>"
    office_phone: str = ""  # the one-stop office's phone the carrier calls (the province's hotline)
    timeout: float = 10.0
    batch: int = 50
    retry_base: float = 5.0
    retry_max: float = 3600.0
    lease: float = 120.0


def settings_from_env() -> PostalSettings | None:
    """POSTAL_URL (unset: off), POSTAL_USERNAME, POSTAL_PASSWORD, POSTAL_CALLBACK_SECRET,
    POSTAL_SERVICE_CODE, POSTAL_PROVINCE_NAME, POSTAL_OFFICE_PHONE, POSTAL_TIMEOUT."""
    url = env("POSTAL_URL")
    if url is None:
        return None
    # Production refuses it unset, short or published, as every key (motcua.keys).
    secret = key_setting(POSTAL_CALLBACK_SECRET).decode()
    return PostalSettings(url=url.rstrip("/"), username=env("POSTAL_USERNAME"), password=env("POSTAL_PASSWORD"),
                          callback_secret=secret,
                          service_code=env("POSTAL_SERVICE_CODE", SERVICE_CODE),
                          province_name=env("POSTAL_PROVINCE_NAME", ""), office_phone=env("POSTAL_OFFICE_PHONE", ""),
                          timeout=float(env("POSTAL_TIMEOUT", "10")))


PUSH_INTERVAL = float(env("POSTAL_PUSH_INTERVAL", "5"))


class PostalMetrics:
    """`motcua_postal_requests_total{call,outcome}`, `motcua_postal_request_seconds{call}`,
    `motcua_postal_callbacks_total{outcome}` (applied, repeated, ignored, forged, unknown),
    `motcua_postal_order_lag_seconds` (a shipment owed → the carrier's order)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        registry = self.registry = registry or CollectorRegistry()
        self.requests = Counter("motcua_postal_requests", "Calls to the postal service", ["call", "outcome"],
                                registry=registry)
        self.seconds = Histogram("motcua_postal_request_seconds", "Duration of a call to the postal service",
                                 ["call"], registry=registry)
        self.callbacks = Counter("motcua_postal_callbacks", "The postal service's callbacks", ["outcome"],
                                 registry=registry)
        self.lag = Histogram("motcua_postal_order_lag_seconds", "From a shipment owed to the carrier's order",
                             buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, float("inf")),
                             registry=registry)


class PostalFailure(Exception):
    def __init__(self, retry: bool, reason: str):
        super().__init__(reason)
        self.retry, self.reason = retry, reason


class PostalClient:
    """The carrier's HTTP API. Errors name the call and a status or class only: no address, no name."""

    def __init__(self, settings: PostalSettings, metrics: PostalMetrics | None = None):
        self.settings = settings
        self.metrics = metrics or PostalMetrics()
        self.http = requests.Session()
        self.token: str | None = None

    def create_order(self, order: dict) -> dict:
        """{"originalID", "itemCode"} of the new order; PostalFailure otherwise (`retry`: time may cure it)."""
        for attempt in (1, 2):
            if self.token is None:
                answer = self._post("token", "/customer-partner/GetAccessToken",
                                    {"username": self.settings.username or "", "password": self.settings.password or ""})
                if not isinstance(answer.get("token"), str):
                    raise PostalFailure(False, "token refused")
                self.token = answer["token"]
            try:
                answer = self._post("order", "/customer-partner/CreateOrder", order, {"token": self.token})
            except PostalFailure as failure:
                if failure.reason == "order HTTP 401" and attempt == 1:
                    self.token = None  # expired: once more with a new one
                    continue
                raise
            if not answer.get("originalID"):
                self.metrics.requests.labels("order", "refused").inc()
                raise PostalFailure(False, "order without originalID")
            return answer
        raise AssertionError("unreachable")

    def _post(self, call: str, path: str, body: dict, headers: dict | None = None) -> dict:
        try:
            answer = post_json(self.http, f"{self.settings.url}{path}", body, call=call, headers=headers,
                               timeout=self.settings.timeout, seconds=self.metrics.seconds.labels(call))
        except CallFailed as failure:
            self.metrics.requests.labels(call, failure.outcome).inc()
            raise PostalFailure(failure.passing, failure.reason) from None
        self.metrics.requests.labels(call, "ok").inc()
        return answer

    def close(self) -> None:
        self.http.close()


def order_of(shipment: dict, dossier, agency_name: str, settings: PostalSettings) -> dict:
    """The carrier's order: a pickup goes from the applicant to the receiving agency, a delivery (the
    result) from the agency to the applicant. `saleOrderCode` is ours: `<dossier code>/<kind>`."""
    applicant = {"Name": dossier.applicant_name, "Phone": dossier.applicant_phone,
                 "Address": dossier.applicant_address or ""}
    office = {"Name": agency_name, "Phone": settings.office_phone,
              "Address": ", ".join(part for part in (agency_name, settings.province_name) if part)}
    sender, receiver = (applicant, office) if shipment["kind"] == "pickup" else (office, applicant)
    content = ("Hồ sơ " if shipment["kind"] == "pickup" else "Kết quả giải quyết hồ sơ ") + dossier.code
    return {"orderCreationStatus": 1, "type": "GUI", "informationOrder": {
        **{f"sender{key}": value for key, value in sender.items()},
        **{f"receiver{key}": value for key, value in receiver.items()},
        "serviceCode": settings.service_code, "saleOrderCode": f"{dossier.code}/{shipment['kind']}",
        "contentNote": content, "weight": "500", "sendType": "1", "vehicle": "BO", "deliveryRequire": "1",
        "addonService": []}}


def send_due(uow: UnitOfWork, client: PostalClient, agency_names: dict[str, str], now: datetime) -> dict:
    """Make the carrier's order for each shipment due; returns how many were ordered, retried, rejected."""
    settings = client.settings
    due = uow.shipments.claim_due(now, now + timedelta(seconds=settings.lease), settings.batch)
    uow.commit()
    counts = {"ordered": 0, "retry": 0, "rejected": 0}
    for shipment in due:
        dossier = uow.dossiers.get(shipment["dossier_code"], for_update=False)
        order = order_of(shipment, dossier, agency_names.get(dossier.agency_code, dossier.agency_code), settings)
        uow.commit()  # no lock and no transaction held while the carrier answers (up to its timeout, 3 tries)
        try:
            answer = client.create_order(order)
        except PostalFailure as failure:
            attempts = shipment["attempts"] + 1
            if failure.retry:
                delay = backoff(attempts, settings.retry_base, settings.retry_max, jitter=1.0)
                uow.shipments.record(shipment["id"], attempts=attempts, last_error=failure.reason[:200],
                                     next_attempt_at=now + timedelta(seconds=delay))
                counts["retry"] += 1
            else:
                uow.shipments.record(shipment["id"], attempts=attempts, last_error=failure.reason[:200],
                                     state="rejected")
                counts["rejected"] += 1
            uow.commit()
            continue
        item_code = str(answer.get("itemCode") or "") or None
        uow.shipments.record(shipment["id"], state="ordered", carrier_id=str(answer["originalID"]),
                             item_code=item_code, ordered_at=now, updated_at=now, shipment_status="ordered",
                             last_error=None)
        dossier = uow.dossiers.get(shipment["dossier_code"])  # locked now, to record the order
        dossier.shipment_updated(shipment["kind"], "ordered", item_code, str(answer.get("status", "")), now)
        publish(uow, dossier)
        uow.commit()
        client.metrics.lag.observe(max((now - shipment["owed_at"]).total_seconds(), 0.0))
        counts["ordered"] += 1
    return counts


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def apply_callback(uow: UnitOfWork, settings: PostalSettings, metrics: PostalMetrics, signed: str, body: str,
                   now: datetime) -> dict:
    """The carrier's news of a shipment, its signature checked first (a forged one: Unauthorized)."""
    raw = body.encode()
    if not hmac.compare_digest(signature(settings.callback_secret, raw), signed or ""):
        metrics.callbacks.labels("forged").inc()
        raise Unauthorized("the callback's signature does not match", field=SIGNATURE_HEADER)
    try:
        news = json.loads(raw)
    except ValueError:
        news = None
    if not isinstance(news, dict) or not news.get("originalID"):
        raise ValidationFailed("a JSON object with originalID", field="originalID")
    shipment = uow.shipments.by_carrier_id(str(news["originalID"]))
    if shipment is None:
        metrics.callbacks.labels("unknown").inc()
        raise NotFound("no shipment with this originalID", field="originalID")
    status = CARRIER_STATUSES.get(str(news.get("status")))
    if status is None:
        metrics.callbacks.labels("ignored").inc()
        return {"dossier_code": shipment["dossier_code"], "kind": shipment["kind"], "applied": False}
    dossier = uow.dossiers.get(shipment["dossier_code"])
    at = _when(news.get("statusDate"), now)
    versions = dossier.version
    item_code = str(news.get("itemCode") or shipment["item_code"] or "") or None
    dossier.shipment_updated(shipment["kind"], status, item_code, str(news["status"]), at)
    applied = dossier.version != versions
    uow.shipments.record(shipment["id"], shipment_status=status, updated_at=now, item_code=item_code)
    publish(uow, dossier)
    uow.commit()
    metrics.callbacks.labels("applied" if applied else "repeated").inc()
    return {"dossier_code": dossier.code, "kind": shipment["kind"], "applied": applied, "status": dossier.status}


def _when(value, now: datetime) -> datetime:
    """The carrier's time of the news, when it gives a readable one with its zone; else when it came."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return now
    return when if when.tzinfo is not None else now
