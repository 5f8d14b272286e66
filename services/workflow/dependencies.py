"""Dependencies of the workflow service beyond Database: the catalogue, the clock, its own gauges,
and the SLA check's timer."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from nameko.amqp.publish import get_connection
from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from motcua.calendar import overdue_before
from motcua.config import is_production
from motcua.db import Database, utcnow
from motcua.metrics import Metrics
from motcua.worker import task_queue
from services.workflow import queries
from services.workflow.processes import load_processes


class ProcessCatalog(DependencyProvider):
    """Processes and the working calendar, loaded once at start: a broken file stops the service."""

    def setup(self):
        config = self.container.config
        self.catalog = load_processes(Path(config["CATALOG_DIR"]), config["TIME_ZONE"])

    def start(self):
        # Durable queues for agencies whose systems take steps: a task routed before their worker
        # first connects waits in the queue instead of being dropped by the exchange.
        with get_connection(self.container.config["AMQP_URI"]) as connection:
            channel = connection.default_channel
            for agency_code in sorted(self.catalog.system_agencies):
                task_queue(agency_code)(channel).declare()

    def get_dependency(self, worker_ctx):
        return self.catalog


class Clock(DependencyProvider):
    """Injects `now()` (aware UTC), shifted by the config's `CLOCK_OFFSET_SECONDS` (default 0).

    The offset lets a test run the real service days ahead (deadlines pass without waiting);
    production refuses any offset. Unit tests inject their own function instead.
    """

    def setup(self):
        offset = float(self.container.config.get("CLOCK_OFFSET_SECONDS", 0))
        if offset and is_production():
            raise SystemExit("CLOCK_OFFSET_SECONDS must be 0 when MOTCUA_ENV=production")
        self.offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        return utcnow() + self.offset

    def get_dependency(self, worker_ctx):
        return self.now


class SlaTimer(Timer):
    """`@timer` whose interval is the config's `SLA_CHECK_SECONDS` (default 20), so that a missed
    deadline is detected well within a minute."""

    def __init__(self, **kwargs):
        super().__init__(interval=None, **kwargs)

    def setup(self):
        self.interval = float(self.container.config.get("SLA_CHECK_SECONDS", 20))


sla_timer = SlaTimer.decorator


class WorkflowMetrics(Metrics):
    """The standard metrics plus tasks by status and open/overdue tasks per agency, read at scrape."""

    def setup(self):
        super().setup()
        database = next(d for d in self.container.dependencies if isinstance(d, Database))
        clock = next(d for d in self.container.dependencies if isinstance(d, Clock))
        tz = ZoneInfo(self.container.config["TIME_ZONE"])

        def read(count):
            def _read():
                with database.sessionmaker() as session:
                    return count(session)
            return _read

        self.metrics.gauge_from("motcua_tasks_by_status", "Tasks by status", ["status"],
                                read(queries.tasks_by_status))
        self.metrics.gauge_from("motcua_tasks_open", "Open tasks per agency", ["agency_code"],
                                read(queries.open_tasks_by_agency))
        self.metrics.gauge_from("motcua_tasks_overdue", "Open tasks past their step's due date, per agency",
                                ["agency_code"],
                                read(lambda session: queries.open_tasks_by_agency(
                                    session, overdue_before(clock.now(), tz))))
        self.metrics.gauge_from("motcua_tasks_oldest_open_seconds",
                                "Age of each agency's oldest open task (since it was assigned)", ["agency_code"],
                                read(lambda session: queries.oldest_open_task_by_agency(session, clock.now())))
