"""Schema migrations (alembic), run as a step: `python -m motcua.migrate all` or a service name.

`python -m motcua.migrate wait <service>` waits until the database is at this release's head (a pod's
init container, while the release's migration job runs: deploy/k8s).

`python -m motcua.migrate revision intake -m "what changed"` autogenerates a new revision.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time

from alembic import command
from alembic.config import Config

from motcua.config import ROOT, SERVICES, db_url

log = logging.getLogger(__name__)


def alembic_config(service: str, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    config.set_main_option("sqlalchemy.url", (url or db_url(service)).replace("%", "%%"))
    config.attributes["service"] = service
    return config


def upgrade(service: str, url: str | None = None) -> None:
    command.upgrade(alembic_config(service, url), "head")


def schema_ready(service: str, url: str | None = None) -> bool:
    """Is `service`'s database at this release's head (or ahead of it: a newer release migrated it and
    this one was rolled back)? False while it is behind or cannot be reached."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    script = ScriptDirectory.from_config(alembic_config(service, url))
    engine = create_engine(url or db_url(service), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except Exception as exc:  # not reachable yet: the migration job may still be creating it
        log.warning("%s: database not reachable (%s)", service, type(exc).__name__)
        return False
    finally:
        engine.dispose()
    known = {revision.revision for revision in script.walk_revisions()}
    return current == set(script.get_heads()) or bool(current - known)


def wait_for_schema(services: list[str], timeout: float, interval: float = 2.0) -> bool:
    """Wait until every service's schema is ready (`schema_ready`): what a new pod runs before it starts,
    while the release's migration job upgrades the database (deploy/k8s)."""
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending:
        pending = [service for service in pending if not schema_ready(service)]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return not pending


def _render_item(type_, obj, autogen_context):
    """Migrations name plain SQL types, not the kit's Python-side decorators."""
    from motcua.db import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_env(context) -> None:
    """The body of every service's migrations/env.py."""
    from sqlalchemy import engine_from_config, pool

    config = context.config
    service = config.attributes.get("service") or config.get_main_option("script_location").split("/")[-2]
    metadata = importlib.import_module(f"services.{service}.models").Base.metadata
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                          literal_binds=True, render_as_batch=True, render_item=_render_item)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}) or
                                {"sqlalchemy.url": config.get_main_option("sqlalchemy.url")},
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                          compare_type=True, render_item=_render_item)
        with context.begin_transaction():
            context.run_migrations()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m motcua.migrate")
    parser.add_argument("action", nargs="?", default="upgrade", choices=["upgrade", "revision", "check", "wait"])
    parser.add_argument("services", nargs="*", default=["all"])
    parser.add_argument("-m", "--message", default="change")
    parser.add_argument("--timeout", type=float, default=900, help="wait: seconds before giving up (exit 1)")
    args = parser.parse_args(argv)
    services = [s for s in SERVICES] if args.services in (["all"], []) else args.services
    if args.action == "wait":
        if not wait_for_schema(services, args.timeout):
            sys.exit(f"the schema of {', '.join(services)} is not at this release's head after {args.timeout:g}s: "
                     "has the migration job run?")
        print(f"schema ready: {', '.join(services)}")
        return
    for service in services:
        config = alembic_config(service)
        if args.action == "upgrade":
            command.upgrade(config, "head")
            print(f"migrated {service}")
        elif args.action == "revision":
            command.revision(config, message=args.message, autogenerate=True)
        else:
            command.check(config)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
