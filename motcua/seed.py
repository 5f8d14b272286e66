"""Demo data: the catalogue is read from deploy/catalog at start; staff accounts are seeded here."""
from __future__ import annotations

import logging

from motcua.config import catalog_dir, db_url, is_production

log = logging.getLogger(__name__)


def seed_demo() -> None:
    """Development: the demo accounts. Production: none seeded, and none may be left (`check_accounts`)."""
    if is_production():
        log.info("MOTCUA_ENV=production: demo accounts are not seeded")
        check_accounts()
        return
    from services.gateway.accounts import seed_demo_accounts

    created = seed_demo_accounts(db_url("gateway"), catalog_dir())
    log.info("demo accounts ready (%d new)", created)


def where_to_start(address: str) -> str:
    """What `make run` prints once it serves: where each audience's pages are and how to sign in."""
    base = "http://" + address.replace("0.0.0.0", "localhost")
    if is_production():
        accounts = "no demo accounts in production: sign in with the accounts you created (motcua accounts add-admin)"
    else:
        from services.gateway.accounts import how_to_sign_in

        accounts = how_to_sign_in(catalog_dir())
    return "\n".join([
        f"Motcua is serving on {base} (stop with Ctrl-C)",
        f"  portal (citizens: procedures, submission, tracking)  {base}/",
        f"  console (staff sign-in)                              {base}/can-bo/dang-nhap",
        f"  dashboard (leaders)                                  {base}/lanh-dao",
        f"  API                                                  {base}/api/v1",
        f"  sign in: {accounts}",
    ])


def check_accounts() -> None:
    """Before the gateway starts in production: stop (saying how to remove them) while a demo account
    or the demo password is left in its database, e.g. seeded in development before the switch."""
    if is_production():
        from services.gateway.accounts import refuse_demo_accounts

        refuse_demo_accounts(db_url("gateway"), catalog_dir())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    seed_demo()
