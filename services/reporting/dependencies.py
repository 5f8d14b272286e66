"""Reporting's dependency providers: the province (agencies, time zone), the status gauge and the
national portal (DVCQG) client."""
from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from nameko.extensions import DependencyProvider

from motcua.catalog import load_agencies
from motcua.config import catalog_dir
from motcua.db import Database
from motcua.metrics import metrics_for
from services.reporting import dvcqg
from services.reporting.projections import counts_by_status


@dataclass(frozen=True)
class ProvinceData:
    zone: ZoneInfo
    agency_names: dict[str, str]
    parents: dict[str, str | None] = field(default_factory=dict)  # the agency tree: code → parent code


class Province(DependencyProvider):
    """The agencies' names and the province's time zone, read once at setup."""

    def setup(self):
        config = self.container.config
        agencies = load_agencies(config.get("CATALOG_DIR") or catalog_dir())
        self.data = ProvinceData(ZoneInfo(config["TIME_ZONE"]),
                                 {agency["code"]: agency["name"] for agency in agencies},
                                 {agency["code"]: agency["parent_code"] for agency in agencies})

    def get_dependency(self, worker_ctx):
        return self.data


class StatusGauge(DependencyProvider):
    """`motcua_dossiers_by_status{status}`, read from dossier_facts at each scrape."""

    def setup(self):
        metrics_for(self.container).gauge_from(
            "motcua_dossiers_by_status", "Dossiers by current status", ["status"], self._read)

    def _read(self) -> dict[tuple, float]:
        with _database(self.container).sessionmaker() as session:
            return {(status, ): count for status, count in counts_by_status(session).items()}


def _database(container) -> Database:
    return next(d for d in container.dependencies if isinstance(d, Database))


class NationalPortal(DependencyProvider):
    """The DVCQG client, or None when the connector is off (config `DVCQG`, else DVCQG_URL unset);
    `motcua_dvcqg_pushes{state}` counts the re-send queue at each scrape, and only while the connector is
    on: pushes "pending" forever while sync is off would page someone for a feature nobody runs; the
    client counts its calls (`dvcqg.PortalMetrics`)."""

    def setup(self):
        settings = self.container.config.get("DVCQG")
        self.settings = dvcqg.PortalSettings(**settings) if settings else dvcqg.settings_from_env()
        registry = metrics_for(self.container)
        self.client = (dvcqg.PortalClient(self.settings, dvcqg.PortalMetrics(registry.registry))
                       if self.settings else None)
        if self.client is None:
            return
        registry.gauge_from(
            "motcua_dvcqg_pushes", "National portal pushes by state (pending, pushed, rejected)", ["state"],
            self._read)

    def _read(self) -> dict[tuple, float]:
        with _database(self.container).sessionmaker() as session:
            return {(state, ): count for state, count in dvcqg.counts_by_state(session).items()}

    def stop(self):
        if self.client:
            self.client.close()

    def get_dependency(self, worker_ctx):
        return self.client
