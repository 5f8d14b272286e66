"""The one threaded JSON HTTP server every simulator runs on, with the faults they all can play."""
from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit


ALWAYS = sys.maxsize  # a count of faulty answers that no test runs out of: until `clear()`


@dataclass
class Faults:
    """What the simulated system does wrong, for the failure tests: `outages` answers the next N requests
    503; `delay` holds every answer that many seconds (slow); `garbage` answers the next N requests with
    a body that is no JSON; `down` closes every connection without an answer (as a stopped upstream
    behind a proxy does) until cleared."""

    outages: int = 0
    delay: float = 0.0
    garbage: int = 0
    down: bool = False

    def play(self, fault: str, seconds: float = 5.0) -> None:
        """`fault` on every request until `clear()`: "down", "slow" (`seconds` before each answer) or
        "garbage"."""
        if fault == "down":
            self.down = True
        elif fault == "slow":
            self.delay = seconds
        elif fault == "garbage":
            self.garbage = ALWAYS
        else:
            raise ValueError(f"no fault {fault!r} (down, slow, garbage)")

    def clear(self) -> None:
        self.outages, self.delay, self.garbage, self.down = 0, 0.0, 0, False


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    body: object = None  # the JSON body, or None


@dataclass
class Answer:
    """`body`: JSON, or a str sent as an HTML page (a sign-in page, a proxy's error, an empty redirect)."""

    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that gave up on a slow answer (the "slow" fault's point) is no error to print."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class JsonServer:
    """Listens on `host`:`port` (0: any free port) from `start()` until `stop()`; `handle(request)`
    returns an Answer. Every request is kept in `requests` (headers, raw body)."""

    def __init__(self, handle: Callable[[Request], Answer], port: int = 0, host: str = "127.0.0.1"):
        self.handle, self.host, self.port = handle, host, port
        self.faults = Faults()
        self.requests: list[Request] = []
        self.server: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> JsonServer:
        simulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # a simulator's requests carry test citizens' data: not logged
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                request = Request(self.command, parts.path, parse_qs(parts.query), dict(self.headers), raw, body)
                with simulator.lock:
                    simulator.requests.append(request)
                    faults = simulator.faults
                    if faults.down:
                        self.close_connection = True
                        return
                    outage, garbage = faults.outages > 0, faults.garbage > 0 and faults.outages <= 0
                    faults.outages -= outage
                    faults.garbage -= garbage
                    delay = faults.delay
                if delay:
                    time.sleep(delay)
                if outage:
                    answer = Answer(503, {"error": "maintenance"})
                elif garbage:
                    answer = Answer(200, "<html>Bad Gateway</html>")
                else:
                    with simulator.lock:
                        answer = simulator.handle(request)
                data = answer.body.encode() if isinstance(answer.body, str) else json.dumps(
                    answer.body, ensure_ascii=False).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "text/html; charset=utf-8" if isinstance(answer.body, str)
                                 else "application/json; charset=utf-8")
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

        self.server = _Server((self.host, self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name=f"simulator-{self.port}").start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def port_argument(default: int) -> int:
    """The port of `python -m motcua.simulators.<name> [PORT]`."""
    return int(sys.argv[1]) if len(sys.argv) > 1 else default


class Simulator:
    """A simulated system: its protocol in `handle(request)`, served on a JsonServer on `host`:`port`
    (its `faults` switches included), started and stopped with the test or `make run` that needs it."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        self.http = JsonServer(self.handle, port, host)

    def handle(self, request: Request) -> Answer:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def faults(self) -> Faults:
        return self.http.faults

    def start(self):
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()

    def serve(self, label: str) -> None:
        """Run until Ctrl-C (a simulator started on its own, `python -m motcua.simulators.<name>`)."""
        self.start()
        print(f"{label} simulator on {self.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.stop()
