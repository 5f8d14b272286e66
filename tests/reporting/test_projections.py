"""The dossier projection: built from events in any order, each applied once, replayable."""
import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy.event import listen
from sqlalchemy.orm import sessionmaker

from motcua import faults, migrate
from motcua.db import UnitOfWork, make_engine
from motcua.faults import TransientFailure
from services.reporting import cli, projections
from services.reporting.models import Base, DossierFact, StoredEvent
from tests import infra
from tests.reporting.factory import (
    EMAIL,
    ENDINGS,
    JUSTICE,
    LAND_OFFICE,
    NAME,
    PHONE,
    VN,
    all_facts,
    event,
    lifecycle,
    memory_database,
    random_lives,
    rich_life,
    vn,
)
from tests.reporting.test_aggregates import counters


@pytest.fixture
def unit():
    return memory_database()


def returned_dossier(code="000.00.06.H56-260302-0001"):
    return lifecycle(code, submitted=vn(2026, 3, 2, 8, 0), received=vn(2026, 3, 2, 9, 0),
                     due=vn(2026, 3, 5, 17, 0), finished=vn(2026, 3, 4, 10, 0), returned=vn(2026, 3, 4, 15, 0))


def project(make_unit, events, sizes=(1,)):
    """The projection of `events` delivered in batches of `sizes` (cycled), each batch one transaction."""
    uow = make_unit()
    for batch in in_batches(events, sizes):
        projections.record(uow, batch, VN)
    return all_facts(uow.session)


def in_batches(events, sizes):
    batches, start = [], 0
    for size in itertools.cycle(sizes):
        if start >= len(events):
            return batches
        batches.append(events[start:start + size])
        start += size


def test_a_returned_dossier_is_projected_with_its_whole_life(unit):
    events = returned_dossier()
    facts = project(unit, events)["000.00.06.H56-260302-0001"]
    assert facts["status"] == "returned" and facts["status_code"] == 10
    assert facts["agency_code"] == JUSTICE and facts["channel"] == "online"
    assert facts["procedure_code"] == "1.004873" and facts["field_code"] == "HT"
    assert facts["received_at"] == vn(2026, 3, 2, 9, 0)
    assert facts["processing_started_at"] == vn(2026, 3, 2, 9, 1)
    assert facts["finished_at"] == vn(2026, 3, 4, 10, 0)
    assert facts["returned_at"] == vn(2026, 3, 4, 15, 0)
    assert facts["timeliness"] == "early"
    assert facts["current_agency_code"] == JUSTICE and facts["current_step"] is None
    assert facts["applicant_masked"] == "Nguyễn V. A."

    # workflow's result_ready moves no status: the result is ready when intake says so, at the counter
    assert [(e["status"], e["agency_code"], e.get("step")) for e in facts["timeline"]] == [
        ("submitted", JUSTICE, None), ("received", JUSTICE, None), ("processing", JUSTICE, "Thẩm định"),
        ("processing", LAND_OFFICE, "Ký duyệt"), ("result_ready", JUSTICE, None), ("returned", JUSTICE, None)]
    assert facts["timeline"][0]["at"] == "2026-03-02T08:00:00+07:00"


@pytest.mark.parametrize("seed", range(8))
def test_shuffled_events_give_the_same_projection_as_ordered_ones(unit, seed):
    events = returned_dossier() + lifecycle("000.00.06.H56-260303-0002", submitted=vn(2026, 3, 3, 8),
                                            received=vn(2026, 3, 3, 9), due=vn(2026, 3, 6, 17))
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)
    assert project(memory_database(), shuffled) == project(unit, events)


def test_a_duplicate_delivery_is_ignored(unit):
    events = returned_dossier()
    uow = unit()
    applied = [projections.record(uow, [evt], VN) for evt in events + events[::-1]]
    assert applied == [True] * len(events) + [False] * len(events)
    assert uow.session.scalar(select(func.count()).select_from(StoredEvent)) == len(events)
    assert all_facts(uow.session) == project(memory_database(), events)


