"""The three worked examples of docs/intake.md, computed by the code and quoted by the page."""
from datetime import datetime, time, timezone

from motcua.config import ROOT
from services.intake import dossiers
from services.intake.due import due
from tests.intake.test_dossiers import MONDAY_9AM, RECEPTIONIST, XA_RECEPTIONIST, submit

DOC = (ROOT / "docs" / "intake.md").read_text(encoding="utf-8")


def local_iso(value, policy):
    return value.astimezone(policy.calendar.tz).isoformat()


def test_across_tet(uow, policy):
    eve = datetime(2026, 2, 13, 3, 0, tzinfo=timezone.utc)  # Friday 13 Feb 2026 10:00 +07
    dossier = submit(uow, policy, procedure="1.004873", now=eve)
    received = dossiers.receive(uow, policy, dossier.code, XA_RECEPTIONIST, eve)
    assert local_iso(received.due_at, policy) == "2026-02-25T10:00:00+07:00"
    assert "**due 2026-02-25T10:00:00+07:00**" in DOC


def test_with_a_supplement_pause(uow, policy):
    dossier = submit(uow, policy, procedure="1.012786")
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    dossiers.request_supplement(uow, dossier.code, ["Bản sao CCCD"], None, RECEPTIONIST,
                                datetime(2026, 3, 3, 2, 0, tzinfo=timezone.utc))
    resumed = dossiers.supplement(uow, policy, dossier.code, RECEPTIONIST, None,
                                  datetime(2026, 3, 5, 3, 0, tzinfo=timezone.utc))
    assert local_iso(resumed.due_at, policy) == "2026-03-18T10:00:00+07:00"
    assert "**new due 2026-03-18T10:00:00+07:00**" in DOC


def test_after_the_cutoff_hour(uow, policy):
    start = datetime.fromisoformat("2026-03-02T15:30:00+07:00")
    assert due(policy, start, "1", cutoff=time(15, 0)) == {"due_at": "2026-03-03T17:00:00+07:00", "provisional": False}
    assert "`start=2026-03-02T15:30:00+07:00&days=1&cutoff=15:00`" in DOC
    assert "**due 2026-03-03T17:00:00+07:00**" in DOC
    birth_at_4pm = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    dossier = submit(uow, policy, procedure="1.001193", now=birth_at_4pm)
    received = dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, birth_at_4pm)
    assert local_iso(received.due_at, policy) == "2026-03-03T17:00:00+07:00"
