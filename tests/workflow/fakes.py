"""Workflow's unit of work in memory: the rules and the service layer run against it as against the
database, with no database."""
from __future__ import annotations

from datetime import date, datetime

from motcua.calendar import Decision
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

    def with_open_steps_spanning(self, start: datetime, end: datetime) -> list[ProcessRun]:
        return [run for code, run in sorted(self.runs.items())
                if any(t.is_open and t.assigned_at < end and t.due_at >= start for t in run.tasks)]


class FakeCalendarDecisions:
    def __init__(self):
        self.decisions: dict[date, tuple[Decision, bool]] = {}

    def recorded(self) -> list[tuple[Decision, bool]]:
        return [self.decisions[day] for day in sorted(self.decisions)]

    def record(self, decision: Decision, decided_year: bool, decided_by: str, decided_at: datetime) -> None:
        self.decisions[decision.date] = (decision, decided_year)


class FakeWorkflowUnitOfWork(FakeUnitOfWork):
    def __init__(self):
        super().__init__(source="workflow")
        self.runs = FakeRunRepository()
        self.calendar = FakeCalendarDecisions()

    def published(self, event_type: str | None = None, task_queues: bool = False) -> list[dict]:
        """The data of the committed events (of one type), once each; with `task_queues`, the copies
        sent to agencies' task queues instead."""
        return [e["data"] for e in self.events if (event_type is None or e["event_type"] == event_type)
                and (e["exchange"] is not None) == task_queues]