def test_an_older_intake_event_arriving_late_moves_nothing_back_but_its_facts_are_kept(unit):
    code = "000.00.06.H56-260302-0003"
    submitted, received, assigned, started = lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9),
                                                       due=vn(2026, 3, 5, 17))[:4]
    # intake's "received" (dossier_version 2) is delivered after its "processing" (version 3)
    facts = project(unit, [submitted, assigned, started, received])[code]
    assert facts["status"] == "processing" and facts["status_code"] == 4 and facts["dossier_version"] == 3
    assert facts["received_at"] == vn(2026, 3, 2, 9) and facts["due_at"] == vn(2026, 3, 5, 17)
    assert [(e["status"], e.get("step")) for e in facts["timeline"]] == [
        ("submitted", None), ("received", None), ("processing", "Thẩm định")]


def test_a_refused_dossier_stays_refused():
    code = "000.00.06.H56-260302-0004"
    facts = project(memory_database(), lifecycle(code, submitted=vn(2026, 3, 2, 8),
                                                 refused=vn(2026, 3, 2, 10)))[code]
    assert (facts["status"], facts["status_code"]) == ("refused", 3)
    assert facts["refused_at"] == vn(2026, 3, 2, 10) and facts["received_at"] is None


def test_personal_data_is_never_stored(unit):
    uow = unit()
    for evt in returned_dossier() + lifecycle("000.00.06.H56-260302-0005", submitted=vn(2026, 3, 2, 8),
                                              refused=vn(2026, 3, 2, 10)):
        projections.record(uow, [evt], VN)
    stored = json.dumps([e.data for e in uow.session.scalars(select(StoredEvent))], ensure_ascii=False)
    stored += json.dumps(all_facts(uow.session), ensure_ascii=False, default=str)
    for personal in (NAME, PHONE, PHONE[-4:], EMAIL, "12 Lê Lợi", '"contact"', '"form"'):
        assert personal not in stored


def test_a_steps_documents_are_not_stored_their_filenames_may_name_the_applicant(unit):
    uow = unit()
    [*_, last] = returned_dossier()
    code = last.data["code"]
    completed = event("workflow", "task_completed", {
        "task_id": f"{code}/9", "dossier_code": code, "agency_code": "000.12.01.H56", "step": "Ký",
        "step_index": 9, "completed_at": vn(2026, 3, 3, 9), "completed_by": "leader", "outcome": "approve",
        "note": "", "timeliness": "early", "documents": [{
            "key": "gcn", "filename": f"GCN {NAME}.pdf", "content_type": "application/pdf", "size": 9,
            "sha256": "a" * 64}]}, vn(2026, 3, 3, 9))
    projections.record(uow, [completed], VN)
    [kept] = uow.session.scalars(select(StoredEvent).where(StoredEvent.event_type == "task_completed",
                                                           StoredEvent.event_id == completed.event_id))
    stored = json.dumps(kept.data, ensure_ascii=False)
    assert NAME not in stored and '"documents"' not in stored


@pytest.mark.parametrize("finished, expected", [
    (vn(2026, 3, 4, 23, 59), "early"),
    (vn(2026, 3, 5, 0, 30), "on_time"),  # 4 March 17:30 UTC: the local date is what counts
    (vn(2026, 3, 5, 16, 59), "on_time"),
    (vn(2026, 3, 6, 7, 0), "late"),
])
def test_timeliness_compares_local_dates(unit, finished, expected):
    code = "000.00.06.H56-260302-0001"
    facts = project(unit, lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9),
                                     due=vn(2026, 3, 5, 17), finished=finished))[code]
    assert facts["timeliness"] == expected


def test_an_unfinished_or_undated_dossier_has_no_timeliness(unit):
    open_code, refused_code = "000.00.06.H56-260302-0001", "000.00.06.H56-260302-0002"
    facts = project(unit, lifecycle(open_code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9),
                                    due=vn(2026, 3, 5, 17))
                    + lifecycle(refused_code, submitted=vn(2026, 3, 2, 8), refused=vn(2026, 3, 2, 10)))
    assert facts[open_code]["timeliness"] is None and facts[open_code]["status_code"] == 4
    assert facts[refused_code]["timeliness"] is None and facts[refused_code]["status_code"] == 3


