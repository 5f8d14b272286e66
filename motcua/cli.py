"""`motcua` (or `python -m motcua.cli`): operators' commands.

    motcua dead-letters list                    queues with parked messages (and retries waiting)
    motcua dead-letters show <queue> [--limit]  each parked message's event, error and history, its
                                                personal data redacted (it is sealed anyway)
    motcua dead-letters replay <queue> [--limit]  back to the queue, after the cause is fixed
    motcua dead-letters purge <queue>           delete them

    motcua data-keys rewrap                     intake's data keys re-wrapped from INTAKE_DATA_KEY to
                                                INTAKE_DATA_KEY_NEW (docs/intake.md: encrypted at rest)
    motcua audit verify                         the gateway's audit log checked link by link (its hash
                                                chain): the first broken link, or the head to note
    motcua audit rekey                          its chain re-linked from GATEWAY_AUDIT_KEY to
                                                GATEWAY_AUDIT_KEY_NEW (verified under the old key first)
    motcua history import FILE [--format csv|jsonl] [--batch N]
                                                the old system's dossiers (docs/history-format.md) into
                                                intake (INTAKE_DB_URL), their events through its outbox;
                                                bad rows listed with their line, the rest imported; exit 1
                                                when a row was refused

`<queue>` is the consumer's queue (`inbox.notify`, `tasks.000.00.18.H56`); `<queue>.dead` works too.
The broker is `AMQP_URI`'s; `list` asks RabbitMQ's management API (`MOTCUA_RABBIT_MANAGEMENT_URL`).

    motcua keys new                             a fresh 256-bit key (for MOTCUA_TRACKING_KEY and the others)
    motcua keys token-pair <private> <public>   a fresh Ed25519 pair for tokens, written to two PEM files
                                                (the private one readable by its owner only)
    motcua tokens system <agency code> [--days]  an agency system's token for its worker, signed with
                                                MOTCUA_TOKEN_SIGNING_KEY (the operator's; never a worker's)
    motcua tokens reporting [--days]             reporting's token for the national portal push
                                                (REPORTING_SERVICE_TOKEN), signed the same way
    motcua broker users [--vhost /] [--worker module:Class …]
                        each service's and worker's broker user with only its own permissions
                        (`motcua.broker_permissions`), as `rabbitmqctl` lines (passwords from
                        `<USER>_BROKER_PASSWORD` when run); --apply sets them through the management
                        API instead (as `AMQP_URI`'s user, an administrator)
    motcua broker definitions   compose's deploy/rabbitmq/definitions.json (demo passwords)
    motcua accounts add-admin <username>        a platform admin; its password typed (or one line on
                                                stdin), at least 8 characters
    motcua accounts remove-demo                 delete the demo accounts and any account with the demo
                                                password: production refuses to start while one exists

The accounts are the gateway's (`GATEWAY_DB_URL`); the demo accounts are named by `MOTCUA_CATALOG_DIR`.

    motcua catalog import --procedures FILE [--agencies FILE] --effective-from YYYY-MM-DD [--apply]
                        [--catalog-dir DIR] [--province NAME (a first import, into an empty DIR)]
                        a province's procedure list and agency list (.xlsx or .csv, as the national
                        procedure database publishes them) against `MOTCUA_CATALOG_DIR`: what is new,
                        changed, retired and unreadable (with rows); --apply writes it as new versions
                        (refused while a row is unreadable, unless --skip-unreadable). docs/adopting.md
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import warnings
from datetime import date, datetime, timedelta, timezone
from urllib.parse import quote, unquote, urlparse
from zoneinfo import ZoneInfo

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # eventlet announces its bug-fix-only mode (STACK.md); not news here
    from motcua import bus
from motcua.config import amqp_uri, catalog_dir, db_url, rabbit_management_url
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
            elif ".wait." in name:
                queue, kind = name.split(".wait.")[0], "retrying"
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


def _in_transaction(service: str, work):
    """`work(connection)` in one transaction on the service's database (`<SERVICE>_DB_URL`)."""
    from motcua.config import db_url
    from motcua.db import make_engine

    engine = make_engine(db_url(service))
    try:
        with engine.begin() as connection:
            return work(connection)
    finally:
        engine.dispose()


