"""The Notifier as a nameko dependency, and notify's scheduler: a managed greenthread that runs a
dispatch round whenever something may be due (a new plan, a re-send, a retry's or a lease's time,
a receipt deadline) and otherwise sleeps."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

from nameko.extensions import DependencyProvider

from motcua.backoff import backoff
from motcua.db import Database
from motcua.metrics import metrics_for
from services.notify.domain import Notifier, NotifyMetrics
from services.notify.repository import DeliveryRepository
from services.notify.settings import load_agency_offices, load_settings

log = logging.getLogger(__name__)


class Notifications(DependencyProvider):
    def setup(self):
        config = self.container.config
        database = next(d for d in self.container.dependencies if isinstance(d, Database))
        metrics = metrics_for(self.container)
        # A broken template or setting stops the service here, naming the file and line.
        settings = load_settings(config, metrics.registry)
        agency_names, agency_emails = load_agency_offices(Path(config["CATALOG_DIR"]))
        self.notifier = Notifier(
            settings=settings, unit_of_work=lambda: database.unit_of_work(),  # providers set up in any order
            sender=config["SMTP"]["sender"],
            tz=ZoneInfo(config["TIME_ZONE"]), secret=config["SEARCH_KEY"].encode(),
            metrics=NotifyMetrics(metrics.registry),
            agency_names=agency_names, agency_emails=agency_emails)
        self._wakeup = threading.Event()  # green once eventlet has patched threading
        self.notifier.wake = self._wakeup.set
        self._running = False
        self._thread = None

        def dead_letters():
            with database.sessionmaker() as session:  # at scrape time, long after setup
                return DeliveryRepository(session).open_dead_letters()

        metrics.gauge_from("motcua_notification_dead_letters_open", "Dead-lettered messages awaiting a re-send",
                           ["channel"], dead_letters)
        log.info("notify sends email through %r, SMS through %r, %d agency webhook(s)",
                 settings.email, settings.sms, len(settings.webhooks))

    def start(self):
        self._running = True
        self._thread = self.container.spawn_managed_thread(self._run, identifier="notify-scheduler")

    def _run(self):
        # Asleep with nothing due that it knows of, the scheduler still looks every `poll_seconds`:
        # for rows another notify instance planned, or scheduled, and died before sending.
        ceiling = self.notifier.settings.poll_seconds
        failures = 0
        while self._running:
            try:
                self.notifier.dispatch()
                failures = 0
                at = self.notifier.next_round_at
                pause = ceiling if at is None else min(ceiling, (at - self.notifier.clock()).total_seconds())
            except Exception:  # the database briefly away: log the kind, try again after a backoff
                failures += 1
                log.exception("notify scheduler round failed (%d in a row)", failures)
                pause = backoff(failures, 0.5, ceiling)
            if pause > 0:
                self._wakeup.wait(pause)
                self._wakeup.clear()

    def stop(self):
        self._running = False
        self._wakeup.set()
        if self._thread is not None:
            self._thread.wait()
            self._thread = None

    def kill(self):
        self._running = False
        if self._thread is not None:
            self._thread.kill()
            self._thread = None

    def get_dependency(self, worker_ctx):
        return self.notifier