def test_rebuild_all_equals_the_live_projections(unit):
    uow = unit()
    events = returned_dossier() + lifecycle("000.00.06.H56-260303-0006", submitted=vn(2026, 3, 3, 8),
                                            received=vn(2026, 3, 3, 9), due=vn(2026, 3, 6, 17)) \
        + lifecycle("000.00.06.H56-260303-0007", submitted=vn(2026, 3, 3, 8), refused=vn(2026, 3, 3, 9))
    for evt in events:
        projections.record(uow, [evt], VN)
    live = all_facts(uow.session)
    assert projections.rebuild_all(uow, VN) == {"dossiers": 3, "events": len(events)}
    assert all_facts(unit().session) == live


def test_counts_by_status_has_every_status(unit):
    uow = unit()
    for evt in returned_dossier() + lifecycle("000.00.06.H56-260303-0008", submitted=vn(2026, 3, 3, 8)):
        projections.record(uow, [evt], VN)
    assert projections.counts_by_status(uow.session) == {
        "submitted": 1, "received": 0, "refused": 0, "processing": 0, "supplement_requested": 0,
        "awaiting_payment": 0, "withdrawn": 0, "stopped": 0, "result_ready": 0, "returned": 1}


def test_a_supplement_pauses_the_dossier_and_resumes_it_with_the_new_due_date(unit):
    code = "000.00.06.H56-260302-0009"
    paused = lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                       supplement=(vn(2026, 3, 3, 10), None, None))
    facts = project(unit, paused)[code]
    assert (facts["status"], facts["status_code"]) == ("supplement_requested", 5)
    assert facts["paused_at"] == vn(2026, 3, 3, 10) and facts["pause_ended_at"] is None
    assert facts["supplements"] == 1 and facts["closed_at"] is None

    resumed = lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                        supplement=(vn(2026, 3, 3, 10), vn(2026, 3, 9, 10), vn(2026, 3, 11, 17)))
    facts = project(memory_database(), resumed)[code]
    assert (facts["status"], facts["status_code"]) == ("processing", 4)  # moved back from 5
    assert facts["due_at"] == vn(2026, 3, 11, 17) and facts["supplements"] == 1
    assert (facts["paused_at"], facts["pause_ended_at"]) == (vn(2026, 3, 3, 10), vn(2026, 3, 9, 10))

    # finished after the first due date but before the moved one: early, against the moved one
    finished = lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 11, 17),
                         supplement=(vn(2026, 3, 3, 10), vn(2026, 3, 9, 10), vn(2026, 3, 11, 17)),
                         finished=vn(2026, 3, 10, 9))
    facts = project(memory_database(), finished)[code]
    assert facts["status"] == "result_ready" and facts["timeliness"] == "early"
    assert facts["closed_at"] == vn(2026, 3, 10, 9)


def test_a_new_appointment_moves_the_due_date_and_timeliness_is_judged_against_it(unit):
    code = "000.00.06.H56-260302-0011"
    life = dict(submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17))
    late = project(unit, lifecycle(code, **life, finished=vn(2026, 3, 9, 10)))[code]
    assert late["timeliness"] == "late" and late["overdue_noticed_at"] is None

    apologised = lifecycle(code, **life, rescheduled=(vn(2026, 3, 4, 10), vn(2026, 3, 10, 17)),
                           overdue=vn(2026, 3, 5, 17, 1), finished=vn(2026, 3, 9, 10))
    facts = project(memory_database(), apologised)[code]
    assert facts["due_at"] == vn(2026, 3, 10, 17) and facts["timeliness"] == "early"
    assert facts["overdue_noticed_at"] == vn(2026, 3, 5, 17, 1) and facts["status"] == "result_ready"
    stored = project(memory_database(), apologised[:5])[code]  # up to the apology: still processing
    assert (stored["status"], stored["due_at"]) == ("processing", vn(2026, 3, 10, 17))


