"""GET /api/v1/calendar/due: the working-day rule (docs/intake.md), exposed for anyone to check."""
from __future__ import annotations

from motcua.calendar import local_iso
from motcua.errors import ValidationFailed
from services.intake.dossiers import Policy


def due(policy: Policy, start, days, unit: str = "working_days", agency: str | None = None, cutoff=None) -> dict:
    """`{"due_at", "provisional"}`: `days` in `unit` from `start` (working days × 8 working hours,
    calendar days as the Civil Code counts them, or working hours), in the agency's office hours (or
    the province's), with the cut-off rule when `cutoff` is given. `provisional` when the span touches
    a year the Government has not decided yet. Inputs already validated by CalendarDueV1; the halves
    and whole-days rules and the agency are checked here."""
    if agency is not None and agency not in policy.catalog.agencies:
        raise ValidationFailed(f"unknown agency {agency}", field="agency")
    calendar = policy.calendar_for(agency)
    try:
        due_at = calendar.due(start, days, unit, cutoff=cutoff)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="days") from None
    return {"due_at": local_iso(due_at, calendar.tz), "provisional": calendar.is_provisional(start, due_at)}