def rewrap_data_keys() -> int:
    """intake's data keys from the KEK of INTAKE_DATA_KEY to that of INTAKE_DATA_KEY_NEW, one transaction
    on INTAKE_DB_URL's database; the rows stay as they are."""
    from services.intake import sealing
    from services.intake.models import data_keys

    new_kek = sealing.new_environment_kek()
    count = _in_transaction("intake", lambda connection: sealing.rewrap(connection, data_keys,
                                                                        sealing.environment_kek(), new_kek))
    print(f"re-wrapped {count} data key(s) under {sealing.NEW_SETTING}: give intake (and its migrations) "
          f"{sealing.SETTING} = that value, and restart it")
    return 0


def verify_audit_log() -> int:
    """The gateway's audit log (GATEWAY_DB_URL) walked link by link under GATEWAY_AUDIT_KEY: 0 if intact,
    1 naming the first broken link."""
    from services.gateway import audit

    key = audit.chain_key()
    return _audit_verdict(_in_transaction("gateway", lambda connection: audit.verify(connection, key)))


def rekey_audit_log() -> int:
    """The gateway's audit chain re-linked from GATEWAY_AUDIT_KEY to GATEWAY_AUDIT_KEY_NEW (one transaction;
    refused, changing nothing, if it does not verify under the old key)."""
    from motcua.keys import replacement_setting
    from services.gateway import audit

    old, new = audit.chain_key(), replacement_setting(audit.NEW_KEY_SETTING)
    status = _audit_verdict(_in_transaction("gateway", lambda connection: audit.rekey(connection, old, new)))
    if status == 0:
        print(f"re-linked under {audit.NEW_KEY_SETTING}: give the gateways {audit.KEY_SETTING} = that value, "
              "and restart them")
    return status


