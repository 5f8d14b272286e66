"""The per-event rule of the dossier projection (services/reporting/facts.py) on plain rows: no database."""
import random
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from motcua.contracts.events import CALENDAR_EVENTS, EVENT_SCHEMAS, SESSION_EVENTS
from services.reporting import facts
from services.reporting.models import DossierFact
from tests.reporting.factory import (
    ENDINGS,
    JUSTICE,
    LAND_OFFICE,
    SURVEY_OFFICE,
    TAX_OFFICE,
    VN,
    event,
    lifecycle,
    rich_life,
    vn,
)

COLUMNS = [column.name for column in DossierFact.__table__.columns]
CODE = "000.00.06.H56-260302-0001"


def applied(events) -> dict:
    """The row a plain object becomes once `events` are applied in this order."""
    row = SimpleNamespace(**{**dict.fromkeys(COLUMNS), "code": CODE})
    for evt in events:
        facts.apply(row, evt.event_type, evt.data, VN)
    return vars(row)


def returned():
    return lifecycle(CODE, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                     finished=vn(2026, 3, 4, 10), returned=vn(2026, 3, 4, 15))


def spots(row: dict) -> list[tuple]:
    return [(line["status"], line["agency_code"], line.get("step")) for line in row["timeline"]]


def test_status_code_and_due_date_are_intakes_newest_word_and_a_late_older_event_keeps_its_facts():
    submitted, received, assigned, started = returned()[:4]
    late = applied([submitted, assigned, started, received])
    assert (late["status"], late["status_code"], late["dossier_version"]) == ("processing", 4, 3)
    assert late["received_at"] == vn(2026, 3, 2, 9) and late["due_at"] == vn(2026, 3, 5, 17)
    assert late == applied([submitted, received, assigned, started])


def test_workflows_result_ready_moves_no_status_intakes_does():
    events = returned()
    *run, intakes_word, returned_event = events
    assert run[-1].event_type == "result_ready" and intakes_word.event_type == "dossier_result_ready"
    row = applied(run)
    assert (row["status"], row["finished_at"], row["closed_at"]) == ("processing", None, None)
    assert (row["current_agency_code"], row["current_step"]) == (LAND_OFFICE, None)  # the run is over there
    row = applied([*run, intakes_word])
    assert (row["status"], row["status_code"], row["finished_at"]) == ("result_ready", 9, vn(2026, 3, 4, 10))
    assert (row["current_agency_code"], row["current_step"], row["timeliness"]) == (JUSTICE, None, "early")


def test_where_the_dossier_is_is_workflows_newest_move_and_a_done_step_moves_nothing():
    events = rich_life(CODE)
    transferred = next(i for i, e in enumerate(events) if e.event_type == "dossier_transferred")
    upto = events[:transferred + 1]
    assert (applied(upto)["current_agency_code"], applied(upto)["current_step"]) == (SURVEY_OFFICE, "Đo đạc")
    # the parallel step's assignment (an older run_version) delivered after the transfer moves nothing
    tax = next(e for e in upto if e.event_type == "task_assigned" and e.data["agency_code"] == TAX_OFFICE)
    late = applied([e for e in upto if e is not tax] + [tax])
    assert (late["current_agency_code"], late["current_step"]) == (SURVEY_OFFICE, "Đo đạc")
    # the tax office finishing its step leaves the dossier where its other branch has it
    tax_done = next(i for i, e in enumerate(events) if e.event_type == "task_completed"
                    and e.data["agency_code"] == TAX_OFFICE)
    assert applied(events[:tax_done + 1])["current_agency_code"] == SURVEY_OFFICE


def test_a_late_event_lands_in_its_place_in_the_timeline():
    events = returned()
    asked = lifecycle(CODE, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                      supplement=(vn(2026, 3, 3, 10), vn(2026, 3, 3, 15), vn(2026, 3, 5, 22)))
    in_order = applied(asked)
    request = next(e for e in asked if e.event_type == "supplement_requested")
    late = applied([e for e in asked if e is not request] + [request])
    assert late == in_order
    assert spots(late) == [("submitted", JUSTICE, None), ("received", JUSTICE, None),
                           ("processing", JUSTICE, "Thẩm định"), ("supplement_requested", JUSTICE, "Thẩm định"),
                           ("processing", JUSTICE, "Thẩm định")]
    assert [line["at"] for line in late["timeline"]] == [
        "2026-03-02T08:00:00+07:00", "2026-03-02T09:00:00+07:00", "2026-03-02T09:01:00+07:00",
        "2026-03-03T10:00:00+07:00", "2026-03-03T15:00:00+07:00"]
    assert spots(applied(events))[-2:] == [("result_ready", JUSTICE, None), ("returned", JUSTICE, None)]


def test_the_latest_supplement_request_its_items_and_its_pause():
    events = rich_life(CODE, "withdrawn")
    requests = [e for e in events if e.event_type == "supplement_requested"]
    row = applied(events)
    assert row["supplements"] == 2 and row["supplement_items"] == ["Bản đồ địa chính", "Tờ khai thuế"]
    assert row["paused_at"] == requests[1].data["requested_at"]
    assert row["pause_ended_at"] == row["withdrawn_at"] == row["closed_at"]  # withdrawn while awaited
    assert (row["status"], row["current_agency_code"], row["current_step"]) == ("withdrawn", SURVEY_OFFICE, None)
    # the second request heard before the first: still the second's items and pause
    swapped = [e for e in events if e not in requests] + requests[::-1]
    assert applied(swapped) == row


