"""`make chaos`: N dossiers through their whole life on two instances of every service, faults injected
at random moments under load, then one table of what held and what did not (figures also in JSON).

    make chaos                      2,000 dossiers (N=10000 for the full run)
    python -m chaos --dossiers 300 --outage 20 20 --seed 7     the short run `make test` runs

Expected: 0 stuck, 0 lost, 0 duplicated, 0 parked beyond the injected poison, 0 unsent, report = truth.
"""
from __future__ import annotations

import os

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench import figures as bench_figures  # noqa: E402
from bench.compare import machine  # noqa: E402
from chaos import audit, faults  # noqa: E402
from chaos.load import Load, PatientApi  # noqa: E402
from chaos.stack import Stack  # noqa: E402
from motcua.config import ROOT  # noqa: E402


def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dossiers", type=int, default=2000, help="dossiers through the lifecycle (2000)")
    parser.add_argument("--concurrency", type=int, default=12, help="client threads (12)")
    parser.add_argument("--seed", type=int, default=None, help="the fault plan's seed (random, printed)")
    parser.add_argument("--outage", type=float, nargs=2, default=(20.0, 60.0), metavar=("MIN", "MAX"),
                        help="seconds each service's database refuses connections (20 60)")
    parser.add_argument("--every-instance", action="store_true",
                        help="SIGKILL every instance (default: one instance of each service)")
    parser.add_argument("--patience", type=float, default=300.0,
                        help="seconds a client retries one call, and waits for one step of a dossier (300)")
    parser.add_argument("--quiet-timeout", type=float, default=300.0,
                        help="seconds to wait for quiescence after the load (300)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (var/chaos/<time>)")
    return parser.parse_args(argv)