def test_a_withdrawn_dossier_ends_there(unit):
    code = "000.00.06.H56-260302-0010"
    events = lifecycle(code, submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9), due=vn(2026, 3, 5, 17),
                       supplement=(vn(2026, 3, 3, 10), None, None), withdrawn=vn(2026, 3, 4, 8))
    facts = project(unit, events)[code]
    assert (facts["status"], facts["status_code"]) == ("withdrawn", 7)
    assert facts["withdrawn_at"] == facts["closed_at"] == vn(2026, 3, 4, 8)
    assert facts["pause_ended_at"] == vn(2026, 3, 4, 8) and facts["timeliness"] is None
    # a task event stamped after the withdrawal (workflow had not heard yet) does not reopen it
    late_task = event("workflow", "task_completed", {**events[2].data, "completed_at": vn(2026, 3, 4, 9),
                                                     "completed_by": "x", "outcome": "approve",
                                                     "timeliness": "early", "run_version": 2}, vn(2026, 3, 4, 9))
    assert project(memory_database(), events + [late_task])[code]["status"] == "withdrawn"


@pytest.mark.parametrize("seed", range(3))
def test_replay_of_a_random_mix_equals_the_live_projections_in_any_delivery_order(seed):
    rng = random.Random(seed)
    lives = random_lives(rng, 150, vn(2026, 1, 5, 8), 90, reschedules=True)
    events = [evt for life in lives for evt in life]
    assert {e.event_type for e in events} >= {"supplement_requested", "dossier_supplemented", "dossier_withdrawn",
                                              "dossier_refused", "result_returned", "dossier_rescheduled",
                                              "task_overdue", "dossier_overdue"}
    ordered_unit = memory_database()
    ordered = project(ordered_unit, events)
    statuses = {facts["status"] for facts in ordered.values()}
    assert statuses >= {"submitted", "refused", "processing", "supplement_requested", "withdrawn",
                        "result_ready", "returned"}
    shuffled = events[:]
    rng.shuffle(shuffled)
    live_unit = memory_database()
    live = project(live_unit, shuffled, sizes=[rng.randint(1, 64) for _ in range(20)])
    assert live == ordered
    uow = live_unit()
    assert projections.rebuild_all(uow, VN) == {"dossiers": len(lives), "events": len(events)}
    assert all_facts(live_unit().session) == live


def test_make_replay_rebuilds_a_database_file(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'reporting.db'}"
    migrate.upgrade("reporting", url)
    uow = cli.unit_of_work(url)
    events = [evt for life in random_lives(random.Random(1), 30, vn(2026, 2, 2, 8), 30) for evt in life]
    for evt in events:
        projections.record(uow, [evt], VN)
    live = all_facts(uow.session)
    uow.session.execute(update(DossierFact).values(status="submitted", status_code=1))  # a projection gone wrong
    uow.commit()
    cli.main(["replay", "--db-url", url])
    out, err = capsys.readouterr()
    assert json.loads(out) == {"dossiers": 30, "events": len(events)}
    assert "replay [" in err and "30/30" in err
    assert all_facts(cli.unit_of_work(url).session) == live


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_live_in_any_order_with_redeliveries_equals_the_replay_and_the_order_things_happened(data):
    events = rich_life("000.00.06.H56-260302-0021", data.draw(st.sampled_from(ENDINGS))) + returned_dossier()
    delivered = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=6))))
    batches = in_batches(delivered, data.draw(st.lists(st.integers(1, 16), min_size=1, max_size=6)))
    uow = memory_database()()
    # the inbox drops repeats, in a batch or across batches
    assert sum(projections.record(uow, batch, VN) for batch in batches) == len(events)
    live, live_counters = all_facts(uow.session), counters(uow.session)
    in_order = memory_database()()
    for evt in events:
        projections.record(in_order, [evt], VN)
    assert live == all_facts(in_order.session) and live_counters == counters(in_order.session)
    assert projections.rebuild_all(uow, VN) == {"dossiers": 2, "events": len(events)}
    assert all_facts(uow.session) == live and counters(uow.session) == live_counters


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'reporting.db'}"
        migrate.upgrade("reporting", url)
        yield url
        return
    request.getfixturevalue("postgres")
    urls = infra.create_service_databases(names=("reporting",))
    yield urls["reporting"]
    infra.drop_databases(urls)


