"""Public tracking: masked, keyed by the phone's last 4 digits, silent about unknown codes."""
import pytest

from motcua.errors import NotFound, ValidationFailed, WrongKey, load_valid
from services.reporting import projections, schemas, tracking
from tests.reporting.factory import (EMAIL, JUSTICE, LAND_OFFICE, NAME, PHONE, TRACKING_KEY, VN, lifecycle,
                                     memory_database, vn)

CODE = "000.00.06.H56-260302-0001"


@pytest.fixture
def session():
    uow = memory_database()()
    for evt in lifecycle(CODE, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17)):
        projections.record(uow, [evt], VN)
    return uow.session


def test_the_right_key_shows_where_the_dossier_is(session):
    view = tracking.track(session, CODE, PHONE[-4:], TRACKING_KEY, VN)
    assert view["status"] == "processing" and view["status_code"] == 4
    assert view["applicant_name"] == "Nguyễn V. A."
    assert view["current_agency_code"] == JUSTICE
    assert view["received_at"] == "2026-03-02T09:00:00+07:00" and view["due_at"] == "2026-03-05T17:00:00+07:00"
    assert view["finished_at"] is None and view["returned_at"] is None
    assert view["supplement_items"] == []  # nothing asked for
    assert view["timeline"] == [
        {"at": "2026-03-02T08:00:00+07:00", "status": "submitted", "agency_code": JUSTICE},
        {"at": "2026-03-02T09:00:00+07:00", "status": "received", "agency_code": JUSTICE},
        {"at": "2026-03-02T09:01:00+07:00", "status": "processing", "agency_code": JUSTICE, "step": "Thẩm định"},
    ]
    shown = repr(view)
    for personal in (NAME, PHONE, EMAIL, "Văn An"):
        assert personal not in shown


def test_the_timeline_follows_the_dossier_across_agencies():
    uow = memory_database()()
    for evt in lifecycle(CODE, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                         finished=vn(2026, 3, 4, 9), returned=vn(2026, 3, 4, 14)):
        projections.record(uow, [evt], VN)
    view = tracking.track(uow.session, CODE, PHONE[-4:], TRACKING_KEY, VN)
    assert view["status"] == "returned" and view["status_code"] == 10
    assert view["finished_at"] == "2026-03-04T09:00:00+07:00"
    # the result is ready (intake's word) at the receiving agency's counter, where it is returned
    assert [(e["status"], e["agency_code"]) for e in view["timeline"]][3:] == [
        ("processing", LAND_OFFICE), ("result_ready", JUSTICE), ("returned", JUSTICE)]
    assert view["timeline"][-2]["at"] == "2026-03-04T09:00:00+07:00"


def test_the_answer_says_which_events_it_reflects_and_never_claims_a_missing_one():
    """The gateway keeps an answer until it hears of a newer version than these (services/gateway/tracking.py)."""
    events = lifecycle(CODE, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                       finished=vn(2026, 3, 4, 9))
    first_move = next(e for e in events if e.event_type == "task_assigned")
    uow = memory_database()()
    projections.record(uow, [e for e in events if e is not first_move], VN)  # the first assignment is late
    view = tracking.track(uow.session, CODE, PHONE[-4:], TRACKING_KEY, VN)
    intake = [e.data["dossier_version"] for e in events if e.source == "intake"]
    assert (view["dossier_version"], view["run_version"]) == (max(intake), 0)
    projections.record(uow, [first_move], VN)
    view = tracking.track(uow.session, CODE, PHONE[-4:], TRACKING_KEY, VN)
    assert view["run_version"] == max(e.data["run_version"] for e in events if e.source == "workflow")


def test_a_wrong_key_and_an_unknown_code_look_the_same(session):
    with pytest.raises(NotFound) as wrong_key:
        tracking.track(session, CODE, "0000", TRACKING_KEY, VN)
    with pytest.raises(NotFound) as unknown:
        tracking.track(session, "000.00.06.H56-260302-9999", PHONE[-4:], TRACKING_KEY, VN)
    with pytest.raises(NotFound) as other_secret:
        tracking.track(session, CODE, PHONE[-4:], "another-secret", VN)
    assert str(wrong_key.value) == str(unknown.value) == str(other_secret.value) == tracking.NOT_FOUND
    # the same answer; only the gateway tells them apart, to throttle guesses at an existing dossier
    assert type(wrong_key.value) is WrongKey and type(unknown.value) is NotFound


@pytest.mark.parametrize("key", ["123", "12345", "12a4", "", None, 5678, "１２３４"])
def test_the_key_must_be_four_digits(key):
    with pytest.raises(ValidationFailed) as error:
        load_valid(schemas.track_query, {"code": CODE, "key": key})
    assert error.value.field == "key"
