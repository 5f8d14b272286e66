"""Intake's dependency providers: the catalogue and rules, loaded once per container."""
from __future__ import annotations

from nameko.extensions import DependencyProvider

from motcua.calendar import WorkingCalendar
from motcua.config import catalog_dir
from services.intake.blobs import blob_store
from services.intake.catalog import Catalog
from services.intake.dossiers import Policy
from services.intake.sealing import environment_data_keys


class Rules(DependencyProvider):
    """The catalogue, the working calendar and the keys: read at setup, shared by workers."""

    def setup(self):
        config = self.container.config
        directory = config.get("CATALOG_DIR") or str(catalog_dir())
        calendar = WorkingCalendar.from_yaml(f"{directory}/calendar.yaml", tz=config["TIME_ZONE"])
        self.policy = Policy(Catalog.load(directory), calendar, config["TRACKING_KEY"], config["SEARCH_KEY"],
                             blob_store(config), catalog_dir=directory)
        # Read INTAKE_DATA_KEY now: production refuses to start without a strong one, not at the first dossier.
        environment_data_keys()

    def get_dependency(self, worker_ctx):
        return self.policy
