"""A national portal (DVCQG) played by a local HTTP server in a thread, for the sync tests."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from tests.infra import free_port

TOKEN = "portal-test-token"


class Portal:
    """Accepts `POST /dossiers` and answers `GET /dossiers/<code>` with what it holds. `outages` answers
    the next N pushes with 503; `reject` answers pushes with 422 and an error code. Not listening until
    `start()` (connection refused), and again after `stop()`."""

    def __init__(self, token: str = TOKEN):
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[dict] = []  # every push as received: headers and body
        self.accepted: list[tuple[str, int]] = []  # (code, version) of each push it took
        self.dossiers: dict[str, dict] = {}  # what the portal shows for each dossier
        self.outages = 0
        self.reject = False
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Portal:
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {portal.token}":
                    return True
                self._answer(401, {"error_code": "UNAUTHORIZED"})
                return False

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                portal.requests.append({"headers": dict(self.headers), "raw": raw.decode(), "body": json.loads(raw)})
                if not self._authorized():
                    return
                if portal.outages:
                    portal.outages -= 1
                    self._answer(503, {"error_code": "MAINTENANCE"})
                    return
                body = json.loads(raw)
                if portal.reject:
                    self._answer(422, {"error_code": "INVALID_PROCEDURE", "message": f"bad {body['code']}"})
                    return
                portal.accepted.append((body["code"], body["version"]))
                portal.dossiers[body["code"]] = {"code": body["code"], "version": body["version"],
                                                 "status": body["status"]}
                self._answer(200, {"ok": True})

            def do_GET(self):
                if not self._authorized():
                    return
                code = unquote(self.path.rsplit("/", 1)[1])
                if code in portal.dossiers:
                    self._answer(200, portal.dossiers[code])
                else:
                    self._answer(404, {"error_code": "NOT_FOUND"})

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
