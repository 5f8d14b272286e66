"""The idempotency helper's rules, against the kit's fake unit of work: a repeat gets the first result
and makes no second effect; another request under the same key is refused naming the header; a
failed command leaves its key free; keys are per scope and expire."""
from datetime import datetime, timedelta, timezone

import pytest

from motcua.errors import Conflict, ValidationFailed
from motcua.fakes import FakeUnitOfWork
from motcua.idempotency import (
    HEADER,
    Command,
    account_scope,
    applicant_scope,
    fingerprint,
    key_or_new,
    run_once,
    valid_key,
)

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
ALICE = account_scope("receptionist@000.20.01.H56")


class Counter:
    """A command whose effect shows once its transaction commits, and whose result says which run it
    was. A repeat may run it again (nothing is read first): what counts is what commits."""

    def __init__(self, uow):
        self.uow, self.runs, self.effects = uow, 0, []

    def __call__(self):
        self.runs += 1
        run = self.runs
        self.uow.after_commit(lambda: self.effects.append(run))
        self.uow.commit()  # held by run_once until the result is recorded
        return {"run": run}


def command(key="k-1", name="intake.receive_dossier", scope=ALICE, request=("X-1",)):
    return Command.of(key, name, scope, list(request))


def test_a_repeat_gets_the_first_result_and_makes_no_second_effect():
    uow = FakeUnitOfWork()
    receive = Counter(uow)
    first = run_once(uow, command(), receive, NOW)
    again = run_once(uow, command(), receive, NOW + timedelta(minutes=5))
    assert first == again == {"run": 1}
    assert receive.effects == [1] and uow.commits == 1


def test_the_result_is_committed_with_the_effect_and_only_then():
    uow = FakeUnitOfWork()

    def inspect():
        uow.commit()  # the command's own commit, held
        assert uow.commits == 0 and not uow.command_results.rows
        return {"ok": True}

    run_once(uow, command(), inspect, NOW)
    assert uow.commits == 1 and uow.command_results.rows[ALICE, "k-1"].result == {"ok": True}


def test_the_same_key_for_another_request_is_refused_naming_the_header():
    uow = FakeUnitOfWork()
    run_once(uow, command(request=("X-1",)), Counter(uow), NOW)
    with pytest.raises(Conflict) as refused:
        run_once(uow, command(request=("X-2",)), Counter(uow), NOW)
    assert refused.value.field == HEADER
    with pytest.raises(Conflict):
        run_once(uow, command(name="intake.refuse_dossier"), Counter(uow), NOW)


def test_a_failed_command_leaves_its_key_free_and_nothing_recorded():
    uow = FakeUnitOfWork()

    effects = []

    def fails():
        uow.after_commit(lambda: effects.append("received"))
        raise Conflict("not in a status that can be received")

    with pytest.raises(Conflict):
        run_once(uow, command(), fails, NOW)
    assert not uow.command_results.rows and uow.commits == 0
    uow.commit()
    assert not effects  # rolled back with the key's claim
    assert run_once(uow, command(), Counter(uow), NOW) == {"run": 1}


def test_a_repeat_refused_by_the_state_the_first_left_answers_the_first_result():
    """The usual repeat: the dossier was received by the first call, so the second's receive fails
    (409); that failure is not the answer, the stored first result is."""
    uow = FakeUnitOfWork()
    state = {"received": False}

    def receive():
        if state["received"]:
            raise Conflict("already received")
        state["received"] = True
        uow.commit()
        return {"status": "received"}

    first = run_once(uow, command(), receive, NOW)
    assert run_once(uow, command(), receive, NOW) == first
    with pytest.raises(Conflict, match="already received"):  # another key: a new command, judged afresh
        run_once(uow, command(key="k-2"), receive, NOW)
    assert not uow.command_results._pending  # the failed command's look left nothing


def test_keys_are_per_scope():
    uow = FakeUnitOfWork()
    mine, theirs = Counter(uow), Counter(uow)
    run_once(uow, command(scope=ALICE), mine, NOW)
    assert run_once(uow, command(scope=account_scope("someone-else"), request=("Y-9",)), theirs, NOW) == {"run": 1}
    assert mine.runs == theirs.runs == 1


def test_an_expired_key_names_a_new_command():
    uow = FakeUnitOfWork()
    receive = Counter(uow)
    run_once(uow, command(), receive, NOW, ttl=timedelta(hours=24))
    assert run_once(uow, command(), receive, NOW + timedelta(hours=23), ttl=timedelta(hours=24)) == {"run": 1}
    renewed = run_once(uow, command(request=("X-2",)), receive, NOW + timedelta(hours=24), ttl=timedelta(hours=24))
    assert receive.effects == [1, renewed["run"]]
    assert uow.command_results.rows[ALICE, "k-1"].result == renewed


def test_without_a_key_the_command_simply_runs():
    uow = FakeUnitOfWork()
    receive = Counter(uow)
    assert command(key=None) is None
    run_once(uow, None, receive, NOW)
    run_once(uow, None, receive, NOW)
    assert receive.effects == [1, 2] and uow.commits == 2 and not uow.command_results.rows


def test_fingerprints_ignore_key_order_and_see_every_value():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_keys_from_clients_are_bounded_and_a_missing_one_is_made():
    assert valid_key("") is None and valid_key("abc") == "abc"
    for bad in ("k" * 129, "line\nbreak"):
        with pytest.raises(ValidationFailed) as refused:
            valid_key(bad)
        assert refused.value.field == HEADER
    made = key_or_new(None)
    assert len(made) == 32 and made != key_or_new(None)


def test_an_applicant_scope_is_a_keyed_hash_never_the_identity():
    scope = applicant_scope("s3cret", "0912345678")
    assert "0912345678" not in scope and scope == applicant_scope("s3cret", "0912345678")
    assert scope != applicant_scope("s3cret", "0912345679") != applicant_scope("other", "0912345678")