def _audit_verdict(found: dict) -> int:
    if "broken_at" in found:
        broken = found["broken_at"]
        print(f"audit log BROKEN at row id {broken['id']} (link {broken['chain_seq']}): {found['why']}; the "
              f"{found['rows']} link(s) before it hold")
        return 1
    print(f"audit log intact: {found['rows']} row(s); head hash {found['head_hash'] or '-'} (note it "
          "elsewhere: a later run that still finds it shows no row was cut from the end)")
    return 0


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
    broker = commands.add_parser("broker", help="least-privilege broker users of the services and workers")
    broker_actions = broker.add_subparsers(dest="action", required=True)
    users = broker_actions.add_parser("users", help="rabbitmqctl lines (or --apply through the management API)")
    users.add_argument("--vhost", default="/")
    users.add_argument("--worker", action="append", metavar="MODULE:CLASS",
                       help="an agency's worker class (default: the example workers)")
    users.add_argument("--apply", action="store_true")
    broker_actions.add_parser("definitions", help="compose's RabbitMQ definitions (JSON)")
    accounts = commands.add_parser("accounts", help="staff accounts: the first admin, the demo accounts' removal")
    account_actions = accounts.add_subparsers(dest="action", required=True)
    account_actions.add_parser("add-admin", help="a platform admin, its password typed").add_argument("username")
    account_actions.add_parser("remove-demo", help="delete the demo accounts and the demo password's")
    data_keys = commands.add_parser("data-keys", help="intake's data keys (encryption at rest)")
    data_keys.add_subparsers(dest="action", required=True).add_parser(
        "rewrap", help="re-wrap them from INTAKE_DATA_KEY to INTAKE_DATA_KEY_NEW")
    audit_log = commands.add_parser("audit", help="the gateway's audit log")
    audit_actions = audit_log.add_subparsers(dest="action", required=True)
    audit_actions.add_parser("verify", help="check its hash chain; name the first broken link")
    audit_actions.add_parser("rekey", help="re-link it from GATEWAY_AUDIT_KEY to GATEWAY_AUDIT_KEY_NEW")
    key_commands = commands.add_parser("keys", help="make keys").add_subparsers(dest="action", required=True)
    key_commands.add_parser("new", help="print a fresh 256-bit key")
    pair = key_commands.add_parser("token-pair", help="write a fresh Ed25519 key pair for tokens")
    pair.add_argument("private_path")
    pair.add_argument("public_path")
    token_commands = commands.add_parser("tokens", help="make tokens").add_subparsers(dest="action", required=True)
    system = token_commands.add_parser("system", help="print an agency system's token for its worker")
    system.add_argument("agency_code")
    system.add_argument("--days", type=int, default=90)
    reporting = token_commands.add_parser("reporting", help="print reporting's token for the national portal push")
    reporting.add_argument("--days", type=int, default=90)
    history = commands.add_parser("history", help="the old system's dossiers (docs/history-format.md)")
    history_import = history.add_subparsers(dest="action", required=True).add_parser(
        "import", help="import a CSV or JSON Lines file of past dossiers into intake")
    history_import.add_argument("file")
    history_import.add_argument("--format", choices=("csv", "jsonl"), help="default: by the file's extension")
    history_import.add_argument("--batch", type=int, default=500, help="dossiers per transaction")
    catalog = commands.add_parser("catalog", help="the procedure catalogue and the agencies")
    catalog_import = catalog.add_subparsers(dest="action", required=True).add_parser(
        "import", help="a province's procedure and agency lists: the difference, then --apply")
    catalog_import.add_argument("--procedures", metavar="FILE", help="procedure list (.xlsx or .csv)")
    catalog_import.add_argument("--agencies", metavar="FILE", help="agency list (.xlsx or .csv)")
    catalog_import.add_argument("--effective-from", required=True, type=date.fromisoformat, metavar="YYYY-MM-DD")
    catalog_import.add_argument("--catalog-dir", default=None, help="default: MOTCUA_CATALOG_DIR")
    catalog_import.add_argument("--province", help="the province's name, on a first import (Tỉnh Thanh Hóa)")
    catalog_import.add_argument("--apply", action="store_true", help="write the new versions")
    catalog_import.add_argument("--skip-unreadable", action="store_true",
                                help="apply the rest; the unreadable rows' procedures stay as they are")
    catalog_import.add_argument("--json", action="store_true", help="the difference as JSON")
    args = parser.parse_args(argv)
    if args.command == "history":
        return history_command(args)
    if args.command == "catalog":
        return _catalog_import(args)
    if args.command == "broker":
        return _broker(args)
    if args.command == "accounts":
        return accounts_command(args)
    if args.command == "data-keys":
        return rewrap_data_keys()
    if args.command == "audit":
        return verify_audit_log() if args.action == "verify" else rekey_audit_log()
    if args.command == "keys":
        return _keys(args)
    if args.command == "tokens":
        return _system_token(getattr(args, "agency_code", None), args.days)
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


