"""Schema migrations (alembic), run as a step: `python -m motcua.migrate all` or a service name.

`python -m motcua.migrate revision intake -m "what changed"` autogenerates a new revision.
"""
from __future__ import annotations

import argparse
import importlib
import logging

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
    parser.add_argument("action", nargs="?", default="upgrade", choices=["upgrade", "revision", "check"])
    parser.add_argument("services", nargs="*", default=["all"])
    parser.add_argument("-m", "--message", default="change")
    args = parser.parse_args(argv)
    services = [s for s in SERVICES] if args.services in (["all"], []) else args.services
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
