"""Run Motcua services.

  python -m motcua.run --embedded       all five in one process: SQLite under var/, in-process bus
  python -m motcua.run --services       each service its own process, on AMQP_URI and <SERVICE>_DB_URL
  python -m motcua.run intake workflow  the named services in this process
"""
from __future__ import annotations

import os

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")  # before psycopg is imported: STACK.md trap 1

import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # eventlet's notice that it is in bug-fix-only mode (STACK.md)
    import eventlet

eventlet.monkey_patch()

from motcua import pgwait  # noqa: E402

pgwait.install()  # psycopg asks the kernel before the hub (motcua/pgwait.py)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402

from motcua import keys, logs  # noqa: E402
from motcua.config import SERVICES, env, is_production, nameko_config, stop_grace_seconds  # noqa: E402
from motcua.identity import system_token  # noqa: E402

SERVICE_CLASSES = {
    "gateway": "services.gateway.service:GatewayService",
    "intake": "services.intake.service:IntakeService",
    "workflow": "services.workflow.service:WorkflowService",
    "notify": "services.notify.service:NotifyService",
    "reporting": "services.reporting.service:ReportingService",
}
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
# Agencies' own systems run beside the platform in the demo: (worker class, its agency).
EXAMPLE_WORKERS = (("workers.tax_office:TaxOfficeWorker", "000.00.18.H56"),)
YOUNG_COLLECTION_EVERY = 10_000  # tracked objects' net growth between young collections in a service (run())
log = logging.getLogger("motcua.run")


def service_class(name: str):
    return _import(SERVICE_CLASSES[name])


def _import(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def configure_logging(process_services: str = "") -> None:
    """JSON lines on stderr (motcua.logs; `MOTCUA_LOG_FORMAT=text` for a terminal), at MOTCUA_LOG_LEVEL."""
    logs.configure(env("MOTCUA_LOG_LEVEL", "INFO"), env("MOTCUA_LOG_FORMAT", "json"), process_services)
    for noisy in ("kombu", "amqp", "nameko", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The gateway's access log stays: ops read it, and its query strings are redacted (gateway/http.py).
    logging.getLogger("nameko.web.server").setLevel(logging.INFO)
    # fpdf2 warns about missing glyphs by quoting them: characters of an applicant's name.
    logging.getLogger("fpdf").setLevel(logging.ERROR)


def listening_ports(config: dict) -> list[tuple[str, str, int]]:
    """(the variable that sets it, host, port) of every port a process on `config` listens on."""
    ports = []
    if "WEB_SERVER_ADDRESS" in config:
        host, _, port = config["WEB_SERVER_ADDRESS"].rpartition(":")
        ports.append(("GATEWAY_ADDRESS", host or "0.0.0.0", int(port)))
    host = config.get("METRICS_HOST", "0.0.0.0")
    ports += [(f"{service.upper()}_METRICS_PORT", host, int(port))
              for service, port in config.get("METRICS_PORTS", {}).items()]
    return ports


def refuse_ports_in_use(config: dict) -> None:
    """Stop with one line naming the port and its variable when another process holds one of ours,
    before anything starts (nameko's own failure is a traceback, after migrations and half a start)."""
    for variable, host, port in listening_ports(config):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR as the real listener sets it (a port in TIME_WAIT is free); never SO_REUSEPORT,
            # with which a second Motcua would share the port with the first.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise SystemExit(f"motcua: port {port} ({host}) is already in use ({exc.strerror}): "
                                 f"stop what holds it or set {variable} to a free port") from None


def serve(names: list[str], config: dict) -> None:
    serve_classes([service_class(name) for name in names], config)


def serve_classes(classes: list, config: dict) -> None:
    """Run these nameko service classes in this process until SIGTERM or Ctrl-C."""
    from nameko.runners import ServiceRunner

    if config["AMQP_URI"].startswith("embedded"):
        from motcua import embedded
        embedded.install()
    runner = ServiceRunner(config)
    for cls in classes:
        runner.add_service(cls)
    names = ", ".join(cls.name for cls in classes)
    started = eventlet.event.Event()

    def stop_gracefully(signum):
        log.info("stopping %s (%s; a second signal stops at once)", names, signal.Signals(signum).name)
        # A stop racing the start makes nameko's start raise (QueueConsumerStopped) and the process
        # die with a traceback: the stop waits for the start, and the deadline bounds both.
        started.wait()
        runner.stop()

    StopSignals(
        stop_grace_seconds(),
        # Only schedule here: the handler runs inside whichever greenthread the signal interrupted,
        # and logging from there can trip eventlet's thread bookkeeping and lose the stop.
        on_stop=lambda signum: eventlet.spawn_n(stop_gracefully, signum),
        on_stop_now=lambda signum, why: exit_now(why, 128 + signum),
        on_deadline=lambda why: exit_now(why, 1),
    ).install()
    runner.start()
    # What the start made (modules, the catalogue, compiled schemas and statements) lives as long as the
    # process: frozen, the cyclic collector stops walking it again in every full collection.
    gc.collect()
    gc.freeze()
    # A young collection once 700 more tracked objects are alive than at the last one (CPython's
    # default) walks, each time, whatever of a message's short-lived objects is still alive: most die by
    # reference count a moment later. At 10,000 far fewer are walked for the same garbage found (cycles
    # wait a few ms longer to go). CPython 3.11's generational collector; 3.14's is incremental.
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
    started.send()
    log.info("running %s on %s", names, _safe_uri(config["AMQP_URI"]))
    runner.wait()


class StopSignals:
    """SIGTERM and SIGINT (Ctrl-C), answered alike by every Motcua process.

    The first signal asks for a graceful stop (`on_stop`, called inside the signal handler: it may
    only schedule) and arms a deadline: a stop still running `grace` seconds later ends with
    `on_deadline`. A second signal while stopping means "stop now" (`on_stop_now`): people press
    Ctrl-C twice and process managers repeat SIGTERM, and starting the graceful stop again is what
    hung the process (nameko stopped its timers twice and its stop never ended). Stopping at once
    costs what a SIGKILL costs, which the platform survives by design: unacknowledged messages go
    back to their queues and open transactions roll back.
    """

    def __init__(self, grace: float, on_stop, on_stop_now, on_deadline):
        self.grace = grace
        self.on_stop, self.on_stop_now, self.on_deadline = on_stop, on_stop_now, on_deadline
        self.stopping = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._received)
        signal.signal(signal.SIGINT, self._received)

    def _received(self, signum, _frame):
        name = signal.Signals(signum).name
        if self.stopping:
            self.on_stop_now(signum, f"{name} while stopping: stopping now")
            return
        self.stopping = True
        # A native thread, not a greenthread: the deadline must fire even if a stuck call blocks
        # eventlet's hub, which is when it is needed most.
        deadline = _native_threading.Timer(
            self.grace, self.on_deadline, args=(f"still stopping {self.grace:g} s after {name}: stopping now",))
        deadline.daemon = True
        deadline.start()
        self.on_stop(signum)


