"""The delivery repository's contract, run against the in-memory fake (tests/notify/fakes.py), SQLite
and PostgreSQL alike: the SQL statements decide what `Delivery.is_due`/`holds` decide in plain code,
and the rule tests trust the fake to behave as the database does."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from motcua.db import make_engine
from services.notify.delivery import CREATED, DELIVERED, SENDING, Delivery, RetryPolicy
from services.notify.models import Base
from services.notify.preferences import Choice
from services.notify.repository import NotifyUnitOfWork
from tests import infra
from tests.notify.fakes import FakeNotifyLog

T0 = datetime(2026, 2, 24, 2, 5, tzinfo=timezone.utc)
LEASE = timedelta(seconds=60)
RETRY = RetryPolicy(3, 10, 60, jitter=lambda: 0.5)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def postgres_sessions(request):
    request.getfixturevalue("postgres")
    urls = infra.create_service_databases(("notify",))
    engine = make_engine(urls["notify"])
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()
    infra.drop_databases(urls)


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def units(request):
    """Makes units of work over one empty log: the fake's, or a real database's."""
    if request.param == "fake":
        return FakeNotifyLog().unit_of_work
    if request.param == "sqlite":
        sessions = request.getfixturevalue("sessions")
    else:
        sessions = request.getfixturevalue("postgres_sessions")
        with sessions() as session:
            session.execute(text("TRUNCATE deliveries, preferences, inbox RESTART IDENTITY"))
            session.commit()
    return lambda: NotifyUnitOfWork(sessions(), "notify", Base.metadata)


def owed(n: int, channel: str = "email", provider: str = "smtp", now: datetime = T0, dossier: str = "D-1",
         skip_reason: str | None = None) -> Delivery:
    return Delivery.owed(event_id=f"e-{n}", event_type="dossier_received", dossier_code=dossier, agency_code="A",
                         channel=channel, provider=provider, recipient_hash=f"h-{n}", recipient_masked="n***@x.vn",
                         address=f"n{n}@x.vn", context={"n": n, "name": "Nguyễn Thị Ánh"}, now=now,
                         skip_reason=skip_reason)


def run(units, work):
    uow = units()
    try:
        result = work(uow.deliveries)
        uow.commit()
        return result
    finally:
        uow.close()


def claim(repo, now, lease, limit, budgets):
    return repo.claim_due(now, lease, limit, budgets)[0]


def summary(deliveries):
    return [(d.id, d.status, d.attempts) for d in deliveries]


def test_an_events_messages_are_written_once(units):
    run(units, lambda repo: repo.add_new([owed(1), owed(2, "sms", "outbox"), owed(3, skip_reason="no_address")]))
    run(units, lambda repo: repo.add_new([owed(1), owed(4, now=at(1))]))  # e-1 again: left as it is
    listed = run(units, lambda repo: repo.of_dossier("D-1"))
    assert [(d.event_id, d.channel, d.status, d.address) for d in listed] == [
        ("e-1", "email", CREATED, "n1@x.vn"), ("e-2", "sms", CREATED, "n2@x.vn"),
        ("e-3", "email", "skipped", None), ("e-4", "email", CREATED, "n4@x.vn")]
    assert listed[0].context == {"n": 1, "name": "Nguyễn Thị Ánh"} and listed[0].created_at == T0


def test_a_claim_takes_the_due_rows_oldest_first_and_nobody_takes_them_again_before_the_lease_ends(units):
    run(units, lambda repo: repo.add_new([owed(1, now=at(2)), owed(2, now=at(1)), owed(3, now=at(1)),
                                          owed(4, now=at(50))]))
    claimed = run(units, lambda repo: claim(repo, at(10), LEASE, 2, {}))
    assert summary(claimed) == [(2, SENDING, 1), (3, SENDING, 1)]
    assert claimed[0].lease_until == at(70) and claimed[0].updated_at == at(10)
    assert summary(run(units, lambda repo: claim(repo, at(10), LEASE, 5, {}))) == [(1, SENDING, 1)]
    assert run(units, lambda repo: claim(repo, at(49), LEASE, 5, {})) == []
    assert summary(run(units, lambda repo: claim(repo, at(69), LEASE, 5, {}))) == [(4, SENDING, 1)]
    # the leases of 1, 2 and 3 ran out (their sender died): taken again, one more attempt
    assert summary(run(units, lambda repo: claim(repo, at(70), LEASE, 5, {}))) == [
        (2, SENDING, 2), (3, SENDING, 2), (1, SENDING, 2)]


def test_what_is_not_due_is_never_claimed(units):
    run(units, lambda repo: repo.add_new([owed(n) for n in range(1, 6)] + [owed(6, skip_reason="opted_out")]))
    [one, two, three, four, five] = run(units, lambda repo: claim(repo, T0, LEASE, 5, {}))
    one.failed_temporarily(at(1), "SMTP 451", RETRY)                 # next try at 8.5 s
    two.failed(at(1), "permanent-failure", "SMTP 550")               # dead letter
    three.accepted(at(1), at(1), "m-3", awaits_receipt=True, key="k")  # waits for its receipt
    four.delivered(at(1))
    run(units, lambda repo: repo.record([one, two, three, four]))   # five stays in flight
    assert run(units, lambda repo: claim(repo, at(8), LEASE, 10, {})) == []
    assert summary(run(units, lambda repo: claim(repo, at(8.5), LEASE, 10, {}))) == [(1, SENDING, 2)]
    assert summary(run(units, lambda repo: claim(repo, at(10 ** 6), LEASE, 10, {}))) == [
        (5, SENDING, 2), (1, SENDING, 3)]  # leases ran out: by their last due time


def test_a_provider_under_a_rate_limit_gives_only_its_budget(units):
    run(units, lambda repo: repo.add_new([owed(1, "sms", "vnpt"), owed(2, "sms", "vnpt"), owed(3),
                                          owed(4, "sms", "vnpt"), owed(5)]))
    assert [d.id for d in run(units, lambda repo: claim(repo, T0, LEASE, 10, {"vnpt": 1}))] == [1, 3, 5]
    assert run(units, lambda repo: claim(repo, T0, LEASE, 10, {"vnpt": 0})) == []
    assert [d.id for d in run(units, lambda repo: claim(repo, T0, LEASE, 10, {"vnpt": 5}))] == [2, 4]


def test_a_renewal_holds_only_the_claims_still_their_senders(units):
    run(units, lambda repo: repo.add_new([owed(1), owed(2)]))
    mine = run(units, lambda repo: claim(repo, T0, LEASE, 2, {}))
    run(units, lambda repo: claim(repo, at(60), LEASE, 1, {}))  # another instance took row 1 over
    assert run(units, lambda repo: repo.renew(mine, at(61), LEASE)) == {2}
    assert run(units, lambda repo: repo.get(2)).lease_until == at(121)
    assert run(units, lambda repo: repo.renew([], at(61), LEASE)) == set()


def test_recording_writes_the_moves_and_erases_what_a_delivered_message_no_longer_needs(units):
    run(units, lambda repo: repo.add_new([owed(1), owed(2, "sms", "outbox")]))
    first, second = run(units, lambda repo: claim(repo, T0, LEASE, 2, {}))
    first.sending_through("smtp", None)
    first.delivered(at(3))
    second.sending_through("vnpt", 1)
    second.failed_temporarily(at(3), "HTTP 503", RETRY)
    run(units, lambda repo: repo.record([first, second]))
    stored = {d.id: d for d in run(units, lambda repo: repo.of_dossier("D-1"))}
    assert (stored[1].status, stored[1].delivered_at, stored[1].address, stored[1].context) == (
        DELIVERED, at(3), None, None)
    assert (stored[2].status, stored[2].provider, stored[2].segments, stored[2].reason, stored[2].next_attempt_at,
            stored[2].address, stored[2].context) == ("temporary-failure", "vnpt", 1, "HTTP 503", at(10.5),
                                                      "n2@x.vn", {"n": 2, "name": "Nguyễn Thị Ánh"})


def test_the_next_due_time_is_the_earliest_retry_or_lease(units):
    assert run(units, lambda repo: repo.next_due(T0, set())) is None
    run(units, lambda repo: repo.add_new([owed(1, now=at(5)), owed(2, "sms", "vnpt", now=at(1))]))
    assert run(units, lambda repo: repo.next_due(T0, set())) == at(1)
    assert run(units, lambda repo: repo.next_due(T0, {"vnpt"})) == at(1)  # not due yet: its time counts
    assert run(units, lambda repo: repo.next_due(at(2), {"vnpt"})) == at(5)  # due: it waits for a token
    run(units, lambda repo: claim(repo, at(5), LEASE, 5, {}))
    assert run(units, lambda repo: repo.next_due(at(5), {"vnpt"})) == at(65)  # the leases
    [one] = run(units, lambda repo: [repo.get(1)])
    one.delivered(at(6))
    run(units, lambda repo: repo.record([one]))
    assert run(units, lambda repo: repo.next_due(at(6), set())) == at(65)


def test_a_claim_tells_when_the_rows_it_left_fall_due(units):
    run(units, lambda repo: repo.add_new([owed(1), owed(2), owed(3, now=at(30)), owed(4, "sms", "vnpt")]))
    claimed, rest = run(units, lambda repo: repo.claim_due(T0, LEASE, 2, {"vnpt": 0}))
    assert [d.id for d in claimed] == [1, 2] and rest == at(30)  # vnpt's row waits for a token
    claimed, rest = run(units, lambda repo: repo.claim_due(at(40), LEASE, 5, {}))
    assert [d.id for d in claimed] == [4, 3] and rest == at(60)  # the leases of 1 and 2
    assert run(units, lambda repo: repo.claim_due(at(41), LEASE, 5, {})) == ([], None)


def test_messages_awaiting_a_receipt_are_found_by_reference_and_by_deadline(units):
    assert run(units, lambda repo: repo.earliest_receipt_wait()) is None
    run(units, lambda repo: repo.add_new([owed(1, "sms", "vnpt"), owed(2, "sms", "vnpt")]))
    one, two = run(units, lambda repo: claim(repo, T0, LEASE, 2, {}))
    one.accepted(at(1), at(1), "m-1", awaits_receipt=True, key="k1")
    two.accepted(at(2), at(2), None, awaits_receipt=True, key="e-2.sms")
    run(units, lambda repo: repo.record([one, two]))
    assert run(units, lambda repo: repo.earliest_receipt_wait()) == at(1)
    assert [d.id for d in run(units, lambda repo: repo.receipts_overdue(at(3601), timedelta(hours=1)))] == [1]
    assert [d.id for d in run(units, lambda repo: repo.receipts_overdue(at(3602), timedelta(hours=1)))] == [1, 2]
    assert run(units, lambda repo: repo.by_reference("vnpt", "e-2.sms")).id == 2
    assert run(units, lambda repo: repo.by_reference("other", "m-1")) is None
    assert run(units, lambda repo: claim(repo, at(10 ** 6), LEASE, 5, {})) == []  # never sent again


def test_dead_letters_waiting_rows_and_the_gauge(units):
    run(units, lambda repo: repo.add_new([owed(1), owed(2, "sms", "outbox"), owed(3), owed(4, dossier="D-2")]))
    claimed = run(units, lambda repo: claim(repo, T0, LEASE, 2, {}))
    for n, delivery in enumerate(claimed):
        delivery.failed(at(n + 1), "permanent-failure", "refused")
    run(units, lambda repo: repo.record(claimed))
    assert [d.id for d in run(units, lambda repo: repo.dead_letters(10))] == [2, 1]
    assert [d.id for d in run(units, lambda repo: repo.dead_letters(1))] == [2]
    assert run(units, lambda repo: repo.open_dead_letters()) == {("email",): 1, ("sms",): 1}
    assert [d.id for d in run(units, lambda repo: repo.waiting_of("D-1", ["email", "sms"]))] == [3]
    assert run(units, lambda repo: repo.get(99)) is None


def test_choices_are_kept_in_the_order_they_were_made(units):
    uow = units()
    try:
        uow.preferences.add("D-1", [Choice("sms", True, "tracking", at(1)), Choice("email", False, "tracking", at(1))])
        uow.preferences.add("D-1", [Choice("sms", False, "counter", at(2))])
        uow.preferences.add("D-2", [Choice("sms", True, "tracking", at(0))])
        uow.commit()
        assert uow.preferences.recorded("D-1") == [Choice("sms", True, "tracking", at(1)),
                                                   Choice("email", False, "tracking", at(1)),
                                                   Choice("sms", False, "counter", at(2))]
        # a batch's dossiers at once: each its own choices, in order; a dossier without any, none
        assert uow.preferences.recorded_for({"D-1", "D-2", "D-3"}) == {
            "D-1": uow.preferences.recorded("D-1"), "D-2": [Choice("sms", True, "tracking", at(0))], "D-3": []}
        assert uow.preferences.recorded_for(set()) == {}
    finally:
        uow.close()


@pytest.mark.integration
def test_two_dispatchers_claiming_at_once_on_postgresql_never_share_a_row(postgres_sessions):
    sessions = postgres_sessions
    with sessions() as session:
        session.execute(text("TRUNCATE deliveries RESTART IDENTITY"))
        session.commit()
    units = lambda: NotifyUnitOfWork(sessions(), "notify", Base.metadata)  # noqa: E731
    run(units, lambda repo: repo.add_new([owed(n) for n in range(1, 7)]))
    first, second = units(), units()
    try:
        mine = claim(first.deliveries, T0, LEASE, 4, {})        # not yet committed: its rows are locked
        theirs = claim(second.deliveries, T0, LEASE, 4, {})     # skipped, not waited for
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    assert [d.id for d in mine] == [1, 2, 3, 4] and [d.id for d in theirs] == [5, 6]
