"""What each event says about its dossier, applied to the dossier's row (`dossier_facts`) one event at a
time, in any order, any number of times: plain Python on any object with the row's attributes (the ORM
row, or a plain one in the rule tests), no database, no other event read.

Who says what (one owner per state):
- intake's events (`DossierEvent`) carry the dossier's status, its code and the appointment in force
  (`due_at`) once the event took place, numbered by `dossier_version`: the row takes them from the
  newest intake event it has seen. An older one arriving late never overwrites them; its own facts
  (e.g. `received_at`) are still recorded.
- workflow's events (`RunEvent`) say where the process run has the dossier (agency, step), numbered by
  `run_version`: the newest one wins. Workflow's `result_ready` moves no status (intake's
  `dossier_result_ready` does).
- What the row reflects, for public tracking's answer (the gateway caches it until a newer version is
  announced): `applied_dossier_version` and `applied_run_version`, the newest version of each owner such
  that every event of that owner up to it has been applied. Not merely the newest applied: an event
  retried after a failure may land after a newer one, and the answer must not claim it.
- The other columns are facts an event states once (`received_at`, `finished_at`, ...) or the earliest
  of several (`processing_started_at`, `overdue_noticed_at`).

What depends on the order of the dossier's moves (the public timeline, the latest supplement's pause)
comes from `marks`: the row's short list of its moves, one per versioned intake event and one per move
of the run, kept in version order whatever the delivery order. A late event lands among them and the
timeline is drawn again from them, never from the event store.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, TypeVar
from zoneinfo import ZoneInfo

from motcua.calendar import local_iso, timeliness

# The instant each event says it happened: its own field (the envelope's occurred_at is only when the
# producer published it).
WHEN = {
    "dossier_submitted": "submitted_at", "dossier_received": "received_at", "dossier_refused": "refused_at",
    "dossier_processing_started": "started_at", "supplement_requested": "requested_at",
    "dossier_supplemented": "supplemented_at", "dossier_result_ready": "finished_at",
    "result_returned": "returned_at", "dossier_withdrawn": "withdrawn_at", "dossier_rescheduled": "rescheduled_at",
    "dossier_rated": "rated_at", "payment_requested": "requested_at", "payment_received": "paid_at",
    "dossier_stopped": "stopped_at", "postal_shipment_updated": "updated_at",
    "payment_refunded": "refunded_at", "fee_paid": "paid_at",
    "task_assigned": "assigned_at", "task_completed": "completed_at", "task_overdue": "detected_at",
    "dossier_overdue": "detected_at", "result_ready": "finished_at", "dossier_transferred": "transferred_at",
    "supplement_needed": "requested_at", "payment_required": "required_at", "processing_stopped": "stopped_at",
    "delay_predicted": "detected_at", "task_rescheduled": "rescheduled_at",
}
# What intake's first events say about the dossier itself (the same in each of them).
DESCRIPTION = ("agency_code", "procedure_code", "procedure_name", "field_code", "channel")
DESCRIBED_BY = ("dossier_submitted", "dossier_received", "dossier_refused")
# Facts an event states once, under the same name on the row.
STATED = {
    "dossier_submitted": ("submitted_at", "applicant_masked", "tracking_key"),
    "dossier_received": ("received_at",),
    "dossier_refused": ("refused_at",),
    "dossier_result_ready": ("finished_at",),
    "result_returned": ("returned_at",),
    "dossier_withdrawn": ("withdrawn_at",),
}
# Facts kept as the earliest of several events: (row column, the event's field).
EARLIEST = {
    "dossier_processing_started": ("processing_started_at", "started_at"),
    "task_overdue": ("overdue_noticed_at", "detected_at"),
    "dossier_overdue": ("overdue_noticed_at", "detected_at"),
}
# Workflow's events that move the dossier within its run: (the agency's field, the step's field; None:
# the run is over). A step done moves nothing: the next one's assignment does (at the same instant), and
# of parallel steps the one done is no longer where the dossier is.
RUN_MOVES = {
    "task_assigned": ("agency_code", "step"),
    "dossier_transferred": ("to_agency_code", "step"),
    "result_ready": ("agency_code", None),
}
# Intake's events that start or end a supplement's pause (the clock stops while the applicant is asked).
PAUSES = {"supplement_requested": "asked", "dossier_supplemented": "ended", "dossier_withdrawn": "ended"}
# Where a dossier is, by its status: at the receiving agency's counter (not received yet, refused, its
# result waiting or returned), else where its run has it (a stopped or withdrawn one in no step).
AT_THE_COUNTER = frozenset({None, "submitted", "refused", "result_ready", "returned"})
OUT_OF_STEP = frozenset({"stopped", "withdrawn"})

T = TypeVar("T")


def apply(row, event_type: str, data: dict, zone: ZoneInfo) -> None:
    """Apply one event (its loaded data) to its dossier's row. The row ends the same whatever the order
    of the dossier's events and however often each is applied."""
    if event_type in DESCRIBED_BY and row.procedure_code is None:
        for column in DESCRIPTION:
            setattr(row, column, data[column])
    for column in STATED.get(event_type, ()):
        setattr(row, column, data[column])
    if event_type in EARLIEST:
        column, key = EARLIEST[event_type]
        known = getattr(row, column)
        setattr(row, column, data[key] if known is None else min(known, data[key]))
    at = _stamp(data[WHEN[event_type]])
    if data.get("dossier_version") is not None:
        _intake_move(row, event_type, data, at)
    elif data.get("run_version") is not None:
        _run_applied(row, data["run_version"])
        if event_type in RUN_MOVES:
            agency, step = RUN_MOVES[event_type]
            _add_mark(row, {"rv": data["run_version"], "at": at, "agency": data[agency],
                            "step": data[step] if step else None})
    _derive(row, zone)