_native_threading = eventlet.patcher.original("threading")


def exit_now(why: str, status: int) -> None:
    """End the process at once. Called from a signal handler or the deadline's native thread, where
    taking the logging module's (green) locks could deadlock: one JSON line straight to stderr."""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "WARNING", "logger": "motcua.run",
            "message": f"{why} (exit {status})"}
    os.write(2, (json.dumps(line, ensure_ascii=False) + "\n").encode())
    os._exit(status)


def _safe_uri(uri: str) -> str:
    """The broker URI without its password, for logs."""
    if "@" not in uri:
        return uri
    scheme, _, rest = uri.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def example_worker_token(agency: str) -> str:
    """The example worker's token: the operator's (`MOTCUA_WORKER_TOKEN`, made with `motcua tokens system`);
    outside production, one made here with the signing key (deploy/dev's when unset), for a day."""
    given = env("MOTCUA_WORKER_TOKEN")
    if given:
        return given
    if is_production():
        raise SystemExit(f"MOTCUA_WORKER_TOKEN must be set when MOTCUA_ENV=production: an operator makes it "
                         f"with `motcua tokens system {agency}`")
    return system_token(agency, keys.pem_setting(keys.TOKEN_SIGNING_KEY), timedelta(days=1))


def embedded() -> None:
    from motcua import migrate, seed, simulators

    os.environ["AMQP_URI"] = "embedded://"
    simulators.start_configured()  # before the config is read: it points the connectors at them
    config = nameko_config("embedded://")
    refuse_ports_in_use(config)
    for name in SERVICES:
        migrate.upgrade(name)
    seed.seed_demo()
    print(seed.where_to_start(config["WEB_SERVER_ADDRESS"]), flush=True)
    # One process, so one token serves the example workers (each is scoped to its agency in production).
    [(worker, agency)] = EXAMPLE_WORKERS
    config["WORKER_TOKEN"] = example_worker_token(agency)
    serve_classes([*(service_class(name) for name in SERVICES), _import(worker)], config)


