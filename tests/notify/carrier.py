"""A local HTTP server standing in for an SMS carrier's gateway or an agency's system, in its own process.

  python tests/notify/carrier.py --port P --log FILE [--statuses 503,503,200] [--reply JSON]

Each request is appended to FILE as a JSON line (method, path, headers, body). It answers the
statuses in order (the last one repeats) with the reply body, where "{n}" is the request number.
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--statuses", default="200")
    parser.add_argument("--reply", default='{"code": "00", "message_id": "m-{n}"}')
    args = parser.parse_args()
    statuses = [int(s) for s in args.statuses.split(",")]
    count = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            count["n"] += 1
            n = count["n"]
            with open(args.log, "a", encoding="utf-8") as log:
                log.write(json.dumps({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                      "body": body}) + "\n")
            reply = args.reply.replace("{n}", str(n)).encode()
            self.send_response(statuses[min(n, len(statuses)) - 1])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_PUT = do_POST

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