def _catalog_import(args) -> int:
    """The difference on stdout; 0 when applied or clean, 1 when rows are unreadable, 2 when refused."""
    from motcua.catalog import CatalogError
    from services.intake import catalog_import as importer

    if not args.procedures and not args.agencies:
        print("give --procedures FILE, --agencies FILE or both", file=sys.stderr)
        return 2
    directory = args.catalog_dir or catalog_dir()
    try:
        plan = importer.plan(
            directory, args.effective_from,
            importer.read_sheet(args.procedures) if args.procedures else None,
            importer.read_sheet(args.agencies, columns=importer.AGENCY_COLUMNS) if args.agencies else None,
            procedures_sheet=os.path.basename(args.procedures or ""),
            agencies_sheet=os.path.basename(args.agencies or ""), province=args.province)
        print(json.dumps(plan.view(), ensure_ascii=False, indent=1) if args.json else plan.report())
        if args.apply:
            importer.apply(plan, directory, skip_unreadable=args.skip_unreadable)
            print(f"applied to {directory}, effective from {args.effective_from:%d/%m/%Y}", file=sys.stderr)
            return 0
    except (CatalogError, OSError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    return 1 if plan.problems else 0


def _broker(args) -> int:
    from motcua import broker_permissions

    if args.action == "definitions":
        print(json.dumps(broker_permissions.definitions(broker_permissions.grants()), indent=2))
        return 0
    grants = broker_permissions.grants(tuple(args.worker or broker_permissions.EXAMPLE_WORKERS))
    if args.apply:
        parsed = urlparse(amqp_uri())
        broker_permissions.apply(grants, rabbit_management_url(), (unquote(parsed.username or "guest"),
                                                                   unquote(parsed.password or "guest")), args.vhost)
        print(f"{len(grants)} broker users set in vhost {args.vhost}: {', '.join(g.user for g in grants)}")
    else:
        print("\n".join(broker_permissions.rabbitmqctl_lines(grants, args.vhost)))
    return 0


def accounts_command(args) -> int:
    from services.gateway import accounts, users  # the gateway's, imported only for these commands
    from motcua.errors import MotcuaError

    if args.action == "remove-demo":
        removed = accounts.remove_demo_accounts(db_url("gateway"), catalog_dir())
        print(f"removed {len(removed)} account(s){': ' + ', '.join(removed) if removed else ''}")
        return 0
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    try:
        users.add_admin(db_url("gateway"), args.username, password)
    except MotcuaError as exc:
        print(f"refused: {exc.field or 'account'}: {exc.message}", file=sys.stderr)
        return 1
    print(f"created platform admin {args.username}")
    return 0


def history_command(args) -> int:
    """`motcua history import`: as an operator of intake (its database, its keys, its catalogue), each
    batch in one transaction with its outbox rows, published at once by a relay of this process."""
    from nameko.standalone.events import get_event_exchange
    from sqlalchemy.orm import Session

    from motcua.config import nameko_config
    from motcua.db import make_engine
    from motcua.outbox import CommitRelay
    from motcua.progress import progress
    from services.intake.catalog import Catalog
    from services.intake.history import Importer, format_of, import_rows, read_rows
    from services.intake.models import Base
    from services.intake.repository import IntakeUnitOfWork

    config = nameko_config(amqp_uri(), services=("intake",))
    catalog = Catalog.load(config.get("CATALOG_DIR") or str(catalog_dir()))
    importer = Importer(catalog, ZoneInfo(config["TIME_ZONE"]), config["TRACKING_KEY"], config["SEARCH_KEY"])
    engine = make_engine(db_url("intake"))
    relay = CommitRelay(config["AMQP_URI"], engine, Base.metadata, get_event_exchange("intake", config))
    try:
        with open(args.file, encoding="utf-8-sig", newline="") as file:
            lines = sum(1 for _ in file)
            file.seek(0)
            outcome = import_rows(
                importer, read_rows(file, args.format or format_of(args.file)),
                lambda: IntakeUnitOfWork(Session(engine), "intake", Base.metadata, on_commit=relay),
                batch_size=args.batch, on_progress=lambda line: progress("history import", line, lines))
        progress("history import", lines, lines)
    except (OSError, UnicodeDecodeError) as exc:
        # the batches before it are in (a second run after the fix skips them)
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    finally:
        relay.close()
        engine.dispose()
    for line, why in outcome.refused:
        print(f"line {line}: {why}", file=sys.stderr)
    print(f"imported {outcome.imported} dossier(s); {outcome.present} already there (skipped); "
          f"{len(outcome.refused)} row(s) refused"
          + (f"; {relay.unpublished} event(s) left for intake's relay to publish" if relay.unpublished else ""))
    return 1 if outcome.refused else 0


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


def _system_token(agency_code: str | None, days: int) -> int:
    """An agency system's token, or reporting's (no agency code) for the national portal push."""
    from motcua.config import token_settings
    from motcua.identity import portal_sync_token, system_token

    settings = token_settings(signs=True)
    if not 0 < days * 86400 <= settings["SYSTEM_TOKEN_MAX_SECONDS"]:
        print(f"--days must be between 1 and {settings['SYSTEM_TOKEN_MAX_SECONDS'] // 86400} "
              "(MOTCUA_SYSTEM_TOKEN_MAX_DAYS): services refuse a longer one", file=sys.stderr)
        return 2
    lifetime = timedelta(days=days)
    print(system_token(agency_code, settings["TOKEN_SIGNING_KEY"], lifetime) if agency_code
          else portal_sync_token(settings["TOKEN_SIGNING_KEY"], lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
