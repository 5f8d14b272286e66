"""Dossiers stored in a real (SQLite) database, no broker: codes; the helpers every intake
test shares."""
from datetime import date, datetime, timezone

from sqlalchemy import select

from motcua.fakes import FakeUnitOfWork
from motcua.identity import Caller
from services.intake import dossiers
from services.intake.models import Base
from tests.documents import required_uploads

COMMUNE = "000.20.01.H56"
LAND_OFFICE = "000.12.01.H56"
RECEPTIONIST = Caller(f"receptionist@{COMMUNE}", COMMUNE, ("receptionist",))
XA = "000.20.02.H56"  # another commune
XA_RECEPTIONIST = Caller(f"receptionist@{XA}", XA, ("receptionist",))
# Monday 2 March 2026, 09:00 in Hà Nội time
MONDAY_9AM = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
APPLICANT = {"full_name": "Nguyễn Văn An", "id_number": "001203004005", "phone": "0912345678",
             "email": "an@example.com", "address": "12 Lê Lợi, Hạc Thành"}
KEY = APPLICANT["phone"][-4:]  # the tracking key


def proof(id_number: str = APPLICANT["id_number"], key: str | None = KEY) -> dossiers.ApplicantProof:
    """The applicant's proof without an account: the tracking key, then the ID number."""
    return dossiers.ApplicantProof(key, id_number)


def submit(uow, policy, procedure="1.012786", channel="online", caller=None, now=MONDAY_9AM):
    return dossiers.submit(uow, policy, submission(procedure, channel, now.astimezone(policy.calendar.tz).date()),
                           caller, now)


def submission(procedure="1.012786", channel="online", on: date | None = None) -> dict:
    """Online with every mandatory document of the version in force `on` (refused otherwise); at the
    counter, as the applicant came."""
    documents = required_uploads(procedure, on) if channel == "online" else []
    return {"procedure_code": procedure, "channel": channel, "applicant": APPLICANT, "form": {}, "documents": documents}


def outbox(uow) -> list[dict]:
    """The events `uow` committed, oldest first, in the wire format: the fake's list, or the outbox table."""
    if isinstance(uow, FakeUnitOfWork):
        return uow.events
    table = Base.metadata.tables["outbox"]
    return list(uow.session.scalars(select(table.c.payload).order_by(table.c.id)))


def test_codes_follow_the_national_format_and_restart_per_day(uow, policy):
    first = submit(uow, policy)
    second = submit(uow, policy)
    next_day = submit(uow, policy, now=datetime(2026, 3, 3, 2, 0, tzinfo=timezone.utc))
    assert first.code == f"{COMMUNE}-260302-0001"
    assert second.code == f"{COMMUNE}-260302-0002"
    assert next_day.code == f"{COMMUNE}-260303-0001"


def test_the_vneid_sign_in_of_a_submission_is_stored_with_the_dossier(uow, policy, engine):
    """`vneid_verified` survives the row (the migration's column), for the national portal's flag."""
    from sqlalchemy.orm import Session

    from services.intake.repository import IntakeUnitOfWork

    citizen = Caller("vneid:vneid-7f3a91c2", None, ("citizen",), citizen_id="038190012345", citizen_name="Trần Thị Bình")
    verified, anonymous = submit(uow, policy, caller=citizen), submit(uow, policy)
    fresh = IntakeUnitOfWork(Session(engine, expire_on_commit=False), "intake", Base.metadata)
    try:
        assert fresh.dossiers.get(verified.code, for_update=False).vneid_verified is True
        assert fresh.dossiers.get(anonymous.code, for_update=False).vneid_verified is False
    finally:
        fresh.close()