def _run_applied(row, version: int) -> None:
    """Count `version` among the run's events applied: `applied_run_version` (every one up to it) and
    `run_versions_ahead` (those applied past a missing one; normally none)."""
    applied = row.applied_run_version or 0
    if version <= applied:
        return
    ahead = {*(row.run_versions_ahead or ()), version}
    while applied + 1 in ahead:
        applied += 1
        ahead.discard(applied)
    row.applied_run_version = applied
    row.run_versions_ahead = sorted(ahead) or None


def _intake_move(row, event_type: str, data: dict, at: str) -> None:
    version = data["dossier_version"]
    mark = {"v": version, "at": at, "status": data["status"]}
    if event_type in PAUSES:
        mark["pause"] = PAUSES[event_type]
    if event_type == "postal_shipment_updated":
        mark["postal"] = f"{data['kind']}:{data['shipment_status']}"
    _add_mark(row, mark)
    if row.dossier_version is None or version > row.dossier_version:
        row.dossier_version, row.status, row.status_code = version, data["status"], data["status_code"]
        row.due_at = data["due_at"]
    asked = _asked(row.marks)
    if event_type == "supplement_requested" and asked and asked[-1]["v"] == version:
        row.supplement_items = list(data["items"])  # what the open request lists (shown to the applicant)


def _add_mark(row, mark: dict) -> None:
    marks = row.marks or []
    if all(_mark_key(m) != _mark_key(mark) for m in marks):  # a repeated event marks nothing new
        row.marks = sorted([*marks, mark], key=_mark_key)  # a new list: the ORM sees the change


def _mark_key(mark: dict) -> tuple[int, int]:
    """Intake's marks by dossier_version, then the run's by run_version."""
    return (0, mark["v"]) if "v" in mark else (1, mark["rv"])


def _asked(marks: list[dict] | None) -> list[dict]:
    return [m for m in marks or () if m.get("pause") == "asked"]


