"""`motcua` (or `python -m motcua.cli`): operators' commands.

    motcua dead-letters list                    queues with parked messages (and retries waiting)
    motcua dead-letters show <queue> [--limit]  each parked message's event, error and history, its
                                                personal data redacted (it is sealed anyway)
    motcua dead-letters replay <queue> [--limit]  back to the queue, after the cause is fixed
    motcua dead-letters purge <queue>           delete them

`<queue>` is the consumer's queue (`inbox.notify`, `tasks.000.00.18.H56`); `<queue>.dead` works too.
The broker is `AMQP_URI`'s; `list` asks RabbitMQ's management API (`MOTCUA_RABBIT_MANAGEMENT_URL`).

    motcua keys new                             a fresh 256-bit key (for MOTCUA_TRACKING_KEY and the others)
    motcua keys token-pair <private> <public>   a fresh Ed25519 pair for tokens, written to two PEM files
                                                (the private one readable by its owner only)
    motcua tokens system <agency code> [--days]  an agency system's token for its worker, signed with
                                                MOTCUA_TOKEN_SIGNING_KEY (the operator's; never a worker's)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote, urlparse

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # eventlet announces its bug-fix-only mode (STACK.md); not news here
    from motcua import bus
from motcua.config import amqp_uri, rabbit_management_url
from motcua.privacy import redact_personal_fields

DEAD_SUFFIX = ".dead"


def _queue(name: str) -> str:
    return name[: -len(DEAD_SUFFIX)] if name.endswith(DEAD_SUFFIX) else name


def _when(epoch) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(float(epoch), timezone.utc).isoformat(timespec="seconds")


def parked_counts(uri: str, management_url: str) -> dict[str, dict[str, int]]:
    """{queue: {"parked": n, "retrying": m}} of every queue of the URI's vhost with a dead-letter or a
    delay queue: their names from the management API, their counts from the broker itself (the API's
    figures lag by seconds)."""
    import requests
    from kombu import Connection

    parsed = urlparse(uri)
    vhost = unquote(parsed.path[1:]) or "/"
    response = requests.get(f"{management_url}/queues/{quote(vhost, safe='')}", timeout=10,
                            params={"columns": "name"},
                            auth=(unquote(parsed.username or "guest"), unquote(parsed.password or "guest")))
    response.raise_for_status()
    counts: dict[str, dict[str, int]] = {}
    with Connection(uri) as connection:
        channel = connection.default_channel
        for name in sorted(queue["name"] for queue in response.json()):
            if name.endswith(DEAD_SUFFIX):
                queue, kind = _queue(name), "parked"
            elif ".retry." in name:
                queue, kind = name.split(".retry.")[0], "retrying"
            else:
                continue
            ready = channel.queue_declare(name, passive=True).message_count
            counts.setdefault(queue, {"parked": 0, "retrying": 0})[kind] += ready
    return counts


def describe(message) -> dict:
    """What an operator may see of a parked message: its event's identity, its error and history, the
    payload with every personal value redacted."""
    headers = message.headers or {}
    shown = {
        "error": headers.get(bus.ERROR_HEADER),
        "attempts": headers.get(bus.ATTEMPTS_HEADER),
        "replays": headers.get(bus.REPLAYS_HEADER, 0),
        "first_failed_at": _when(headers.get(bus.FIRST_FAILED_HEADER)),
        "parked_at": _when(headers.get(bus.PARKED_AT_HEADER)),
        "consumer": headers.get("x-motcua-consumer"),
    }
    if headers.get(bus.SEALED_HEADER) == "body":
        shown["body"] = {"sealed_whole": True, "content_type": headers.get(bus.CONTENT_TYPE_HEADER)}
        return shown
    try:
        body = json.loads(message.body)
    except ValueError:
        shown["body"] = {"undecodable": True, "content_type": message.content_type}
        return shown
    if isinstance(body, dict):
        shown.update({k: body.get(k) for k in ("event_type", "event_id", "source", "occurred_at")})
        shown["data"] = redact_personal_fields(body.get("data"))
    return shown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="motcua", description="Motcua operators' commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    dead = commands.add_parser("dead-letters", help="parked messages: list, show, replay, purge")
    actions = dead.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="queues with parked messages")
    for name, text in (("show", "parked messages, personal data redacted"),
                       ("replay", "move parked messages back to their queue"),
                       ("purge", "delete parked messages")):
        action = actions.add_parser(name, help=text)
        action.add_argument("queue")
        if name != "purge":
            action.add_argument("--limit", type=int, default=100 if name == "show" else None)
    key_commands = commands.add_parser("keys", help="make keys").add_subparsers(dest="action", required=True)
    key_commands.add_parser("new", help="print a fresh 256-bit key")
    pair = key_commands.add_parser("token-pair", help="write a fresh Ed25519 key pair for tokens")
    pair.add_argument("private_path")
    pair.add_argument("public_path")
    token_commands = commands.add_parser("tokens", help="make tokens").add_subparsers(dest="action", required=True)
    system = token_commands.add_parser("system", help="print an agency system's token for its worker")
    system.add_argument("agency_code")
    system.add_argument("--days", type=int, default=90)
    args = parser.parse_args(argv)
    if args.command == "keys":
        return _keys(args)
    if args.command == "tokens":
        return _system_token(args.agency_code, args.days)
    uri = amqp_uri()
    if args.action == "list":
        counts = parked_counts(uri, rabbit_management_url())
        width = max([len(q) for q in counts] + [5])
        print(f"{'queue':<{width}}  parked  retrying")
        for queue, count in sorted(counts.items()):
            print(f"{queue:<{width}}  {count['parked']:>6}  {count['retrying']:>8}")
    elif args.action == "show":
        for message in bus.peek_dead_letters(uri, _queue(args.queue), args.limit):
            print(json.dumps(describe(message), ensure_ascii=False, default=str))
    elif args.action == "replay":
        print(f"replayed {bus.replay_dead_letters(uri, _queue(args.queue), args.limit)} message(s) "
              f"to {_queue(args.queue)}")
    else:
        print(f"purged {bus.purge_dead_letters(uri, _queue(args.queue))} message(s) of {_queue(args.queue)}")
    return 0


def _keys(args) -> int:
    from motcua import keys

    if args.action == "new":
        print(keys.new_key())
        return 0
    private, public = keys.new_token_pair()
    with open(os.open(args.private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(private)
    with open(args.public_path, "x") as file:
        file.write(public)
    print(f"MOTCUA_TOKEN_SIGNING_KEY={args.private_path} (the gateway's and operators' only)\n"
          f"MOTCUA_TOKEN_VERIFY_KEY={args.public_path} (every service)")
    return 0


def _system_token(agency_code: str, days: int) -> int:
    from motcua.config import token_settings
    from motcua.identity import system_token

    settings = token_settings(signs=True)
    if not 0 < days * 86400 <= settings["SYSTEM_TOKEN_MAX_SECONDS"]:
        print(f"--days must be between 1 and {settings['SYSTEM_TOKEN_MAX_SECONDS'] // 86400} "
              "(MOTCUA_SYSTEM_TOKEN_MAX_DAYS): services refuse a longer one", file=sys.stderr)
        return 2
    print(system_token(agency_code, settings["TOKEN_SIGNING_KEY"], timedelta(days=days)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
