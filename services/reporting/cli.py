"""Reporting's operator commands, on the database of REPORTING_DB_URL (default: var/reporting.db).

    python -m services.reporting.cli replay          rebuild every projection from the event store
    python -m services.reporting.cli sync [--reconcile]
                                                     push every due dossier to the national portal
                                                     (DVCQG_URL, DVCQG_USERNAME, DVCQG_PASSWORD; intake
                                                     answering on AMQP_URI), then optionally compare
                                                     every pushed one with the portal and re-push
    python -m services.reporting.cli sync --status   the re-send queue: counts and failing dossiers
"""
from __future__ import annotations

import argparse
from functools import partial
import json
from zoneinfo import ZoneInfo

from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from motcua.catalog import load_agencies
from motcua.config import catalog_dir, db_url, env, nameko_config
from motcua.db import UnitOfWork, make_engine, utcnow
from motcua.progress import progress
from services.reporting import dvcqg, projections
from services.reporting.models import Base, PortalPush


def unit_of_work(url: str) -> UnitOfWork:
    return UnitOfWork(sessionmaker(bind=make_engine(url), expire_on_commit=False)(), "reporting", Base.metadata)


def replay(url: str, zone: ZoneInfo) -> dict:
    uow = unit_of_work(url)
    try:
        return projections.rebuild_all(uow, zone, on_progress=lambda done, total: progress("replay", done, total))
    finally:
        uow.close()


def sync(url: str, zone: ZoneInfo, settings: dvcqg.PortalSettings, intake: dvcqg.IntakeRecords,
         officers: dvcqg.Officers, agency_names: dict[str, str], reconcile: bool = False) -> dict:
    """Queue the dossiers without a row, push everything due now (failures wait for their next attempt),
    and with `reconcile` compare every pushed dossier with the portal (repairs are pushed at once)."""
    uow, client = unit_of_work(url), dvcqg.PortalClient(settings)
    try:
        result = {"queued": dvcqg.queue_missing(uow, utcnow())}
        if reconcile:
            pushed = uow.session.scalar(select(func.count()).where(PortalPush.state == "pushed"))
            result["reconcile"] = dvcqg.reconcile(uow, client, zone, utcnow(), limit=max(pushed, 1))
        due = uow.session.scalar(select(func.count()).where(PortalPush.state == "pending",
                                                             PortalPush.next_attempt_at <= utcnow()))
        sent = {"pushed": 0, "retry": 0, "rejected": 0}
        while True:
            counts = dvcqg.push_due(uow, client, intake, officers, zone, agency_names, utcnow())
            for kind, count in counts.items():
                sent[kind] += count
            progress("sync", min(sum(sent.values()), due), due)
            if not any(counts.values()):
                return {**result, "sent": sent, "queue": dvcqg.counts_by_state(uow.session)}
    finally:
        client.close()
        uow.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.reporting.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("replay", "sync"))
    parser.add_argument("--db-url", default=db_url("reporting"))
    parser.add_argument("--reconcile", action="store_true", help="sync: also compare pushed dossiers with the portal")
    parser.add_argument("--status", action="store_true", help="sync: only show the re-send queue")
    args = parser.parse_args(argv)
    zone = ZoneInfo(env("MOTCUA_TZ", "Asia/Ho_Chi_Minh"))
    if args.command == "replay":
        print(json.dumps(replay(args.db_url, zone)))
    elif args.status:
        uow = unit_of_work(args.db_url)
        try:
            print(json.dumps(dvcqg.summary(uow.session), ensure_ascii=False, indent=1))
        finally:
            uow.close()
    else:
        settings = dvcqg.settings_from_env()
        if settings is None:
            parser.exit(2, "DVCQG_URL is not set: the national portal connector is off\n")
        names = {agency["code"]: agency["name"] for agency in load_agencies(catalog_dir())}
        token = dvcqg.caller_token()
        with ClusterRpcProxy(nameko_config()) as cluster:
            print(json.dumps(sync(args.db_url, zone, settings,
                                  partial(cluster.intake.national_portal_records, caller_token=token),
                                  partial(cluster.gateway.officers, caller_token=token), names,
                                  reconcile=args.reconcile)))


if __name__ == "__main__":
    main()
