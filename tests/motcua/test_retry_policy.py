"""What becomes of a failed message (motcua.bus.RetryPolicy over motcua.faults), and how a parked copy
keeps personal data sealed (motcua.privacy)."""
import pytest
import sqlalchemy.exc
from cryptography.fernet import InvalidToken
from marshmallow import ValidationError

from motcua.bus import RetryPolicy, error_summary
from motcua.errors import IllegalTransition
from motcua.faults import TransientFailure, is_poison, is_transient
from motcua.privacy import redact_personal_fields, seal_personal_fields, sealing_key, unseal_personal_fields

POLICY = RetryPolicy(retry_for=3600, base=1, cap=300, bug_attempts=3)
DATABASE_AWAY = sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))


def test_the_delay_queues_double_from_the_base_up_to_the_cap():
    assert POLICY.delays == (1, 2, 4, 8, 16, 32, 64, 128, 256, 300)
    assert RetryPolicy(base=0.25, cap=1).delays == (0.25, 0.5, 1)


def test_a_transient_failure_waits_longer_each_time_until_the_cap():
    longest = [POLICY.next_delay(DATABASE_AWAY, n, failing_for=10, replays=0, jitter=1.0) for n in range(1, 12)]
    assert longest == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    # The jitter picks between a delay and the one below it, never less than the base.
    shortest = [POLICY.next_delay(DATABASE_AWAY, n, failing_for=10, replays=0, jitter=0.0) for n in (1, 2, 5)]
    assert shortest == [1, 1, 8]


def test_a_transient_failure_is_retried_for_an_hour_then_parked():
    assert POLICY.next_delay(DATABASE_AWAY, 20, failing_for=3599, replays=0, jitter=1.0) == 300
    assert POLICY.next_delay(DATABASE_AWAY, 20, failing_for=3599, replays=0, jitter=0.0) == 128  # 150 wanted
    assert POLICY.next_delay(DATABASE_AWAY, 21, failing_for=3600, replays=0) is None
    assert POLICY.next_delay(TransientFailure("broker away"), 2, failing_for=3700, replays=0) is None


@pytest.mark.parametrize("poison", [IllegalTransition("already returned"), ValidationError({"code": ["missing"]})])
def test_poison_is_parked_at_once(poison):
    assert is_poison(poison) and not is_transient(poison)
    assert POLICY.next_delay(poison, 1, failing_for=0, replays=0) is None


def test_a_domain_error_raised_while_the_database_was_away_is_still_poison():
    try:
        try:
            raise DATABASE_AWAY
        except sqlalchemy.exc.OperationalError as exc:
            raise IllegalTransition("not allowed") from exc
    except IllegalTransition as exc:
        assert is_poison(exc) and POLICY.next_delay(exc, 1, 0, 0) is None


def test_a_bug_is_tried_a_few_times_then_parked():
    bug = KeyError("dossier_code")
    assert not is_poison(bug) and not is_transient(bug)
    assert [POLICY.next_delay(bug, n, failing_for=1, replays=0, jitter=1.0) for n in (1, 2, 3)] == [1, 2, None]


def test_failures_while_the_database_was_away_do_not_count_against_a_bug():
    """A race (a bug that passes) met after five tries with the database away is still tried again."""
    race = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert POLICY.next_delay(race, 6, failing_for=40, replays=0, jitter=1.0, bugs=1) == 32
    assert POLICY.next_delay(race, 8, failing_for=90, replays=0, bugs=3) is None


def test_a_replayed_message_parks_at_once_unless_its_failure_is_transient():
    assert POLICY.next_delay(KeyError("x"), 1, failing_for=0, replays=1) is None
    assert POLICY.next_delay(IllegalTransition("x"), 1, failing_for=0, replays=3) is None
    assert POLICY.next_delay(DATABASE_AWAY, 1, failing_for=0, replays=1, jitter=1.0) == 1  # a fresh window


def test_an_error_summary_keeps_the_first_line_only():
    error = sqlalchemy.exc.IntegrityError("INSERT INTO contacts VALUES (%(email)s)", {"email": "an@example.vn"},
                                          Exception("duplicate key\nDETAIL: Key (email)=(an@example.vn) exists"))
    summary = error_summary(error)
    assert summary.startswith("IntegrityError: (builtins.Exception) duplicate key")
    assert "an@example.vn" not in summary


BODY = {"event_type": "dossier_received", "data": {
    "code": "000.00.06.H56-260302-0001", "contact": {"full_name": "Nguyễn Văn An", "email": "an@example.vn",
                                                     "phone": "0912345678"},
    "form": {"id_number": "001099012345"}, "items": [{"phone": "0987654321"}]}}


def test_personal_fields_are_sealed_with_the_services_key_and_opened_only_with_it():
    key = sealing_key("notify's own key")
    sealed = seal_personal_fields(BODY, key)
    text = repr(sealed)
    assert "000.00.06.H56-260302-0001" in text  # what is not personal stays readable
    assert not any(value in text for value in ("Nguyễn", "an@example.vn", "0912345678", "001099012345",
                                               "0987654321"))
    assert seal_personal_fields(sealed, key) == sealed  # sealing twice changes nothing
    assert unseal_personal_fields(sealed, key) == BODY
    with pytest.raises(InvalidToken):
        unseal_personal_fields(sealed, sealing_key("another service's key"))


def test_an_operator_sees_keys_and_codes_never_personal_values():
    shown = redact_personal_fields(seal_personal_fields(BODY, sealing_key("k")))
    assert shown == {"event_type": "dossier_received", "data": {
        "code": "000.00.06.H56-260302-0001", "contact": "<personal>", "form": "<personal>",
        "items": [{"phone": "<personal>"}]}}
    assert redact_personal_fields(BODY) == shown  # the same if it was never sealed
