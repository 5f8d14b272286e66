"""The small HTTP server every simulator runs on: a thread, a JSON in / JSON out handler, a chosen port
(0: any free one, for tests), and switches for the failures a test provokes (`fault`)."""
from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

FAULTS = ("none", "down", "slow", "garbage")


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that gave up on a slow answer (the "slow" fault's point) is no error to print."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class SimulatorServer:
    """Serves `handle(method, path, headers, body) -> (status, dict | bytes[, headers])` on 127.0.0.1:`port`.

    `fault`: "slow" waits `slow_seconds` before answering, "garbage" answers bytes that are no JSON,
    "down" closes the connection without an answer (as a stopped upstream behind a proxy does)."""

    def __init__(self, handle: Callable[[str, str, dict, bytes], tuple[int, dict | bytes]], port: int = 0,
                 host: str = "127.0.0.1"):
        self.handle, self.fault, self.slow_seconds = handle, "none", 5.0
        simulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if simulator.fault == "down":
                    self.close_connection = True
                    return
                if simulator.fault == "slow":
                    time.sleep(simulator.slow_seconds)
                if simulator.fault == "garbage":
                    status, answer = 200, b"<html>502 Bad Gateway</html>"
                else:
                    status, answer, *extra = simulator.handle(self.command, self.path, dict(self.headers), body)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                headers = {"Content-Type": "application/json" if isinstance(answer, dict) else "text/html",
                           **(extra[0] if extra else {})}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args):  # a simulator's requests carry test citizens' data: not logged
                pass

        self.server = _Server((host, port), Handler)
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "SimulatorServer":
        self.thread = threading.Thread(target=self.server.serve_forever, name="simulator", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Simulator:
    """The other side of a connection: its `handle` served on a `SimulatorServer` (its `fault` switches
    included), started and stopped with the test or `make run` that needs it."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        self.server = SimulatorServer(self.handle, port=port, host=host)

    def handle(self, method: str, path: str, headers: dict, body: bytes):
        raise NotImplementedError

    def start(self):
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def serve_forever(self, what: str) -> None:
        """In the foreground (`python -m simulators.<name>`), until Ctrl-C."""
        print(f"{what} on {self.server.url}", flush=True)
        self.server.server.serve_forever()
