"""A local SMTP server for notify's tests (aiosmtpd), run as its own process.

  python tests/notify/smtp_server.py --port P --maildir D [--starttls CERT KEY | --ssl CERT KEY]
         [--auth USER:PASSWORD] [--fail-first N] [--stall-first-rcpt MARKER]

Accepted messages go to the Maildir D with an X-RcptTo header (the envelope recipients).
--fail-first N answers the first N messages "451 try again later". --stall-first-rcpt writes MARKER
and never answers the first RCPT TO (a message in flight, not yet accepted: the kill test).
"""
import argparse
import asyncio
import mailbox
import signal
import ssl
import threading
from email import message_from_bytes
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, maildir: str, fail_first: int, stall_marker: str | None):
        self.box = mailbox.Maildir(maildir)
        self.failures_left = fail_first
        self.stall_marker = stall_marker

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.stall_marker:
            marker, self.stall_marker = self.stall_marker, None
            Path(marker).write_text("stalled")
            await asyncio.sleep(3600)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.failures_left > 0:
            self.failures_left -= 1
            return "451 4.3.0 Try again later"
        message = message_from_bytes(envelope.content)
        message["X-RcptTo"] = ", ".join(envelope.rcpt_tos)
        self.box.add(message)
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--ssl", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--auth")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--stall-first-rcpt")
    args = parser.parse_args()

    options = {}
    tls = args.starttls or args.ssl
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        options["ssl_context" if args.ssl else "tls_context"] = context
        if args.starttls:
            options["require_starttls"] = True
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
                and auth_data.password.decode() == password
            return AuthResult(success=ok)

        options.update(authenticator=authenticate, auth_required=True,
                       auth_require_tls=bool(args.starttls))  # SMTPS is TLS from the first byte
    controller = Controller(Handler(args.maildir, args.fail_first, args.stall_first_rcpt), hostname="127.0.0.1",
                            port=args.port, ready_timeout=10, server_hostname="localhost", **options)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
