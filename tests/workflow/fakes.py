"""Workflow's unit of work in memory: the rules and the service layer run against it as against the
database, with no database."""
from __future__ import annotations

from datetime import datetime

from motcua.fakes import FakeUnitOfWork
from services.workflow.process_run import ProcessRun


class FakeRunRepository:
    def __init__(self):
        self.runs: dict[str, ProcessRun] = {}

    def get(self, dossier_code: str) -> ProcessRun | None:
        return self.runs.get(dossier_code)

    def with_task(self, task_id: str) -> ProcessRun | None:
        return next((run for run in self.runs.values() if any(t.id == task_id for t in run.tasks)), None)

    def exists(self, dossier_code: str) -> bool:
        return dossier_code in self.runs

    def add(self, run: ProcessRun) -> None:
        self.runs[run.dossier_code] = run

    def save(self, *runs: ProcessRun) -> None:
        """The runs held here are the objects the rules changed: nothing to write."""

    def overdue(self, cutoff: datetime, limit: int) -> list[ProcessRun]:
        return [run for run in self.runs.values() if run.needs_flagging(cutoff)][:limit]


class FakeWorkflowUnitOfWork(FakeUnitOfWork):
    def __init__(self):
        super().__init__(source="workflow")
        self.runs = FakeRunRepository()

    def published(self, event_type: str | None = None, task_queues: bool = False) -> list[dict]:
        """The data of the committed events (of one type), once each; with `task_queues`, the copies
        sent to agencies' task queues instead."""
        return [e["data"] for e in self.events if (event_type is None or e["event_type"] == event_type)
                and (e["exchange"] is not None) == task_queues]
