"""The public postal service (bưu chính công ích), simulated in the shape of MyVNPost's customer-partner
API (services/intake/postal.py describes it; docs/connections.md cites the source).

  POST /customer-partner/GetAccessToken  {"username", "password"} → {"token"}; 401 otherwise
  POST /customer-partner/CreateOrder     header `token`; an order → {"originalID", "itemCode", "status": 1,
       "totalFee"}; 401 for an unknown token, 400 for an order it cannot take (no receiver phone or
       address, no saleOrderCode); the same saleOrderCode again is the same order.
  Its news of an order: `advance(originalID, status)` POSTs {"originalID", "itemCode", "saleOrderCode",
  "status", "statusDate"} to the callback URL, signed (`X-Postal-Signature`: hex HMAC-SHA256 of the body).

Run alone: `python -m motcua.simulators.postal --port 8703 --callback-url http://127.0.0.1:8000/api/v1/postal/callbacks`
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from datetime import datetime, timezone

import requests

from motcua.keys import POSTAL_CALLBACK_SECRET, development_value
from motcua.simulators.http import Answer, Request, Simulator

# A pickup's or a delivery's course, as the carrier reports it: picked up, delivering, delivered.
COURSE = ("6", "12", "14")


class PostalSimulator(Simulator):
    def __init__(self, username: str = "motcua", password: str = "motcua-dev", callback_url: str | None = None,
                 callback_secret: str | None = None, port: int = 0,
                 auto_course: float | None = None):
        self.username, self.password = username, password
        self.callback_url = callback_url
        # The stand-in intake derives outside production when POSTAL_CALLBACK_SECRET is unset.
        self.callback_secret = callback_secret or development_value(POSTAL_CALLBACK_SECRET)
        self.auto_course = auto_course
        self.tokens: set[str] = set()
        self.orders: dict[str, dict] = {}  # originalID → the order as received, with its item code
        self.by_sale_code: dict[str, str] = {}
        self.callbacks: list[tuple[dict, int]] = []  # (news sent, our HTTP answer)
        self._numbers = itertools.count(1)
        super().__init__(port)

    def handle(self, request: Request) -> Answer:
        body = request.body if isinstance(request.body, dict) else None
        if request.method != "POST" or body is None:
            return Answer(400, {"message": "POST a JSON object"})
        if request.path == "/customer-partner/GetAccessToken":
            if body.get("username") != self.username or body.get("password") != self.password:
                return Answer(401, {"message": "Sai tài khoản hoặc mật khẩu"})
            token = secrets.token_urlsafe(16)
            self.tokens.add(token)
            return Answer(200, {"token": token})
        if request.path != "/customer-partner/CreateOrder":
            return Answer(404, {"message": "Không tìm thấy"})
        if request.headers.get("token") not in self.tokens:
            return Answer(401, {"message": "Token không hợp lệ"})
        order = body.get("informationOrder")
        if not isinstance(order, dict) or not all(order.get(key) for key in (
                "saleOrderCode", "senderPhone", "senderAddress", "receiverPhone", "receiverAddress")):
            return Answer(400, {"message": "Thiếu thông tin người gửi, người nhận hoặc mã đơn hàng"})
        known = self.by_sale_code.get(order["saleOrderCode"])
        if known is None:
            known = f"{next(self._numbers):08d}"
            self.orders[known] = {**order, "itemCode": f"EB{int(known):09d}VN"}
            self.by_sale_code[order["saleOrderCode"]] = known
            if self.auto_course is not None and self.callback_url:
                threading.Thread(target=self._run_course, args=(known,), daemon=True).start()
        return Answer(200, {"originalID": known, "itemCode": self.orders[known]["itemCode"], "status": 1,
                            "totalFee": 25000})

    def _run_course(self, original_id: str) -> None:
        for status in COURSE:
            time.sleep(self.auto_course)
            self.advance(original_id, status)

    def advance(self, original_id: str, status: str, secret: str | None = None) -> int:
        """The carrier's news of an order, POSTed to the callback URL and signed (with `secret`, a forger's,
        when given); returns our HTTP answer's status."""
        order = self.orders[original_id]
        news = {"originalID": original_id, "itemCode": order["itemCode"], "saleOrderCode": order["saleOrderCode"],
                "status": int(status), "statusDate": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        body = json.dumps(news).encode()
        signed = hmac.new((secret or self.callback_secret).encode(), body, hashlib.sha256).hexdigest()
        answer = requests.post(self.callback_url, data=body, timeout=10,
                               headers={"Content-Type": "application/json", "X-Postal-Signature": signed})
        self.callbacks.append((news, answer.status_code))
        return answer.status_code


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8703)
    parser.add_argument("--callback-url", required=True)
    parser.add_argument("--course-every", type=float, default=2.0, help="seconds between an order's news")
    args = parser.parse_args(argv)
    PostalSimulator(callback_url=args.callback_url, port=args.port, auto_course=args.course_every).serve("postal")


if __name__ == "__main__":
    main()
