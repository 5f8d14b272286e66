"""The bench's arithmetic on figures: several windows (the lifecycle's rounds) as one."""
import pytest

from bench.figures import weighted_mean


def test_rounds_together_are_their_mean_weighted_by_units():
    # 10 dossiers at 100 ms each and 30 at 60 ms: 40 dossiers that cost 2,800 ms, 70 ms each
    first = {"gateway": {"cpu_ms": 100.0, "statements": 8.0}, "all services": {"cpu_ms": 100.0}}
    second = {"gateway": {"cpu_ms": 60.0, "statements": 8.0}, "all services": {"cpu_ms": 60.0}}
    merged = weighted_mean([(first, 10), (second, 30)])
    assert merged == {"gateway": {"cpu_ms": pytest.approx(70.0), "statements": pytest.approx(8.0)},
                      "all services": {"cpu_ms": pytest.approx(70.0)}}


def test_a_counter_that_did_not_move_in_a_window_counts_as_zero_there():
    # `details` leaves out what did not change: a dead letter published in one round of two
    merged = weighted_mean([({"published": {"dead": 2.0}}, 50), ({"published": {}}, 50)])
    assert merged == {"published": {"dead": pytest.approx(1.0)}}


def test_one_window_is_itself():
    figures = {"services": {"intake": {"cpu_ms": 21.5}}, "rate": 3.0}
    assert weighted_mean([(figures, 200)]) == figures
