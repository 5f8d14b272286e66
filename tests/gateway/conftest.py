"""The gateway container alone over real HTTP, the services behind it replaced by mocks (one per module)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import replace_dependencies

import motcua.embedded
from motcua.config import catalog_dir, nameko_config
from services.gateway.accounts import seed_demo_accounts
from services.gateway.service import GatewayService
from tests.infra import free_port, migrated_sqlite_urls

AGENCY = "000.20.01.H56"
SERVICES = ("intake", "workflow", "notify", "reporting")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    motcua.embedded.install()
    urls = migrated_sqlite_urls(tmp_path_factory.mktemp("gateway"))
    seed_demo_accounts(urls["gateway"], catalog_dir())
    port = free_port()
    config = {**nameko_config("embedded://"), "DB_URLS": urls, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"}
    container = ServiceContainer(GatewayService, config)
    mocks = dict(zip(SERVICES, replace_dependencies(container, *SERVICES)))
    container.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", db_url=urls["gateway"],
                          config=config, container=container, **mocks)
    container.stop()


@pytest.fixture
def api(gateway):
    for name in SERVICES:
        getattr(gateway, name).reset_mock(return_value=True, side_effect=True)
    return gateway