# A child's own deadline ends it at the grace period; the supervisor waits this much longer before killing.
CHILD_DEADLINE_MARGIN_SECONDS = 5


def services_in_processes() -> None:
    """One process per service, restarted if it dies; SIGTERM or Ctrl-C stops them all.

    Each child runs in its own session, so a Ctrl-C in the terminal reaches only this supervisor,
    which passes one SIGTERM to each child (the terminal's SIGINT and ours would make two: a stop
    now). A second signal kills the children at once; children still running past the grace
    period (plus a few seconds for their own deadline to act) are killed, and the exit is 1."""
    from motcua import migrate, seed, simulators

    os.environ.setdefault("AMQP_URI", DEFAULT_BROKER)
    simulators.start_configured()  # before the children read their config: it points the connectors at them
    refuse_ports_in_use(nameko_config())
    for name in SERVICES:
        migrate.upgrade(name)
    seed.seed_demo()
    children: dict[str, subprocess.Popen] = {}

    def kill_children_and_exit(why: str, status: int) -> None:
        # Not Popen.kill: it takes a green lock, and this runs in a signal handler or a native thread.
        # A child already reaped is skipped: its pid may belong to another process by now.
        for process in children.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
        exit_now(why, status)

    signals = StopSignals(stop_grace_seconds() + CHILD_DEADLINE_MARGIN_SECONDS, on_stop=lambda signum: None,
                          on_stop_now=lambda signum, why: kill_children_and_exit(why, 128 + signum),
                          on_deadline=lambda why: kill_children_and_exit(why, 1))
    signals.install()
    for name in SERVICES:
        children[name] = _spawn(name)
    for worker, agency in EXAMPLE_WORKERS:
        token = example_worker_token(agency)
        children[worker] = _spawn("--worker", worker, env={**os.environ, "MOTCUA_WORKER_TOKEN": token})
    print("Motcua services running as processes: "
          + ", ".join(f"{n} (pid {p.pid})" for n, p in children.items()), flush=True)
    print(seed.where_to_start(nameko_config()["WEB_SERVER_ADDRESS"]), flush=True)
    while True:
        time.sleep(1)
        if signals.stopping:
            break
        for name, process in list(children.items()):
            if process.poll() is not None:
                log.warning("%s exited with %s; restarting", name, process.returncode)
                children[name] = _spawn(*process.args[3:], env=process.env_for_restart)
    log.info("stopping %s (a second signal stops at once)", ", ".join(children))
    for process in children.values():
        process.terminate()
    failed = [name for name, process in children.items() if process.wait() != 0]
    if failed:
        log.warning("%s did not stop cleanly", ", ".join(failed))
        sys.exit(1)


def _spawn(*args: str, env: dict | None = None) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "motcua.run", *args], env=env, start_new_session=True)
    process.env_for_restart = env
    return process


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m motcua.run")
    parser.add_argument("services", nargs="*")
    parser.add_argument("--embedded", action="store_true")
    parser.add_argument("--services", dest="as_processes", action="store_true")
    parser.add_argument("--worker", action="append", default=[], metavar="MODULE:CLASS",
                        help="an agency's worker (motcua.worker SDK) to run in this process")
    args = parser.parse_args(argv)
    configure_logging(",".join(args.services) if args.services
                      else ",".join(args.worker) if args.worker else "platform" if args.embedded else "supervisor")
    if args.embedded:
        embedded()
    elif args.as_processes:
        services_in_processes()
    elif args.worker:
        os.environ.setdefault("AMQP_URI", DEFAULT_BROKER)
        # An agency's worker holds the broker's settings and its token, nothing of the services'.
        serve_classes([_import(path) for path in args.worker], nameko_config(services=()))
    else:
        unknown = set(args.services) - set(SERVICES)
        if not args.services or unknown:
            parser.error(f"name services among {', '.join(SERVICES)}")
        os.environ.setdefault("AMQP_URI", DEFAULT_BROKER)
        if "gateway" in args.services:
            from motcua import seed
            seed.check_accounts()
        config = nameko_config(services=args.services)
        refuse_ports_in_use(config)
        serve(args.services, config)


if __name__ == "__main__":
    main()
