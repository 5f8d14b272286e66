"""Intake's dependency providers: the catalogue and rules, loaded once per container; the postal service."""
from __future__ import annotations

from nameko.extensions import DependencyProvider

from motcua.calendar import WorkingCalendar
from motcua.config import catalog_dir
from motcua.metrics import metrics_for
from services.intake import postal
from services.intake.blobs import blob_store
from services.intake.catalog import Catalog
from services.intake.dossiers import Policy
from services.intake.payments import PaymentMetrics, PaymentSettings, PlatformAdapter
from services.intake.sealing import environment_data_keys
from services.intake.signing import (CscClient, CscSigner, DocumentSigner, SigningMetrics, SigningSettings,
                                     load_trust_roots, verify_pdf)


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


class PostalService(DependencyProvider):
    """The postal service's client, or None when the connector is off (config `POSTAL`, else POSTAL_URL
    unset); its metrics on the service's registry (the shipments' gauge: IntakeService.shipments_by_state)."""

    def setup(self):
        settings = self.container.config.get("POSTAL")
        self.settings = postal.PostalSettings(**settings) if settings else postal.settings_from_env()
        registry = metrics_for(self.container)
        self.metrics = postal.PostalMetrics(registry.registry)
        self.client = postal.PostalClient(self.settings, self.metrics) if self.settings else None

    def stop(self):
        if self.client:
            self.client.close()

    def get_dependency(self, worker_ctx):
        return self.client


class Signing(DependencyProvider):
    """Ký số: the result signer (None when INTAKE_SIGNING=off) and the public verification, configured
    at setup, so a bad setting or the test CA in production stops the service before its first call."""

    def setup(self):
        settings = SigningSettings.from_env()
        self.trust_roots = load_trust_roots(settings.trust_roots)
        self.metrics = SigningMetrics(metrics_for(self.container).registry)
        self.signer: DocumentSigner | None = (
            CscSigner(CscClient(settings), self.trust_roots, self.metrics) if settings.mode == "csc" else None)

    def verify(self, pdf: bytes) -> dict:
        """Every signature of `pdf` checked against the trust roots, counted by its bottom line."""
        answer = verify_pdf(pdf, self.trust_roots)
        for signature in answer["signatures"] or [{"valid": None}]:
            result = {True: "valid", False: "invalid", None: "unsigned"}[signature["valid"]]
            self.metrics.verifications.labels(result).inc()
        return answer

    def get_dependency(self, worker_ctx):
        return self


class Payments(DependencyProvider):
    """Thanh toán trực tuyến: the national payment platform's adapter (None when INTAKE_PAYMENT_URL is
    unset: the counter's cash confirmation only) and the connection's metrics."""

    def setup(self):
        self.settings = PaymentSettings.from_env()
        self.platform = PlatformAdapter(self.settings) if self.settings else None
        self.refund_on = self.settings.refund_on if self.settings else frozenset()
        self.metrics = PaymentMetrics(metrics_for(self.container).registry)

    def get_dependency(self, worker_ctx):
        return self