def _derive(row, zone: ZoneInfo) -> None:
    """The columns that follow from the others and from the marks."""
    marks = row.marks or []
    intake = [m for m in marks if "v" in m]
    run = [m for m in marks if "rv" in m]
    place = (run[-1]["agency"], run[-1]["step"]) if run else None
    row.current_agency_code, row.current_step = where(row.status, place, row.agency_code)
    row.applied_dossier_version = _contiguous(m["v"] for m in intake)
    asked = _asked(intake)
    row.supplements = len(asked)
    paused = ended = None
    if asked:  # the latest pause: from its request to the first supply or withdrawal after it
        paused = asked[-1]
        ended = next((m for m in intake if m.get("pause") == "ended" and m["v"] > paused["v"]), None)
    row.paused_at = _instant(paused["at"]) if paused else None
    row.pause_ended_at = _instant(ended["at"]) if ended else None
    # When the dossier left the in-progress count: its result was ready, it was withdrawn, or it was
    # stopped (status 8, final: the report closes it in the period it stopped, never carrying it over).
    stopped = next((m for m in intake if m["status"] == "stopped"), None)
    row.closed_at = row.finished_at or row.withdrawn_at or (_instant(stopped["at"]) if stopped else None)
    # Judged (on local dates) only once the result is ready and a due date is known.
    judged = row.finished_at is not None and row.due_at is not None
    row.timeliness = timeliness(row.finished_at, row.due_at, zone) if judged else None
    row.timeline = timeline(intake, run, row.agency_code, zone)


def _contiguous(versions: Iterable[int]) -> int:
    """The newest of `versions` (ascending, distinct) up to which none is missing (0: not even the first)."""
    applied = 0
    for version in versions:
        if version != applied + 1:
            break
        applied = version
    return applied


def where(status: str | None, place: tuple[str, str | None] | None, receiving: str | None) -> tuple:
    """(agency, step) where a dossier in `status` is, its run having it at `place` (None: no run yet)."""
    if status in AT_THE_COUNTER or place is None:
        return receiving, None
    agency, step = place
    return agency, None if status in OUT_OF_STEP else step


def timeline(intake: list[dict], run: list[dict], receiving: str | None, zone: ZoneInfo) -> list[dict]:
    """The public timeline: one line per change of status or hands, in the order things happened; at one
    instant (a step done and the next assigned, a step assigned and intake's "processing"), where the
    dossier stood once all of it happened."""
    lines: list[dict] = []
    status = place = None
    for mark in in_order(run, intake, lambda m: m["at"]):
        if "v" in mark:
            status = mark["status"]
        else:
            place = (mark["agency"], mark["step"])
        if status is None:  # intake's first events not heard yet
            continue
        agency, step = where(status, place, receiving)
        line = {"at": mark["at"], "status": status, "agency_code": agency}
        if step:
            line["step"] = step
        if "postal" in mark:
            line["postal"] = mark["postal"]
        # Two pieces of postal news at one instant (the carrier stamps to the second) are both news.
        if lines and lines[-1]["at"] == line["at"] and not ("postal" in lines[-1] and "postal" in line):
            replaced = lines.pop()
            if "postal" in replaced and "postal" not in line:  # the news that made the change stays with it
                line["postal"] = replaced["postal"]
        if not lines or _spot(lines[-1]) != _spot(line):
            lines.append(line)
    return [{**line, "at": local_iso(_instant(line["at"]), zone)} for line in lines]


def _spot(line: dict) -> tuple:
    return line["status"], line["agency_code"], line.get("step"), line.get("postal")


def in_order(run: list[T], intake: list[T], at: Callable[[T], object]) -> Iterator[T]:
    """Workflow's and intake's items, each already in its own version order, interleaved by time. At one
    instant workflow's come first: an intake event sharing an instant with a workflow one is intake's
    reaction to it (it stamps `dossier_processing_started` and `dossier_result_ready` with workflow's
    time)."""
    i = j = 0
    while i < len(run) or j < len(intake):
        if j == len(intake) or (i < len(run) and at(run[i]) <= at(intake[j])):
            yield run[i]
            i += 1
        else:
            yield intake[j]
            j += 1


def happened(events: Iterable[T], event_type: Callable[[T], str], data: Callable[[T], dict]) -> Iterator[T]:
    """A dossier's events in the order they happened: intake's by dossier_version, workflow's by
    run_version, interleaved by the time each states (`in_order`)."""
    def by(version: str):
        return lambda e: (data(e).get(version) or 0, data(e)[WHEN[event_type(e)]])

    listed = list(events)
    run = sorted((e for e in listed if "run_version" in data(e)), key=by("run_version"))
    intake = sorted((e for e in listed if "run_version" not in data(e)), key=by("dossier_version"))
    return in_order(run, intake, lambda e: data(e)[WHEN[event_type(e)]])


def _stamp(at: datetime) -> str:
    """An instant as a mark keeps it: UTC, fixed width, so marks compare as text."""
    return at.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _instant(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)
