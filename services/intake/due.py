"""GET /api/v1/calendar/due: the working-day rule (docs/intake.md), exposed for anyone to check."""
from __future__ import annotations

from motcua.calendar import local_iso, parse_days
from motcua.errors import ValidationFailed
from services.intake.dossiers import Policy


def due(policy: Policy, start, days, agency: str | None = None, cutoff=None) -> dict:
    """`{"due_at"}`: `days` × 8 working hours from `start`, in the agency's office hours (or the
    province's), with the cut-off rule when `cutoff` is given. Inputs already validated by
    CalendarDueV1; the halves rule and the agency are checked here."""
    try:
        amount = parse_days(days)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="days") from None
    if agency is not None and agency not in policy.catalog.agencies:
        raise ValidationFailed(f"unknown agency {agency}", field="agency")
    calendar = policy.calendar_for(agency)
    return {"due_at": local_iso(calendar.due_at(start, amount, cutoff=cutoff), calendar.tz)}
