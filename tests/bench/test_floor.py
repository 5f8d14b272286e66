"""The nameko floor's plan: the lifecycle's messages per dossier, spread over dossiers and calls; and the
floor measured for real (trivial nameko services on the real broker)."""
import pytest

from bench.floor import Pattern, measure


def test_the_pattern_is_read_off_a_lifecycle_sides_figures():
    services = {"gateway": {"published": 10.5, "delivered": 22.5},
                "all services": {"published": 35.9, "delivered": 56.9}}
    assert Pattern.of_lifecycle(services) == Pattern(10.5, pytest.approx(14.9), pytest.approx(35.9))


def test_the_plan_gives_the_patterns_totals_spread_evenly():
    plan = Pattern(calls=10.5, events=15.0, deliveries=36.0).plan(200)
    calls = [call for dossier in plan for call in dossier]
    assert len(plan) == 200 and len(calls) == 2100
    assert sorted({len(dossier) for dossier in plan}) == [10, 11]
    reaching_two, reaching_three = sum(c[0] for c in calls), sum(c[1] for c in calls)
    assert reaching_two + reaching_three == 3000  # events
    assert 2 * reaching_two + 3 * reaching_three == 7200  # deliveries
    assert max(sum(call) for call in calls) - min(sum(call) for call in calls) <= 1
    assert Pattern.sent_by(plan) == Pattern(10.5, 15.0, 36.0)


@pytest.mark.integration
def test_the_floor_is_measured_on_the_real_broker(tmp_path, rabbitmq):
    floor = measure(Pattern(calls=3, events=4, deliveries=10), dossiers=20, concurrency=4, out_dir=tmp_path,
                    warmup=2)
    assert floor["dossiers"] == 20 and floor["dossiers_per_s"] > 0 and floor["sent"] == {
        "calls": 3, "events": 4, "deliveries": 10}
    assert floor["service_cpu_ms"] > 0 and floor["rabbitmq_cpu_ms"] > 0 and floor["client_cpu_ms"] > 0
