"""Metric rules: hysteresis, for, keep_firing_for, M-of-N, rates over counters, one alert per
series, disappearing series, divide_by, the max_alerts cap."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.alerts.series import Counter
from tests.plugins.alerts_helpers import Harness, config, gauge, kinds

TEMP = "inferwatch_gpu_temperature_celsius"


def _hot(**extra: object) -> Harness:
    rule = {"name": "GpuHot", "metric": TEMP, "op": ">", "fire": 90, "clear": 80, **extra}
    return Harness(config(rule))


def _run(h: Harness, values: list[float]) -> list[str]:
    out = []
    for v in values:
        out += kinds(h.step(gauge(TEMP, v, gpu="0")))
    return out


def test_hysteresis_fires_past_fire_and_clears_only_past_clear() -> None:
    h = _hot()
    assert _run(h, [85, 95]) == ["alert.firing"]
    assert _run(h, [85, 89, 81, 91, 85]) == []  # between the thresholds: still the one alert
    assert _run(h, [79]) == ["alert.resolved"]
    assert _run(h, [85, 89]) == []  # below fire: nothing new
    assert _run(h, [91]) == ["alert.firing"]


def test_without_hysteresis_a_hovering_value_flaps() -> None:
    h = Harness(config({"name": "GpuHot", "metric": TEMP, "op": ">", "fire": 90}))
    assert _run(h, [91, 89, 91, 89]) == ["alert.firing", "alert.resolved"] * 2


def test_for_holds_the_alert_pending_and_a_short_spike_never_fires() -> None:
    h = _hot(**{"for": "1m"})
    assert _run(h, [95, 95, 95]) == []  # 30 s into the pending state
    assert h.engine.alerts()[0]["state"] == "pending"
    assert _run(h, [79]) == []  # dropped without a word
    assert h.engine.alerts() == []
    assert _run(h, [95, 95, 95, 95, 95]) == ["alert.firing"]  # 60 s after becoming active


def test_keep_firing_for_delays_the_resolve_and_a_return_keeps_the_same_alert() -> None:
    h = _hot(keep_firing_for="1m")
    fired = h.step(gauge(TEMP, 95, gpu="0"))
    assert _run(h, [70, 70, 70]) == []  # 45 s of quiet: still firing
    assert _run(h, [95]) == []  # back: the same alert goes on
    assert h.engine.alerts()[0]["startsAt"] == fired[0].data["startsAt"]
    assert _run(h, [70, 70, 70]) == []
    assert _run(h, [70]) == ["alert.resolved"]  # 60 s after it was last active


def test_m_of_n_debounce_needs_m_crossings_in_the_last_n() -> None:
    h = _hot(debounce="2/3")
    assert _run(h, [95, 70, 70, 95, 70, 70]) == []
    assert _run(h, [95, 95]) == ["alert.firing"]
    assert _run(h, [70, 95, 95, 70]) == []  # one clear in the last three is not enough
    assert _run(h, [70]) == ["alert.resolved"]


def test_one_alert_per_label_set_with_a_stable_fingerprint() -> None:
    h = _hot()
    families = {TEMP: (("gpu", "uuid"), [{("0", "a"): 95.0, ("1", "b"): 70.0, ("2", "c"): 99}])}
    events = h.step(families)
    assert sorted(e.data["labels"]["gpu"] for e in events) == ["0", "2"]
    first = next(e for e in events if e.data["labels"]["gpu"] == "0")
    labels = {"alertname": "GpuHot", "severity": "warning", "host": "h", "gpu": "0",
              "uuid": "a"}
    assert first.data["labels"] == labels
    text = "\0".join(["GpuHot", *(f"{k}\0{v}" for k, v in sorted(labels.items()))])
    assert first.data["fingerprint"] == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert first.attributes["fingerprint"] == first.data["fingerprint"]


def test_matchers_select_series() -> None:
    h = _hot(matchers=['gpu=~"[01]"', 'uuid!="b"'])
    families = {TEMP: (("gpu", "uuid"), [{("0", "a"): 95.0, ("1", "b"): 95.0, ("2", "c"): 99}])}
    assert [e.data["labels"]["gpu"] for e in h.step(families)] == ["0"]


def test_a_series_that_disappears_resolves_after_a_grace() -> None:
    h = _hot()
    assert kinds(h.step(gauge(TEMP, 95, gpu="0"))) == ["alert.firing"]
    assert kinds(h.step({})) == []  # one missed collection is not a resolve
    for _ in range(3):  # nor a late first collection after a restart
        assert kinds(h.step({})) == []
    assert kinds(h.step({})) == ["alert.resolved"]  # missing for a minute


def test_renewals_every_resend_interval_carry_the_same_start() -> None:
    h = Harness(config({"name": "GpuHot", "metric": TEMP, "fire": 90},
                       resend_interval="30s"))
    events = []
    for v in [95, 95, 95, 95, 95]:
        events += kinds(h.step(gauge(TEMP, v, gpu="0")), renewals=True)
    assert events == ["alert.firing", "alert.firing renewal", "alert.firing renewal"]
    starts = {e.data["startsAt"] for e in h.sent}
    assert len(starts) == 1


def test_increase_over_a_counter_with_a_reset() -> None:
    h = Harness(config({"name": "Rejecting", "metric": "inferwatch_samples_rejected_total",
                        "function": "increase", "range": "1m", "op": ">", "fire": 10}))
    name = "inferwatch_samples_rejected_total"
    out = []
    for value in (100, 102, 104, 106, 108):  # +8 a minute
        out += kinds(h.step(gauge(name, value, model="m"), advance=15))
    assert out == []
    for value in (3, 6):  # restarted counter: +3 (reset) and +3
        out += kinds(h.step(gauge(name, value, model="m"), advance=15))
    assert out == []
    assert h.engine.alerts() == []
    out += kinds(h.step(gauge(name, 16, model="m"), advance=15))
    assert out == ["alert.firing"]
    # The last minute: 106 -> 108, reset to 3, 6, 16: 2 + 3 + 3 + 10.
    assert h.sent[0].data["value"] == 18.0


def test_a_rate_judges_nothing_before_its_range_is_covered() -> None:
    h = Harness(config({"name": "NoSamples", "metric": "inferwatch_samples_received_total",
                        "function": "increase", "range": "1m", "op": "<=", "fire": 0}))
    name = "inferwatch_samples_received_total"
    assert _counter_steps(h, name, [5, 5, 5]) == []  # 30 s of history: not yet
    assert _counter_steps(h, name, [5, 5]) == ["alert.firing"]


def _counter_steps(h: Harness, name: str, values: list[float]) -> list[str]:
    out = []
    for v in values:
        out += kinds(h.step(gauge(name, v, model="m")))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.booleans()), min_size=2, max_size=40))
def test_counter_total_equals_true_increments_across_resets(steps: list[tuple[int, bool]]
                                                             ) -> None:
    counter, raw, truth, now = Counter(range_=1e9, points=1_000_000), 0, 0, 0.0
    counter.observe(now, raw)
    for inc, reset in steps:
        now += 1
        if reset and inc < raw:  # a reset is seen as the value going down
            raw = inc  # the restarted counter counted `inc` since
        else:
            raw += inc
        truth += inc
        counter.observe(now, raw)
    found = counter.increase(now, now)
    assert found is not None
    assert found[0] == truth


def test_divide_by_joins_on_the_denominators_labels() -> None:
    h = Harness(config({"name": "DiskFull", "metric": "inferwatch_host_filesystem_avail_bytes",
                        "divide_by": "inferwatch_host_filesystem_size_bytes", "op": "<",
                        "fire": 0.1, "clear": 0.15}))
    names = ("mountpoint", "device", "fstype")
    families = {
        "inferwatch_host_filesystem_avail_bytes": (names, [{("/", "sda", "ext4"): 5.0,
                                                            ("/var", "sdb", "ext4"): 50.0}]),
        "inferwatch_host_filesystem_size_bytes": (names, [{("/", "sda", "ext4"): 100.0,
                                                           ("/var", "sdb", "ext4"): 100.0}]),
    }
    events = h.step(families)
    assert [(e.data["labels"]["mountpoint"], e.data["value"]) for e in events] == [("/", 0.05)]


def test_max_alerts_refuses_and_counts_beyond_the_cap() -> None:
    h = Harness(config({"name": "GpuHot", "metric": TEMP, "fire": 90}, max_alerts=3))
    families = {TEMP: (("gpu",), [{(str(i),): 95.0 for i in range(10)}])}
    assert len(h.step(families)) == 3
    assert h.engine.stats.overflow == 7
    assert h.engine.count() == 3


def test_a_series_replaced_by_another_is_seen_at_once() -> None:
    """The cached selection notices a swap that keeps the number of series."""
    h = _hot(matchers=['gpu=~"[0-9]"'])
    assert [e.data["labels"]["gpu"] for e in h.step(gauge(TEMP, 95, gpu="0"))] == ["0"]
    part = {("1",): 95.0}
    assert [e.data["labels"]["gpu"] for e in h.step({TEMP: (("gpu",), [part])})] == ["1"]
    grown = {TEMP: (("gpu",), [{("1",): 95.0, ("2",): 95.0}])}
    assert [e.data["labels"]["gpu"] for e in h.step(grown)] == ["2"]


def test_the_cap_goes_to_rules_in_config_order_whatever_order_they_run_in() -> None:
    """Rules run family by family (for the CPU's cache); the cap is still settled in the
    order of the config, so the first rule keeps its alerts as before."""
    other = "inferwatch_gpu_power_watts"
    h = Harness(config({"name": "Z", "metric": TEMP, "fire": 90},
                       {"name": "A", "metric": other, "fire": 90}, max_alerts=2))
    families = {TEMP: (("gpu",), [{("0",): 95.0, ("1",): 95.0}]),
                other: (("gpu",), [{("0",): 95.0}])}
    assert sorted(e.data["alertname"] for e in h.step(families)) == ["Z", "Z"]
    assert h.engine.stats.overflow == 1
