"""The national payment platform (VNPAY-style pattern): the payment page, the signed return to the
browser, the signed server-to-server notification (IPN) to the merchant, and the daily statement.

    GET /paymentv2/vpcpay.html?<signed order>   the payment page; `sim_result=00` (paid) or `24`
                                                (cancelled) pays at once, as the tests do: the IPN is
                                                sent first, then the browser is redirected to the return URL
    GET /merchant_webapi/statement?vnp_TmnCode&vnp_Date=yyyyMMdd&vnp_SecureHash   the day's transactions

    POST /merchant_webapi/api/transaction       a signed refund of a paid order (whole amount), answered signed

What it does not: card or QR entry, bank redirects, partial refunds, the query API, retries of an IPN
the merchant did not acknowledge (it records every answer in `ipn_answers` instead).

    python -m motcua.simulators.payment [PORT]      (default 8092; `make run` starts it when configured)
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from html import escape
from urllib.parse import urlencode

import requests

from motcua.keys import development_value
from motcua.simulators.http import Answer, Request, Simulator, port_argument
from services.intake.payments import is_authentic, platform_time, signed

DEFAULT_MERCHANT = "MOTCUA01"
DEFAULT_SECRET = development_value("INTAKE_PAYMENT_SECRET")  # intake's development value


class PaymentSimulator(Simulator):
    def __init__(self, ipn_url: str | None = None, merchant: str = DEFAULT_MERCHANT, secret: str = DEFAULT_SECRET,
                 port: int = 0, host: str = "127.0.0.1"):
        self.ipn_url, self.merchant, self.secret = ipn_url, merchant, secret.encode()
        self.transactions: list[dict] = []  # signed, as the statement lists them
        self.ipn_answers: list[dict] = []
        self.refunds: list[dict] = []
        self.send_ipn = True  # False: the notification is "lost" (reconciliation finds it)
        self._next = 14000000
        super().__init__(port, host)

    def handle(self, request: Request) -> Answer:
        query = {k: v[0] for k, v in request.query.items()}
        if (request.method, request.path) == ("GET", "/paymentv2/vpcpay.html"):
            return self._pay(query)
        if (request.method, request.path) == ("GET", "/merchant_webapi/statement"):
            return self._statement(query)
        if (request.method, request.path) == ("POST", "/merchant_webapi/api/transaction"):
            return self._refund(request.raw)
        return Answer(404, {"error": "not_found"})

    def _pay(self, query: dict):
        result = query.pop("sim_result", None)
        if not is_authentic(query, self.secret) or query.get("vnp_TmnCode") != self.merchant:
            return Answer(400, "<html><body>Sai chu ky (invalid signature)</body></html>")
        if result is None:
            links = "".join(f'<li><a href="?{escape(urlencode({**query, "sim_result": code}))}">{label}</a></li>'
                            for code, label in (("00", "Thanh toán"), ("24", "Hủy giao dịch")))
            return Answer(200, f"<html><body><h1>Cổng thanh toán (simulator)</h1><ul>{links}</ul></body></html>")
        self._next += 1
        paid = result == "00"
        outcome = signed({
            "vnp_TmnCode": self.merchant, "vnp_TxnRef": query["vnp_TxnRef"], "vnp_Amount": query["vnp_Amount"],
            "vnp_CurrCode": query.get("vnp_CurrCode", "VND"), "vnp_OrderInfo": query.get("vnp_OrderInfo", ""),
            "vnp_ResponseCode": result, "vnp_TransactionStatus": "00" if paid else "02",
            "vnp_TransactionNo": str(self._next), "vnp_BankCode": "NCB",
            "vnp_PayDate": platform_time(datetime.now(timezone.utc))}, self.secret)
        if paid:
            self.transactions.append(outcome)
        if self.ipn_url and self.send_ipn:
            try:
                self.ipn_answers.append(requests.get(self.ipn_url, params=outcome, timeout=10).json())
            except (requests.RequestException, ValueError) as exc:
                self.ipn_answers.append({"error": type(exc).__name__})
        return Answer(302, "", {"Location": f"{query['vnp_ReturnUrl']}?{urlencode(outcome)}"})

    def _statement(self, query: dict):
        if not is_authentic(query, self.secret) or query.get("vnp_TmnCode") != self.merchant:
            return Answer(401, {"error": "invalid signature"})
        day = query.get("vnp_Date", "")
        return Answer(200, {"date": day, "generated_at": int(time.time()),
                            "transactions": [t for t in self.transactions if _local_day(t["vnp_PayDate"]) == day]})


    def _refund(self, body: bytes):
        try:
            request = json.loads(body)
        except ValueError:
            return Answer(400, {"error": "invalid request"})
        if not isinstance(request, dict) or not is_authentic(request, self.secret):
            return Answer(200, signed({"vnp_TmnCode": self.merchant, "vnp_ResponseCode": "97"}, self.secret))
        paid = next((t for t in self.transactions if t["vnp_TxnRef"] == request.get("vnp_TxnRef")), None)
        if paid is None or paid["vnp_Amount"] != request.get("vnp_Amount"):
            return Answer(200, signed({"vnp_TmnCode": self.merchant, "vnp_ResponseCode": "91"}, self.secret))
        if any(r["vnp_TxnRef"] == paid["vnp_TxnRef"] for r in self.refunds):
            return Answer(200, signed({"vnp_TmnCode": self.merchant, "vnp_ResponseCode": "94"},
                                      self.secret))  # done already
        self._next += 1
        refund = signed({"vnp_TmnCode": self.merchant, "vnp_ResponseCode": "00", "vnp_TxnRef": paid["vnp_TxnRef"],
                         "vnp_Amount": paid["vnp_Amount"], "vnp_TransactionNo": str(self._next),
                         "vnp_TransactionType": "02"}, self.secret)
        self.refunds.append(refund)
        return Answer(200, refund)


def _local_day(pay_date: str) -> str:
    return pay_date[:8]  # the platform's timestamps are local (Asia/Ho_Chi_Minh) yyyyMMddHHmmss


if __name__ == "__main__":
    PaymentSimulator(ipn_url=os.environ.get("PAYMENT_SIMULATOR_IPN_URL", "http://localhost:8000/api/v1/payments/ipn"),
                     merchant=os.environ.get("INTAKE_PAYMENT_MERCHANT", DEFAULT_MERCHANT),
                     secret=os.environ.get("INTAKE_PAYMENT_SECRET", DEFAULT_SECRET),
                     port=port_argument(8092)).serve("payment platform")
