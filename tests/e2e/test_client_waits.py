"""The test and bench client waits by long poll where the server offers one, by 0.2 s polls elsewhere.

A stand-in server (no platform) holds a conditional GET while its ETag is current, as the gateway's
long polls do (`Prefer: wait`, `Preference-Applied: wait`), or answers at once as a previous release did.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.client import Api


class Dossier:
    """One resource whose status changes; `long_poll` says whether the server honours Prefer: wait."""

    def __init__(self, long_poll: bool):
        self.long_poll = long_poll
        self.version = 1
        self.status = "processing"
        self.changed = threading.Condition()
        self.requests: list[dict] = []

    def change(self, status: str) -> None:
        with self.changed:
            self.status, self.version = status, self.version + 1
            self.changed.notify_all()


def serve(dossier: Dossier) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            dossier.requests.append(dict(self.headers))
            etag = lambda: f'"{dossier.version}"'  # noqa: E731
            waits = self.headers.get("Prefer", "").startswith("wait=") and dossier.long_poll
            if waits:
                with dossier.changed:
                    dossier.changed.wait_for(lambda: self.headers.get("If-None-Match") != etag(), timeout=0.4)
            if dossier.long_poll and self.headers.get("If-None-Match") == etag():
                self.send_response(304)
                body = b""
            else:
                self.send_response(200)
                body = json.dumps({"code": "X", "status": dossier.status}).encode()
                self.send_header("Content-Type", "application/json")
            if dossier.long_poll:
                self.send_header("ETag", etag())
                if waits:
                    self.send_header("Preference-Applied", "wait")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("long_poll", [True, False], ids=["long-poll", "previous-release"])
def test_wait_status_learns_the_change_by_long_poll_or_by_polling(long_poll):
    dossier = Dossier(long_poll)
    server = serve(dossier)
    api = Api(f"http://127.0.0.1:{server.server_port}")
    api.tokens["admin"] = "token"
    try:
        threading.Timer(0.7, dossier.change, ["result_ready"]).start()
        started = time.perf_counter()
        assert api.wait_status("X", "result_ready", timeout=10)["status"] == "result_ready"
        waited = time.perf_counter() - started
    finally:
        server.shutdown()
    assert 0.6 < waited < 3
    if long_poll:
        # the first answer, a held request that ends unchanged (304), one that the change answers
        assert len(dossier.requests) == 3
        assert [r.get("If-None-Match") for r in dossier.requests] == [None, '"1"', '"1"']
        assert all(r["Prefer"].startswith("wait=") for r in dossier.requests)
    else:
        assert len(dossier.requests) >= 3  # every 0.2 s
