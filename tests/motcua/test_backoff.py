"""The one backoff formula (motcua/backoff.py): doubles, caps, keeps half, jitters the other half."""
import pytest

from motcua.backoff import backoff


def test_backoff_doubles_caps_and_jitters_the_upper_half():
    assert [backoff(n, 30, 300, jitter=0.0) for n in (1, 2, 3, 10)] == [15, 30, 60, 150]
    assert [backoff(n, 30, 300, jitter=1.0) for n in (1, 2, 3, 10)] == [30, 60, 120, 300]
    assert backoff(2, 10, 60, jitter=0.5) == 15


def test_backoff_is_random_between_half_and_all_of_the_delay_by_default():
    delays = {backoff(3, 1, 100) for _ in range(50)}
    assert all(2 <= d <= 4 for d in delays) and len(delays) > 1


@pytest.mark.parametrize("attempt", [0, 1])
def test_the_first_wait_is_the_base(attempt):
    assert backoff(attempt, 5, 60, jitter=1.0) == 5


def test_a_huge_attempt_number_stays_at_the_cap():
    assert backoff(10_000, 0.5, 30, jitter=1.0) == 30
