"""POST /api/v1/calendar/decisions: the province's admin records an official calendar decision (a day
off or a working day, with its document) that calendar.yaml does not have yet (docs/rules.md).

It counts at once: the instance that records it moves its calendar before answering, every other
intake instance reads the table again within `REFRESH_SECONDS`, and the open dossiers whose span the
decision touches get their new appointment in the same transaction (`dossier_rescheduled`, reason
"calendar"), which workflow applies to the dossier's process like any new appointment; then the decision
itself (`calendar_decided`), with which workflow counts its steps' deadlines from then on.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, select

from motcua.calendar import Decision, Decisions, WorkingCalendar
from motcua.contracts.lifecycle import TRANSITIONS
from motcua.decisions import record, recorded
from motcua.identity import Caller
from services.intake.dossiers import Policy, _load, publish
from services.intake.models import calendar_decisions, dossiers as dossier_table

REFRESH_SECONDS = 5
# Where an appointment may move (as form 04's): received and not yet resolved, paused ones included.
OPEN = TRANSITIONS["reschedule"][0]


def refresh(session, policy: Policy) -> None:
    """This instance's calendar: calendar.yaml's decisions with the recorded ones on top."""
    policy.use_decisions(policy.official.merged(recorded(session, calendar_decisions)))


def decide(uow, policy: Policy, data: dict, caller: Caller, now: datetime) -> dict:
    """Record the decision (replacing an earlier one about the same day), move the appointments it
    touches, and count with it from now on. Answers the decision and the dossiers rescheduled."""
    decision = Decision(data["date"], data["kind"], data["source"])
    session = uow.session
    refresh(session, policy)  # "before" is every decision recorded so far, whichever instance took it
    record(session, calendar_decisions, decision, data["decided_year"], caller.username, now)
    after = policy.official.merged(recorded(session, calendar_decisions))
    moved = [code for code in _touched(session, decision.date, policy.calendar.tz)
             if _move(uow, policy, code, after, decision, caller.username, now)]
    # After the appointments it moved: workflow caps the steps it moves at the dossier's new date.
    uow.emit("calendar_decided", {"date": decision.date, "kind": decision.kind, "source": decision.source,
                                  "decided_year": data["decided_year"], "decided_by": caller.username,
                                  "decided_at": now})
    uow.commit()
    policy.use_decisions(after)
    return {"date": decision.date.isoformat(), "kind": decision.kind, "source": decision.source,
            "decided_year": data["decided_year"], "rescheduled": moved}


def _touched(session, day: date, tz) -> list[str]:
    """Open dossiers received by the end of `day` and due from its start on: their span holds it."""
    start = datetime.combine(day, time.min, tzinfo=tz)
    query = select(dossier_table.c.code).where(and_(
        dossier_table.c.status.in_(sorted(OPEN)), dossier_table.c.due_at >= start,
        dossier_table.c.received_at < start + timedelta(days=1))).order_by(dossier_table.c.code)
    return list(session.execute(query).scalars())


def _move(uow, policy: Policy, code: str, after: Decisions, decision: Decision, decided_by: str,
          now: datetime) -> bool:
    """The dossier's appointment under the new calendar, if later than the one it has."""
    dossier = _load(uow, code)
    schedule = policy.schedule(dossier)  # in the receiving agency's office hours, today's decisions
    new_due = _new_due(dossier, schedule.procedure.terms(dossier.channel).unit, schedule.calendar,
                       schedule.calendar.with_decisions(after), decision.date)
    if new_due <= dossier.due_at:
        return False
    dossier.recalendar(new_due, decided_by, decision.source, now)
    publish(uow, dossier)
    return True


def _new_due(dossier, unit: str, before: WorkingCalendar, after: WorkingCalendar, day: date) -> datetime:
    """Working time: the two calendars agree until `day`, so what remained of the allowance from its
    start (or from reception, if later) is counted again under the new one; a paused dossier's due date
    is where its clock would end if resumed now, and moves the same way. Calendar days: the last day
    rolled again (Civil Code art. 148)."""
    if unit == "calendar_days":
        return after.add_calendar_days(dossier.due_at, 0)
    anchor = max(dossier.received_at, datetime.combine(day, time.min, tzinfo=after.tz))
    return after.recounted(anchor, dossier.due_at, before)