def test_a_stop_and_a_return_after_a_fee_a_transfer_and_a_new_appointment():
    life = rich_life(CODE, "stopped")
    stopped = applied(life)
    stop = next(e for e in life if e.event_type == "dossier_stopped").data["stopped_at"]
    assert (stopped["status"], stopped["status_code"], stopped["closed_at"]) == ("stopped", 8, stop)  # closed then
    assert (stopped["current_agency_code"], stopped["current_step"]) == (SURVEY_OFFICE, None)
    done = applied(rich_life(CODE))
    assert (done["status"], done["status_code"], done["supplements"]) == ("returned", 10, 2)
    assert done["due_at"] == vn(2026, 3, 30, 17) and done["timeliness"] == "late"  # the new appointment
    assert done["overdue_noticed_at"] == vn(2026, 3, 30, 17, 5)
    assert [spot for spot in spots(done) if spot[0] == "awaiting_payment"] == [
        ("awaiting_payment", SURVEY_OFFICE, "Đo đạc")]
    assert spots(done)[-2:] == [("result_ready", JUSTICE, None), ("returned", JUSTICE, None)]


def test_a_repeated_event_changes_nothing():
    events = rich_life(CODE)
    assert applied(events + events[::3]) == applied(events)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_delivery_order_with_repeats_gives_the_row_of_the_order_things_happened(data):
    events = rich_life(CODE, data.draw(st.sampled_from(ENDINGS)))
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=6))
    delivered = data.draw(st.permutations(events + repeats))
    assert applied(delivered) == applied(events)


def test_events_come_back_in_the_order_they_happened_whatever_the_delivery():
    for events in (rich_life(CODE), returned()):
        shuffled = events[:]
        random.Random(4).shuffle(shuffled)
        again = list(facts.happened(shuffled, lambda e: e.event_type, lambda e: e.data))
        assert [e.event_id for e in again] == [e.event_id for e in events]


def test_an_event_heard_without_a_version_records_its_facts_and_moves_nothing():
    submitted, received = returned()[:2]
    unnumbered = event("intake", "dossier_received", {**received.data, "dossier_version": None, "status": None,
                                                      "status_code": None}, received.occurred_at)
    row = applied([submitted, unnumbered])
    assert (row["status"], row["dossier_version"], row["received_at"]) == ("submitted", 1, vn(2026, 3, 2, 9))


def test_every_dossier_event_says_when_it_happened():
    # the gateway's and the calendar's are no dossier's
    dossier_events = set(EVENT_SCHEMAS) - {"access_denied"} - SESSION_EVENTS - CALENDAR_EVENTS
    assert set(facts.WHEN) == dossier_events
    for event_type, key in facts.WHEN.items():
        assert key in EVENT_SCHEMAS[event_type][1].fields, event_type


def test_the_row_says_up_to_which_version_of_each_owner_every_event_is_applied():
    events = rich_life(CODE)
    intake = [e for e in events if e.source == "intake"]
    run = [e for e in events if e.source == "workflow"]
    assert [e.data["dossier_version"] for e in intake] == list(range(1, len(intake) + 1))
    assert [e.data["run_version"] for e in run] == list(range(1, len(run) + 1))
    row = applied(events)
    assert (row["applied_dossier_version"], row["applied_run_version"]) == (len(intake), len(run))
    assert row["run_versions_ahead"] is None


def test_an_event_still_missing_holds_its_owners_applied_version_below_it_until_it_lands():
    """A retried event may land after newer ones: until it does, the row must not claim it (the gateway
    keeps a tracking answer only while it is not behind what was announced)."""
    events = rich_life(CODE)
    late_intake = next(e for e in events if e.source == "intake" and e.data["dossier_version"] == 3)
    late_run = next(e for e in events if e.source == "workflow" and e.data["run_version"] == 2)
    row = applied([e for e in events if e not in (late_intake, late_run)])
    assert (row["applied_dossier_version"], row["applied_run_version"]) == (2, 1)
    assert row["run_versions_ahead"] == list(range(3, max(e.data.get("run_version") or 0 for e in events) + 1))
    assert applied([e for e in events if e not in (late_intake, late_run)] + [late_run, late_intake]) == applied(events)


def test_two_pieces_of_postal_news_at_one_instant_both_stay_on_the_timeline():
    """The carrier stamps its news to the second: a pickup done and the result's delivery ordered at one
    instant are two lines, where other marks at one instant collapse into where the dossier then stood."""
    intake = [{"v": 1, "at": "2026-03-02T01:00:00+00:00", "status": "submitted"},
              {"v": 2, "at": "2026-03-02T03:00:00+00:00", "status": "submitted", "postal": "pickup:picked_up"},
              {"v": 3, "at": "2026-03-02T03:00:00+00:00", "status": "submitted", "postal": "delivery:ordered"}]
    lines = facts.timeline(intake, [], JUSTICE, VN)
    assert [line.get("postal") for line in lines] == [None, "pickup:picked_up", "delivery:ordered"]