def test_events_of_one_dossier_applied_in_one_transaction_all_land_whoever_applies_the_next_batch(db_url):
    """The consumer applies a batch of events (several of one dossier) and commits once; two workers'
    sessions take turns, each still holding the dossier's row from its previous batch."""
    engine = make_engine(db_url)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    workers = [UnitOfWork(sessions(), "reporting", Base.metadata) for _ in range(2)]
    events = rich_life("000.00.06.H56-260302-0022") + returned_dossier()
    held = []  # what a worker's session still holds after its commit (expire_on_commit=False)
    for turn, start in enumerate(range(0, len(events), 7)):
        uow = workers[turn % 2]
        projections.project(uow.session, events[start:start + 7], VN)
        uow.commit()
        held += [uow.session.get(DossierFact, code) for code in {projections.dossier_code(e.data) for e in events}]
        uow.commit()  # ends the read's transaction; the rows stay in the session, unexpired
    expected = memory_database()()
    for evt in events:
        projections.record(expected, [evt], VN)
    with sessions() as session:
        assert all_facts(session) == all_facts(expected.session)
        assert counters(session) == counters(expected.session)
        assert session.scalar(select(func.count()).select_from(StoredEvent)) == len(events)
    for uow in workers:
        uow.close()
    engine.dispose()


@pytest.mark.parametrize("which", ["new dossiers", "dossiers known"])
def test_a_batch_costs_the_same_statements_whatever_its_size(db_url, which):
    """Claimed, read, stored, written, counted and queued for the portal: one statement each (two for the
    counters: by field, by agency), for 1 event or 50 (dossiers known: their rows updated, their counters
    moved; new ones: inserted, not counted)."""
    engine = make_engine(db_url)
    statements = []
    listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *args: statements.append(sql))
    uow = UnitOfWork(sessionmaker(bind=engine, expire_on_commit=False)(), "reporting", Base.metadata)
    costs = {}
    for size in (1, 5, 50):
        lives = [lifecycle(f"{size:02d}-{n:03d}", submitted=vn(2026, 3, 2, 8), received=vn(2026, 3, 2, 9),
                           due=vn(2026, 3, 5, 17)) for n in range(size)]
        submitted, received = ([life[k] for life in lives] for k in (0, 1))
        if which == "dossiers known":
            projections.record(uow, submitted, VN)
        statements.clear()
        assert projections.record(uow, submitted if which == "new dossiers" else received, VN) == size
        costs[size] = len(statements)
    expected = 5 if which == "new dossiers" else 7
    assert costs == {1: expected, 5: expected, 50: expected}, statements
    uow.close()
    engine.dispose()


def test_two_instances_applying_a_new_dossiers_first_events_at_once_both_land(postgres):
    """Neither instance read a row: the other commits its new row between this one's read and its INSERT,
    which then inserts nothing and fails as transient (never as a bug, which is parked after a few
    tries); its retry finds the row and applies the event to it."""
    urls = infra.create_service_databases(names=("reporting",))
    engine = make_engine(urls["reporting"])
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    first, second = (UnitOfWork(sessions(), "reporting", Base.metadata) for _ in range(2))
    submitted, received, *_ = returned_dossier()
    racing = []

    def other_instance_commits_after_the_read(conn, cursor, statement, *args):
        if "FOR UPDATE" in statement and not racing:
            racing.append(statement)
            projections.record(first, [submitted], VN)
            first.commit()

    listen(engine, "after_cursor_execute", other_instance_commits_after_the_read)
    with pytest.raises(TransientFailure) as failure:
        projections.record(second, [received], VN)
    assert racing and faults.is_transient(failure.value)
    second.rollback()
    assert projections.record(second, [received], VN) == 1  # the retry
    second.commit()
    expected = memory_database()()
    projections.record(expected, [submitted, received], VN)
    with sessions() as session:
        assert all_facts(session) == all_facts(expected.session)
        assert counters(session) == counters(expected.session)
    for uow in (first, second):
        uow.close()
    engine.dispose()
    infra.drop_databases(urls)
