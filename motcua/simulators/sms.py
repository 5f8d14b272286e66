"""An SMS brandname gateway (tin nhắn thương hiệu), simulated in the HTTP API of eSMS-style aggregators
(services/notify/brandname.py describes it; docs/connections.md cites the source).

  POST {SEND_PATH}  {"ApiKey", "SecretKey", "Phone", "Content", "Brandname", "SmsType", "IsUnicode",
                     "Sandbox", "RequestId", "CallbackUrl"}
    → {"CodeResult": "100", "SMSID": …}; "101" wrong keys, "104" a brandname not registered, "99" a
      request it cannot read. A RequestId seen before is the same message: its first SMSID, not sent
      (nor charged) again.
  The delivery report: an HTTP GET on the message's CallbackUrl with SMSID, SendStatus (5 sent, 4
  refused), SendSuccess, SendFailed, TotalPrice, TotalReceiver, TotalSent, RequestId, TypeId, telcoid,
  phonenumber — sent by `report()`, or by itself `auto_report` seconds after acceptance.

Run alone: `python -m motcua.simulators.sms --port 8702` (keys `motcua-api-key`/`motcua-secret-key`,
brandname `MOTCUA`).
"""
from __future__ import annotations

import argparse
import re
import threading
import uuid
from dataclasses import dataclass

import requests

from motcua.simulators.http import Answer, Request, Simulator
from services.notify import sms

SEND_PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"
PHONE = re.compile(r"^0[35789][0-9]{8}$")


@dataclass
class Message:
    sms_id: str
    request_id: str | None
    phone: str
    content: str
    brandname: str
    unicode: bool
    encoding: str
    parts: int
    callback_url: str | None
    reports: int = 0


class SmsGatewaySimulator(Simulator):
    def __init__(self, api_key: str = "motcua-api-key", secret_key: str = "motcua-secret-key",
                 brandnames: tuple[str, ...] = ("MOTCUA",), port: int = 0, auto_report: float | None = None):
        self.api_key, self.secret_key, self.brandnames = api_key, secret_key, set(brandnames)
        self.auto_report = auto_report
        self.messages: dict[str, Message] = {}  # by SMSID
        self.by_request: dict[str, str] = {}  # RequestId → SMSID
        self.refused: list[str] = []  # CodeResult of each refused request
        self.reports_sent: list[dict] = []
        super().__init__(port)

    @property
    def url(self) -> str:
        return f"{self.http.url}{SEND_PATH}"

    def billed_parts(self) -> int:
        return sum(message.parts for message in self.messages.values())

    def handle(self, request: Request) -> Answer:
        if request.method != "POST" or request.path != SEND_PATH or not isinstance(request.body, dict):
            return self._refuse("99", "Yêu cầu không hợp lệ")
        body = request.body
        if body.get("ApiKey") != self.api_key or body.get("SecretKey") != self.secret_key:
            return self._refuse("101", "Authorize Failed")
        if body.get("Brandname") not in self.brandnames:
            return self._refuse("104", "Brandname chưa được đăng ký")
        phone, content = str(body.get("Phone") or ""), body.get("Content")
        if not PHONE.match(phone) or not isinstance(content, str) or not content:
            return self._refuse("99", "Phone hoặc Content không hợp lệ")
        request_id = body.get("RequestId") or None
        if request_id in self.by_request:  # chặn trùng: the same message, already taken
            return Answer(200, {"CodeResult": "100", "CountRegenerate": 0, "SMSID": self.by_request[request_id]})
        unicode = str(body.get("IsUnicode", "0")) == "1"
        # A non-Unicode request travels as GSM-7: what is outside it does not reach the phone.
        text = content if unicode else sms.unaccent(content)
        length = sms.measure(text)
        message = Message(uuid.uuid4().hex, request_id, phone, text, body["Brandname"], unicode, length.encoding,
                          length.segments, body.get("CallbackUrl") or None)
        self.messages[message.sms_id] = message
        if request_id:
            self.by_request[request_id] = message.sms_id
        if self.auto_report is not None and message.callback_url:
            threading.Timer(self.auto_report, self.report, (message.sms_id,)).start()
        return Answer(200, {"CodeResult": "100", "CountRegenerate": 0, "SMSID": message.sms_id})

    def _refuse(self, code: str, why: str) -> Answer:
        self.refused.append(code)
        return Answer(200, {"CodeResult": code, "CountRegenerate": 0, "ErrorMessage": why})

    def report(self, sms_id: str, status: str = "5", delivered: bool = True, token: str | None = None) -> int:
        """Call the message's CallbackUrl back as the gateway does (HTTP GET); returns the HTTP status."""
        message = self.messages[sms_id]
        message.reports += 1
        params = {"SMSID": sms_id, "SendFailed": "0" if delivered else "1", "SendStatus": status,
                  "SendSuccess": "1" if delivered and status == "5" else "0",
                  "TotalPrice": f"{message.parts * 800:.4f}", "TotalReceiver": "1", "TotalSent": "1",
                  "RequestId": message.request_id or "", "TypeId": "2", "telcoid": "1",
                  "phonenumber": message.phone}
        if token is not None:
            params["token"] = token
        self.reports_sent.append(params)
        return requests.get(message.callback_url, params=params, timeout=10).status_code


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8702)
    parser.add_argument("--report-after", type=float, default=1.0, help="seconds before a delivery report")
    args = parser.parse_args(argv)
    SmsGatewaySimulator(port=args.port, auto_report=args.report_after).serve("SMS brandname gateway")


if __name__ == "__main__":
    main()
