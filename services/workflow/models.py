"""Workflow's own database: each dossier's run through its process, and the tasks (công việc) of its steps."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from motcua.db import ServiceBase, reliability_tables

# Paused while the applicant supplements the dossier, awaiting payment while a fee or tax is unpaid
# (the clock stops for both); stopped when it is withdrawn or a step stops it.
RUNNING, PAUSED, AWAITING_PAYMENT, FINISHED, STOPPED = "running", "paused", "awaiting_payment", "finished", "stopped"
# A task transferred to another agency, or sent back, is closed; its successor is a new task.
OPEN, DONE, CANCELLED, TRANSFERRED = "open", "done", "cancelled", "transferred"


class Base(ServiceBase, DeclarativeBase):
    pass


outbox, inbox = reliability_tables(Base.metadata)


class DossierProcess(Base):
    """A received dossier routed through its procedure's process; one per dossier."""

    __tablename__ = "dossier_processes"
    __table_args__ = (
        # detect_overdue: running processes not yet flagged, past their due date.
        Index("ix_dossier_processes_sla", "status", "overdue_at", "dossier_due_at"),
    )

    dossier_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    procedure_code: Mapped[str] = mapped_column(String(20))
    receiving_agency_code: Mapped[str] = mapped_column(String(20))
    dossier_due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # The applicant's declaration (tờ khai), handed only to steps an agency's own system takes.
    form: Mapped[dict] = mapped_column(default=dict)
    # When the SLA timer found the dossier past its due date and emitted `dossier_overdue` (once).
    overdue_at: Mapped[datetime | None]
    # When a supplement was requested (status paused): the working time from then to the supplement
    # is added to its open steps' due dates when it resumes.
    paused_at: Mapped[datetime | None]
    # Awaiting payment: the step whose completion fixed the amount; processing resumes after it.
    resume_after_step: Mapped[int | None]
    # When the SLA timer predicted the dossier would miss its due date (`delay_predicted`, once).
    delay_predicted_at: Mapped[datetime | None]


class Task(Base):
    """One step of one dossier, assigned to an agency (liên thông: the next step may be another agency)."""

    __tablename__ = "tasks"
    __table_args__ = (
        # list_tasks: an agency's open tasks by due date; the metrics gauges count by the same columns.
        Index("ix_tasks_agency_status_due", "agency_code", "status", "due_at"),
        # detect_overdue: open tasks not yet flagged, past their due date.
        Index("ix_tasks_sla", "status", "overdue_at", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dossier_code: Mapped[str] = mapped_column(ForeignKey("dossier_processes.dossier_code"), index=True)
    procedure_code: Mapped[str] = mapped_column(String(20))
    step_index: Mapped[int]
    step: Mapped[str] = mapped_column(String(255))
    agency_code: Mapped[str] = mapped_column(String(20))
    role: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    assigned_at: Mapped[datetime]
    due_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(120))
    outcome: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    timeliness: Mapped[str | None] = mapped_column(String(8))
    # When the SLA timer found the step past its due date and escalated it (`task_overdue`, once).
    overdue_at: Mapped[datetime | None]
    # While its dossier is paused: when this step's clock stopped (the request, or its assignment if
    # later). A paused step is never overdue; on resume its due date moves by the working time since.
    paused_at: Mapped[datetime | None]
    # The officer the task is assigned to (claimed or assigned by a leader); None: the agency's pool.
    assignee: Mapped[str | None] = mapped_column(String(120))
    # Who handed the dossier over (the previous step's agency), for the process control sheet (form 06).
    from_agency_code: Mapped[str | None] = mapped_column(String(20))
    # Documents the step completed with (references into intake's blob store: key, filename, sha256…)
    documents: Mapped[list | None] = mapped_column(JSON)
