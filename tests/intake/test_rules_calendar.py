"""The official calendar in intake's appointments (docs/rules.md, "Working calendar")."""
from datetime import datetime, timezone

from services.intake import dossiers
from tests.intake.test_dossiers import RECEPTIONIST, submit


def test_a_same_day_procedure_on_a_swapped_working_saturday_is_due_that_saturday(uow, policy):
    # Birth registration (1.001193, trong ngày, cut-off 15:00) received Sat 10/1/2026 09:00 +07, a
    # working day by Công văn 12729/VPCP-KGVX: due that Saturday at the close, 17:00.
    saturday_9am = datetime(2026, 1, 10, 2, 0, tzinfo=timezone.utc)
    dossier = submit(uow, policy, procedure="1.001193", now=saturday_9am)
    received = dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, saturday_9am)
    assert received.due_at.astimezone(policy.calendar.tz).isoformat() == "2026-01-10T17:00:00+07:00"
