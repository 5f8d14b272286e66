"""Intake's dependency providers: the catalogue and rules, loaded once per container; the postal service."""
from __future__ import annotations

from nameko.extensions import DependencyProvider

from motcua.calendar import WorkingCalendar
from motcua.config import catalog_dir
from motcua.db import Database
from motcua.metrics import metrics_for
from services.intake import postal
from services.intake.blobs import blob_store
from services.intake.catalog import Catalog
from services.intake.dossiers import Policy
from services.intake.repository import ShipmentRepository
from services.intake.sealing import environment_data_keys


class Rules(DependencyProvider):
    """The catalogue, the working calendar and the keys: read at setup, shared by workers."""

    def setup(self):
        config = self.container.config
        directory = config.get("CATALOG_DIR") or str(catalog_dir())
        calendar = WorkingCalendar.from_yaml(f"{directory}/calendar.yaml", tz=config["TIME_ZONE"])
        self.policy = Policy(Catalog.load(directory), calendar, config["TRACKING_KEY"], config["SEARCH_KEY"],
                             blob_store(config))
        # Read INTAKE_DATA_KEY now: production refuses to start without a strong one, not at the first dossier.
        environment_data_keys()

    def get_dependency(self, worker_ctx):
        return self.policy


class PostalService(DependencyProvider):
    """The postal service's client, or None when the connector is off (config `POSTAL`, else POSTAL_URL
    unset); its metrics on the service's registry, `motcua_postal_shipments{kind,state}` at each scrape."""

    def setup(self):
        settings = self.container.config.get("POSTAL")
        self.settings = postal.PostalSettings(**settings) if settings else postal.settings_from_env()
        registry = metrics_for(self.container)
        self.metrics = postal.PostalMetrics(registry.registry)
        self.client = postal.PostalClient(self.settings, self.metrics) if self.settings else None
        registry.gauge_from("motcua_postal_shipments", "Shipments by kind and state (owed, ordered, rejected)",
                            ["kind", "state"], self._read)

    def _read(self) -> dict[tuple, float]:
        database = next(d for d in self.container.dependencies if isinstance(d, Database))
        with database.sessionmaker() as session:
            return dict(ShipmentRepository(session).counts())

    def stop(self):
        if self.client:
            self.client.close()

    def get_dependency(self, worker_ctx):
        return self.client
