"""Intake's commands under an idempotency key against a real database (motcua.idempotency with intake's
unit of work): SQLite for the rules as stored, PostgreSQL for a repeat that arrives while the first
call still runs (it waits on the claimed key, then answers the first result: no second effect, no 409)."""
from datetime import timedelta
from types import SimpleNamespace

import eventlet
import pytest
from sqlalchemy import func, select

from motcua.db import make_engine
from motcua.errors import Conflict
from motcua.idempotency import DEFAULT_TTL, Command, ForgetExpiredKeys, account_scope, applicant_scope
from services.intake import dossiers
from services.intake.models import command_results, dossiers as dossier_table
from tests import infra
from tests.intake.test_dossiers import APPLICANT, MONDAY_9AM, RECEPTIONIST, outbox, submission
from tests.intake.test_repository import assigned, fresh

APPLICANT_SCOPE = applicant_scope("s3cret", APPLICANT["phone"])


def submit_once(uow, policy, key, payload, scope=APPLICANT_SCOPE, now=MONDAY_9AM):
    """As IntakeService.submit_dossier runs it: the view is the stored result (its personal fields sealed)."""
    command = Command.of(key, "intake.submit_dossier", scope, payload)
    return dossiers.once(uow, command, lambda: view(policy, dossiers.submit(uow, policy, payload, None, now)), now,
                         DEFAULT_TTL)


def receive_once(uow, policy, key, code, now):
    command = Command.of(key, "intake.receive_dossier", account_scope(RECEPTIONIST.username), [code])
    return dossiers.once(uow, command, lambda: view(policy, dossiers.receive(uow, policy, code, RECEPTIONIST, now)),
                         now, DEFAULT_TTL)


def view(policy, dossier):
    return dossiers.view(dossier, policy.calendar.tz, policy.catalog)


def stored_dossiers(uow) -> int:
    return uow.session.scalar(select(func.count()).select_from(dossier_table))


def test_a_repeated_submission_answers_the_first_view_and_stores_one_dossier(uow, policy):
    first = submit_once(uow, policy, "retry-1", submission())
    again = submit_once(uow, policy, "retry-1", submission(), now=MONDAY_9AM + timedelta(minutes=3))
    assert again == first
    assert stored_dossiers(uow) == 1
    assert [e["event_type"] for e in outbox(uow)] == ["dossier_submitted"]
    with pytest.raises(Conflict) as refused:
        submit_once(uow, policy, "retry-1", submission(procedure="1.001193"))
    assert refused.value.field == "Idempotency-Key"
    following = submit_once(uow, policy, "retry-2", submission())
    assert following["code"][-4:] == "0002"  # the repeats took no number


def test_a_repeat_answers_the_first_result_even_after_the_dossier_moved_on(uow, policy):
    code = submit_once(uow, policy, "s-1", submission())["code"]
    received = receive_once(uow, policy, "r-1", code, MONDAY_9AM + timedelta(hours=1))
    dossiers.task_assigned(uow, assigned(code))  # processing starts: the dossier is no longer as received
    uow.commit()
    assert view(policy, uow.dossiers.get(code, for_update=False))["status"] != received["status"]
    assert receive_once(uow, policy, "r-1", code, MONDAY_9AM + timedelta(hours=2)) == received
    assert [h.action for h in uow.dossiers.get(code).history].count("receive") == 1


def test_another_applicants_key_is_their_own_command(uow, policy):
    submit_once(uow, policy, "same-key", submission())
    stranger = {**submission(), "applicant": {**APPLICANT, "phone": "0911222333"}}
    theirs = submit_once(uow, policy, "same-key", stranger, scope=applicant_scope("s3cret", "0911222333"))
    assert theirs["applicant"]["phone"] == "0911222333" and stored_dossiers(uow) == 2


def test_expired_keys_are_forgotten_and_fresh_ones_kept(uow, policy, engine):
    submit_once(uow, policy, "old", submission(), now=MONDAY_9AM)
    submit_once(uow, policy, "new", submission(), now=MONDAY_9AM + timedelta(hours=23))
    janitor = ForgetExpiredKeys()  # as the service's dependency has it after setup
    janitor.database, janitor.ttl = SimpleNamespace(unit_of_work=lambda: fresh(engine)), timedelta(hours=24)
    assert janitor.forget(MONDAY_9AM + timedelta(hours=25)) == 1
    assert list(uow.session.scalars(select(command_results.c.key))) == ["new"]


@pytest.fixture(scope="module")
def pg_engine(postgres):
    urls = infra.create_service_databases(names=("intake",))
    engine = make_engine(urls["intake"])
    yield engine
    engine.dispose()
    infra.drop_databases(urls)


def test_a_repeat_while_the_first_runs_waits_for_it_and_answers_its_result(pg_engine, policy):
    """The caller gave up on a receive still running and repeated it: the repeat waits on the dossier
    the first holds, finds it received (409), and answers the first call's result instead."""
    now = MONDAY_9AM + timedelta(days=21)
    setup = fresh(pg_engine)
    code = dossiers.submit(setup, policy, submission(), None, now).code
    setup.commit()
    setup.close()
    first_ran, finish_first = eventlet.event.Event(), eventlet.event.Event()

    def receive(pause: bool):
        uow = fresh(pg_engine)

        def run():
            result = view(policy, dossiers.receive(uow, policy, code, RECEPTIONIST, now))
            if pause:
                first_ran.send()
                finish_first.wait()  # the caller gave up meanwhile, and repeated its request
            return result

        try:
            command = Command.of("pg-receive", "intake.receive_dossier", account_scope(RECEPTIONIST.username), [code])
            return dossiers.once(uow, command, run, now, DEFAULT_TTL)
        finally:
            uow.close()

    one = eventlet.spawn(receive, True)
    first_ran.wait()
    two = eventlet.spawn(receive, False)
    eventlet.sleep(0.5)
    assert not two.dead  # waiting on the dossier the first one holds
    finish_first.send()
    answers = one.wait(), two.wait()
    assert answers[0] == answers[1] and answers[0]["status"] == "received"
    check = fresh(pg_engine)
    assert [h.action for h in check.dossiers.get(code, for_update=False).history].count("receive") == 1
    assert [e["event_type"] for e in outbox(check) if e["data"]["code"] == code].count("dossier_received") == 1
    check.close()


def test_two_submissions_at_once_under_one_key_store_one_dossier(pg_engine, policy):
    """The second waits for the day's dossier number the first holds, then makes its own dossier; the
    key's row refuses it, so it rolls back (number and all) and answers the first one's result."""
    now = MONDAY_9AM + timedelta(days=28)
    both_ran, go = [], eventlet.event.Event()  # both_ran: the codes each run made

    def submit():
        uow = fresh(pg_engine)

        def run():
            dossier = view(policy, dossiers.submit(uow, policy, submission(), None, now))
            both_ran.append(dossier["code"])
            go.wait()
            return dossier

        try:
            return dossiers.once(uow, Command.of("pg-submit", "intake.submit_dossier", APPLICANT_SCOPE, submission()),
                                 run, now, DEFAULT_TTL)
        finally:
            uow.close()

    threads = [eventlet.spawn(submit)]
    while not both_ran:
        eventlet.sleep(0.05)
    threads.append(eventlet.spawn(submit))  # waits for the day's dossier number the first one holds
    eventlet.sleep(0.5)
    go.send()
    first, second = (thread.wait() for thread in threads)
    assert first == second
    check = fresh(pg_engine)
    day = check.session.scalar(select(func.count()).select_from(dossier_table).where(
        dossier_table.c.submitted_at == now))
    assert day == 1
    check.close()
