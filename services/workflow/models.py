"""Workflow's own database: each dossier's run through its process, and the tasks (công việc) of its steps.

A run's row holds `process_run.ProcessRun`'s fields and a task's row `Task`'s, column for column; the
repository reads and writes them with SQLAlchemy Core, so the rules never import SQLAlchemy and the same
objects live in memory in the rule tests."""
from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import DeclarativeBase

from motcua.db import ServiceBase, UTCDateTime, reliability_tables
from motcua.decisions import calendar_decisions_table
from motcua.idempotency import command_results_table
from motcua.revocation import revocation_tables


class Base(ServiceBase, DeclarativeBase):
    pass


outbox, inbox = reliability_tables(Base.metadata)
command_results = command_results_table(Base.metadata)
revocation_tables(Base.metadata)  # the gateway's revocations, refused on direct RPC (motcua.revocation)

runs = Table(
    "dossier_processes", Base.metadata,
    Column("dossier_code", String(40), primary_key=True),
    Column("procedure_code", String(20), nullable=False),
    Column("receiving_agency_code", String(20), nullable=False),
    Column("dossier_due_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("form", JSON, nullable=False),
    Column("overdue_at", UTCDateTime()),
    Column("paused_at", UTCDateTime()),
    Column("resume_after_step", Integer),
    Column("delay_predicted_at", UTCDateTime()),
    Column("version", Integer, nullable=False, server_default="0"),
    Column("dossier_version", Integer),
    Column("clock_version", Integer),
    # detect_overdue: running processes not yet flagged, past their due date.
    Index("ix_dossier_processes_sla", "status", "overdue_at", "dossier_due_at"),
)

tasks = Table(
    "tasks", Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("dossier_code", ForeignKey("dossier_processes.dossier_code"), nullable=False, index=True),
    Column("procedure_code", String(20), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("step", String(255), nullable=False),
    Column("agency_code", String(20), nullable=False),
    Column("role", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("assigned_at", UTCDateTime(), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("completed_at", UTCDateTime()),
    Column("completed_by", String(120)),
    Column("outcome", String(16)),
    Column("note", Text),
    Column("timeliness", String(8)),
    Column("overdue_at", UTCDateTime()),
    Column("paused_at", UTCDateTime()),
    Column("assignee", String(120)),
    Column("from_agency_code", String(20)),
    Column("documents", JSON),
    # list_tasks: an agency's open tasks by due date; the metrics gauges count by the same columns.
    Index("ix_tasks_agency_status_due", "agency_code", "status", "due_at"),
    # detect_overdue: open tasks not yet flagged, past their due date.
    Index("ix_tasks_sla", "status", "overdue_at", "due_at"),
)

# The official calendar's decisions recorded through the API after calendar.yaml (intake's
# `calendar_decided` events): workflow counts its steps' deadlines with them, every instance reading them
# at start and again every few seconds.
calendar_decisions = calendar_decisions_table(Base.metadata)