def run(argv=None) -> dict:
    args = parse(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    out = (args.out or ROOT / "var" / "chaos" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"chaos: seed {seed}, {args.dossiers} dossiers at concurrency {args.concurrency}, output {out}", flush=True)
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "seed": seed, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    with Stack(out) as stack:
        plan = faults.plan(random.Random(seed), stack.services.names, tuple(args.outage), args.every_instance)
        for fault in plan:
            print(f"  at {fault.at:5.1%} of submissions: {fault.name}", flush=True)
        load = Load(PatientApi(stack.services.base_urls, args.patience), args.dossiers, args.concurrency,
                    args.patience)
        fired: list[dict] = []
        injector = threading.Thread(target=inject_all, args=(stack, load, plan, fired), daemon=True)
        started = time.monotonic()
        injector.start()
        load.run()
        loaded = time.monotonic()
        injector.join()
        results["load_s"] = round(loaded - started, 1)
        quiet = wait_quiet(stack, load, args.quiet_timeout)
        results["quiescence_s"] = quiet
        for fault in fired:  # the first step of any dossier after the fault ended
            ended = fault.pop("ended")
            later = [t for t in load.steps if t > ended]
            fault["progress_after_s"] = round(min(later) - ended, 1) if later else None
        results.update(figures(stack, load, fired))
        results["stop"] = {"did_not_stop_in_grace": stack.stop()}
    results["logs"] = audit.logs(out)
    (out / "figures.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str))
    print("\n" + table(results))
    print(f"\nfigures: {out}/figures.json; logs: {out}/*.log")
    return results


def inject_all(stack: Stack, load: Load, plan: list[faults.Fault], fired: list[dict]) -> None:
    """Each fault, in a thread of its own, once the load has submitted its share of dossiers (so a
    database outage may overlap a kill, as faults do); returns when all are over."""
    threads = []
    for fault in plan:
        while load.submitted < fault.at * load.count and load.finished < load.count:
            time.sleep(0.2)
        thread = threading.Thread(target=inject, args=(stack, load, fault, fired), daemon=True)
        thread.start()
        threads.append(thread)
        time.sleep(1.0)  # never two at the same instant
    for thread in threads:
        thread.join()


def inject(stack: Stack, load: Load, fault: faults.Fault, fired: list[dict]) -> None:
    """One fault, then the time until every instance answers its /health again."""
    under_load = load.finished < load.count
    print(f"\nchaos: {fault.name} ({load.submitted} submitted, {load.finished} finished)", flush=True)
    begun = time.monotonic()
    try:
        details = fault.inject(stack)
    except Exception as exc:  # a fault the harness could not inject is reported, not hidden
        details = {"failed_to_inject": f"{type(exc).__name__}: {exc}"}
    ended = time.monotonic()
    answered, left = None, {}
    while time.monotonic() - ended < 180:
        left = stack.unhealthy()
        if not left:
            answered = round(time.monotonic() - ended, 1)
            break
        time.sleep(0.25)
    fired.append({"fault": fault.name, "under_load": under_load, "took_s": round(ended - begun, 1),
                  "answers_after_s": answered, "still_unhealthy": left, **details, "ended": ended})


def pending_work(stack: Stack) -> dict:
    # Parked messages are counted apart; a reply queue's leftovers are answers nobody waits for any more
    # (a caller killed or timed out), not work: the queue expires on its own.
    queues = {q: n for q, n in stack.broker.queues().items()
              if n and not q.endswith(".dead") and not q.startswith("rpc.reply-")}
    unsent = {s: n for s, n in audit.outbox_unsent(stack).items() if n}
    return {"queues": queues, "outbox_unsent": unsent}


def wait_quiet(stack: Stack, load: Load, timeout: float, settle: float = 5.0) -> dict:
    """Until no queue holds a message and no outbox row is unsent, `settle` seconds in a row."""
    begun = time.monotonic()
    calm_since = None
    last = {}
    while time.monotonic() - begun < timeout:
        try:
            last = pending_work(stack)
        except Exception as exc:  # the broker or a database still away
            last = {"error": f"{type(exc).__name__}: {exc}"}
        if not any(last.values()):
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= settle:
                return {"reached": True, "after_s": round(time.monotonic() - begun, 1)}
        else:
            calm_since = None
        time.sleep(1)
    return {"reached": False, "after_s": round(time.monotonic() - begun, 1), "pending": last}


def figures(stack: Stack, load: Load, fired: list[dict]) -> dict:
    returned = audit.returned_codes(stack)
    stuck = audit.stuck(stack, load, returned)
    parked = audit.parked(stack)
    return {
        "dossiers": {"planned": load.count, "submitted": load.submitted,
                     "returned": sum(1 for d in load.dossiers if d.code in returned),
                     "stuck": len(stuck), "stuck_where": stuck[:50],
                     # the client gave up on them or was refused (e.g. a retried command answered 409)
                     "client_failed": sum(1 for d in load.dossiers if d.error),
                     "client_errors": sorted({d.error[:160] for d in load.dossiers if d.error})[:10]},
        "duplicates": audit.duplicates(stack, load),
        "code_gaps": audit.code_gaps(stack),
        "lost_events": audit.lost_events(stack, parked.pop("reporting_event_ids")),
        "parked": parked,
        "outbox_unsent": audit.outbox_unsent(stack),
        "report_vs_truth": audit.report_vs_truth(stack),
        "faults": fired,
        "peak_queue_depth": dict(stack.peak_depth),
        "unexpected_exits": stack.unexpected_exits,
        "client": {"retries": dict(load.api.retries), "refused_although_done": dict(load.api.late_refusals)},
    }


def zeros(results: dict) -> dict[str, int]:
    """The figures the issue expects to be zero, by name."""
    duplicates = results["duplicates"]
    return {
        "stuck dossiers": results["dossiers"]["stuck"],
        "dossiers whose client failed (gave up, refused)": results["dossiers"]["client_failed"],
        "commands answered 409 although they took effect":
            sum(results["client"]["refused_although_done"].values()),
        **{f"duplicate {kind.replace('_', ' ')}": n for kind, n in duplicates.items() if kind != "examples"},
        "gaps in dossier codes": results["code_gaps"]["total"],
        "lost events": results["lost_events"]["total"],
        "parked beyond the injected poison": results["parked"]["beyond_poison"],
        "injected poison not parked": sum(results["parked"]["poison_not_parked"].values()),
        "outbox rows unsent": sum(results["outbox_unsent"].values()),
        "report vs truth (differences)": results["report_vs_truth"]["difference"],
        "instances that exited on their own": len(results["unexpected_exits"]),
        "faults after which an instance stayed unhealthy 180 s": sum(1 for f in results["faults"]
                                                                     if f["still_unhealthy"]),
        "poison bodies in logs": results["logs"]["counts"]["poison_bodies_logged"],
        "instances that did not stop in grace": len(results["stop"]["did_not_stop_in_grace"]),
    }


def table(results: dict) -> str:
    dossiers = results["dossiers"]
    rows = [["dossiers submitted / returned / stuck",
             f"{dossiers['submitted']} / {dossiers['returned']} / {dossiers['stuck']}", "– / all / 0"]]
    for name, value in zeros(results).items():
        rows.append([name, str(value), "0"])
    truth = results["report_vs_truth"]["rows"]
    rows.append(["report vs intake (received, resolved, open, dossiers)",
                 ", ".join(f"{r['report']}/{r['truth']}" for r in truth.values()), "equal"])
    peak = results["peak_queue_depth"]
    rows.append(["peak queue depth (all queues; one queue)",
                 f"{peak['total']}; {peak['queue_depth']} {peak['queue']}", ""])
    rows.append(["quiescent after the load", str(results["quiescence_s"].get("after_s")) + " s" +
                 ("" if results["quiescence_s"]["reached"] else " (NOT reached)"), ""])
    parts = [f"CHAOS: {dossiers['planned']} dossiers, seed {results['seed']}, load {results['load_s']} s, "
             f"{results['machine']}, {results['date']}",
             bench_figures.table("", ["figure", "measured", "expected"], rows)]
    fault_rows = [[f["fault"], f"{f['took_s']}", _s(f["answers_after_s"]), _s(f["progress_after_s"]),
                   "" if f["under_load"] else "after the load",
                   ", ".join(sorted(f["still_unhealthy"])) or f.get("failed_to_inject", "")[:60]]
                  for f in results["faults"]]
    parts.append(bench_figures.table("", ["fault", "lasted s", "all healthy after s", "progress after s", "",
                                          "still unhealthy"], fault_rows))
    for where in dossiers["stuck_where"][:10]:
        parts.append(f"  stuck: {where}")
    return "\n".join(parts)


def _s(value) -> str:
    return "never" if value is None else f"{value}"


def main(argv=None) -> None:
    # SIGTERM unwinds like Ctrl-C: the stack, the broker and the databases are stopped and dropped.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    results = run(argv)
    failed = {name: value for name, value in zeros(results).items() if value}
    raise SystemExit(1 if failed or results["dossiers"]["stuck"] else 0)
