"""Demo data: the catalogue is read from deploy/catalog at start; staff accounts are seeded here."""
from __future__ import annotations

import logging

from motcua.config import catalog_dir, db_url, is_production

log = logging.getLogger(__name__)


def seed_demo() -> None:
    if is_production():
        log.info("MOTCUA_ENV=production: demo accounts are not seeded")
        return
    from services.gateway.accounts import seed_demo_accounts

    created = seed_demo_accounts(db_url("gateway"), catalog_dir())
    log.info("demo accounts ready (%d new)", created)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    seed_demo()
