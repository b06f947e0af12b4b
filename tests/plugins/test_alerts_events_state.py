"""Event rules, templates, the alert-event contract, and state across a restart."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from agent.model import Event, Severity
from plugins.alerts import store
from plugins.alerts.templates import render
from tests.plugins.alerts_helpers import Clock, Harness, config, gauge, kinds, make_event

XID = {"name": "XidCritical", "severity": "critical", "event": "gpu.xid",
       "matchers": ['xid=~"48|79|94|95"'], "group_by": ["gpu", "xid"], "resolve_after": "1h",
       "summary": "GPU ${labels.gpu}: XID ${data.xid}", "value_from": "data.xid"}
DRIFT = {"name": "DriftPersisted", "event": "drift.detected", "clear_event": "drift.resolved",
         "group_by": ["model", "model_version"],
         "description": "drifted: ${data.top_features}; n=${data.n}"}
TEMP = "inferwatch_gpu_temperature_celsius"


def _xid(code: int, gpu: str = "0") -> Event:
    return Event(kind="gpu.xid", source="nvidia", host="h", severity=Severity.CRITICAL,
                 attributes={"gpu": gpu, "uuid": "GPU-1", "model": "H100"},
                 data={"xid": code, "description": "fallen off the bus"})


def _drift(kind: str, model: str = "fraud") -> Event:
    return Event(kind=kind, source="drift", host="h", attributes={
        "model": model, "model_version": "3", "window": "1h"}, data={
        "top_features": [{"feature": "amount", "method": "psi", "score": 0.4},
                         {"feature": "country", "method": "chi2", "score": 0.2}], "n": 1200})


def test_event_rule_fires_at_once_on_matching_attributes_only() -> None:
    h = Harness(config(XID))
    assert kinds(h.feed(_xid(13))) == []
    fired = h.feed(_xid(79))
    assert kinds(fired) == ["alert.firing"]
    assert fired[0].data["labels"] == {"gpu": "0", "xid": "79", "alertname": "XidCritical",
                                       "severity": "critical", "host": "h"}
    assert fired[0].data["annotations"]["summary"] == "GPU 0: XID 79"
    assert fired[0].data["value"] == 79.0
    assert kinds(h.feed(_xid(79))) == []  # the same GPU and code: the same alert
    assert kinds(h.feed(_xid(79, gpu="1"))) == ["alert.firing"]


def test_event_rule_resolves_after_resolve_after_since_the_last_match() -> None:
    h = Harness(config(XID))
    h.feed(_xid(48))
    assert kinds(h.step({}, advance=1800)) == []
    h.feed(_xid(48))  # again: the hour counts from here
    assert kinds(h.step({}, advance=3000)) == []
    assert kinds(h.step({}, advance=600)) == ["alert.resolved"]


def test_clear_event_resolves_the_alert_of_the_same_group_only() -> None:
    h = Harness(config(DRIFT))
    fired = h.feed(_drift("drift.detected"), _drift("drift.detected", model="churn"))
    assert fired[0].data["annotations"]["description"] == "drifted: amount, country; n=1200"
    resolved = h.feed(_drift("drift.resolved"))
    assert kinds(resolved) == ["alert.resolved"]
    assert resolved[0].data["labels"]["model"] == "fraud"
    assert resolved[0].data["endsAt"] != ""
    assert [a["labels"]["model"] for a in h.engine.alerts()] == ["churn"]


def test_the_alert_event_follows_the_contract() -> None:
    h = Harness(config({"name": "GpuHot", "metric": TEMP, "fire": 90, "severity": "critical",
                        "labels": {"team": "ml"}, "runbook_url": "https://r/$alertname"}))
    event = h.step(gauge(TEMP, 95, gpu="0"))[0]
    assert event.kind == "alert.firing"
    assert event.severity == Severity.CRITICAL
    data = event.data
    assert set(data) == {"alertname", "fingerprint", "status", "renewal", "labels",
                         "annotations", "startsAt", "endsAt", "generatorURL", "value",
                         "rule_kind"}
    assert (data["status"], data["renewal"], data["endsAt"], data["rule_kind"]) == \
        ("firing", False, "", "metric")
    assert len(data["fingerprint"]) == 16
    assert data["startsAt"].endswith("Z")
    assert data["annotations"] == {"summary": "", "description": "", "runbook_url":
                                   "https://r/GpuHot"}
    assert event.attributes == {"alertname": "GpuHot", "fingerprint": data["fingerprint"],
                                "severity": "critical", "state": "firing",
                                "labels": data["labels"]}
    assert data["labels"]["team"] == "ml"
    msgspec.json.encode(event)  # plain all through
    resolved = h.step(gauge(TEMP, 50, gpu="0"))[0]
    assert (resolved.kind, resolved.data["status"], resolved.attributes["state"]) == \
        ("alert.resolved", "resolved", "resolved")
    assert resolved.data["endsAt"] > resolved.data["startsAt"]


def test_a_template_error_at_run_time_sends_the_raw_template_and_counts() -> None:
    h = Harness(config({"name": "GpuHot", "metric": TEMP, "fire": 90,
                        "summary": "GPU ${labels.nosuch} is hot"}))
    event = h.step(gauge(TEMP, 95, gpu="0"))[0]
    assert event.data["annotations"]["summary"] == "GPU ${labels.nosuch} is hot"
    assert h.engine.stats.template_errors >= 1


def test_templates_cannot_reach_beyond_plain_data() -> None:
    scope = {"labels": {"a": "1"}, "data": {"x": [1, 2]}, "value": 0.123456}
    assert render("$value ${labels.a} ${data.x} ${data.x.1}", scope) == ("0.1235 1 1, 2 2", True)
    for bad in ("${labels.__class__}", "${data.x.__len__}", "${value.real}", "${labels.a.b}"):
        assert render(bad, scope) == (bad, False)


def _restarted(h: Harness, tmp_path: Path, **kwargs: object) -> Harness:
    """Save as the service does, then a new engine on the same file (a restart)."""
    store.save(tmp_path, h.engine.snapshot())
    fresh = Harness(h.engine.config, Clock(h.clock.now + 5))
    fresh.engine.restore(store.load(tmp_path))
    return fresh


def test_restart_while_firing_keeps_start_and_fingerprint_and_sends_no_new_firing(
        tmp_path: Path) -> None:
    h = Harness(config({"name": "GpuHot", "metric": TEMP, "fire": 90}, resend_interval="1m"))
    fired = h.step(gauge(TEMP, 95, gpu="0"))[0]
    after = _restarted(h, tmp_path)
    assert after.flush() == []
    assert kinds(after.step(gauge(TEMP, 95, gpu="0"))) == []  # no new, non-renewal firing
    renewal = after.step(gauge(TEMP, 95, gpu="0"), advance=45)  # 60 s after the last send
    assert kinds(renewal, renewals=True) == ["alert.firing renewal"]
    assert renewal[0].data["startsAt"] == fired.data["startsAt"]
    assert renewal[0].data["fingerprint"] == fired.data["fingerprint"]


def test_an_alert_that_resolved_while_down_resolves_after_restart(tmp_path: Path) -> None:
    h = Harness(config({"name": "GpuHot", "metric": TEMP, "fire": 90}))
    h.step(gauge(TEMP, 95, gpu="0"))
    after = _restarted(h, tmp_path)
    assert kinds(after.step(gauge(TEMP, 40, gpu="0"))) == ["alert.resolved"]


def test_a_resolve_decided_but_not_emitted_goes_out_after_restart(tmp_path: Path) -> None:
    h = Harness(config(DRIFT))
    h.feed(_drift("drift.detected"))
    h.accept = False  # the bus refuses: the resolve is decided, saved, and not yet sent
    h.feed(_drift("drift.resolved"))
    after = _restarted(h, tmp_path)
    assert kinds(after.flush()) == ["alert.resolved"]
    assert kinds(after.flush()) == []


def test_a_rule_removed_while_firing_resolves_after_restart(tmp_path: Path) -> None:
    h = Harness(config({"name": "GpuHot", "metric": TEMP, "fire": 90}))
    h.step(gauge(TEMP, 95, gpu="0"))
    store.save(tmp_path, h.engine.snapshot())
    other = Harness(config({"name": "Other", "metric": TEMP, "fire": 200}))
    other.engine.restore(store.load(tmp_path))
    out = other.flush()
    assert [(e.kind, e.data["alertname"]) for e in out] == [("alert.resolved", "GpuHot")]


def test_a_corrupt_state_file_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / store.FILE).write_bytes(b"{not json")
    assert store.load(tmp_path) == []
    assert (tmp_path / "alerts.corrupt").exists()


@pytest.mark.parametrize("body", [b'{"schema":1,"alerts":5}', b'{"schema":1,"alerts":null}',
                                  b'{"schema":1,"alerts":{"a":1}}', b'[1,2]', b'"x"'])
def test_a_state_file_of_the_wrong_shape_is_set_aside(tmp_path: Path, body: bytes) -> None:
    (tmp_path / store.FILE).write_bytes(body)
    assert store.load(tmp_path) == []  # was a TypeError at every start
    assert (tmp_path / "alerts.corrupt").read_bytes() == body


def test_deeply_nested_evidence_renders_bounded_and_the_alert_is_sent() -> None:
    h = Harness(config(DRIFT))
    nested: list[object] = ["amount"]
    for _ in range(600):  # well under the 4 KiB evidence bound, over the recursion limit
        nested = [nested]
    event = _drift("drift.detected")
    event.data["top_features"] = nested
    fired = h.feed(event)  # was a RecursionError out of the template (the engine broken)
    description = fired[0].data["annotations"]["description"]
    assert description.startswith("drifted: ")
    assert len(description) < 200


def test_our_own_alert_events_are_never_inputs() -> None:
    h = Harness(config({**DRIFT, "event": "*"}))
    assert h.feed(make_event("alert.firing")) == []


def test_a_huge_event_keeps_a_bounded_evidence_that_still_names_the_features() -> None:
    h = Harness(config(DRIFT))
    event = _drift("drift.detected")
    event.data["top_features"] += [{"feature": f"f{i}", "score": i} for i in range(5000)]
    event.data["blob"] = "x" * 100_000
    fired = h.feed(event)
    assert fired[0].data["annotations"]["description"].startswith("drifted: amount, country")
    scope = next(iter(h.engine.rules["DriftPersisted"].alerts.values())).scope
    assert len(msgspec.json.encode(scope)) <= 4096
