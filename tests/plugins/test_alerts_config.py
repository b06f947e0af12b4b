"""Rules as `inferwatch check` sees them, and the shipped rules: none of them dead."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config import build_config
from agent.errors import ConfigError
from agent.metrics import MetricDef
from agent.selfmetrics import SelfMetrics
from plugins.alerts.builtin import BUILTIN_NAMES, builtin_rules
from plugins.alerts.config import AlertsConfig
from plugins.alerts.engine import compile_rules
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]


def _problems(*rules: dict[str, object], **section: object) -> list[str]:
    raw = {"plugins": {"alerts": {"rules": list(rules), **section}}}
    with pytest.raises(ConfigError) as caught:
        build_config(raw, {"alerts": AlertsConfig})
    return caught.value.problems


def test_every_problem_of_a_rule_is_reported_with_its_toml_path() -> None:
    problems = _problems(
        {"name": "Hot", "metric": "inferwatch_gpu_temprature_celsius", "fire": 80, "clear": 90,
         "matchers": ['gpu=~"[0-"', "gpu=0"], "summary": "${value"},
        {"name": "Ev", "event": "gpu.xid", "fire": 3, "description": "$nosuch"},
        {"name": "Both", "event": "x", "metric": "inferwatch_plugin_up", "fire": 1},
        {"name": "Rate", "metric": "inferwatch_plugin_errors_total", "function": "rate",
         "fire": 1, "debounce": "5/3"},
    )
    keys = [p.split(": ", 1)[0] for p in problems]
    assert keys == sorted([
        "plugins.alerts.rules[0].clear", "plugins.alerts.rules[0].matchers[0]",
        "plugins.alerts.rules[0].matchers[1]", "plugins.alerts.rules[0].metric",
        "plugins.alerts.rules[0].summary", "plugins.alerts.rules[1].description",
        "plugins.alerts.rules[1].fire", "plugins.alerts.rules[2].metric",
        "plugins.alerts.rules[3].debounce", "plugins.alerts.rules[3].range"])
    assert "did you mean inferwatch_gpu_temperature_celsius?" in \
        problems[keys.index("plugins.alerts.rules[0].metric")]
    assert "must not be above fire" in problems[0]


@pytest.mark.parametrize(("op", "fire", "clear", "ok"), [
    (">", 90, 80, True), (">", 90, 95, False), (">=", 90, 90, True), ("<", 0.1, 0.15, True),
    ("<", 0.1, 0.05, False), ("<=", 1, 0, False), ("==", 0, 1, False), ("!=", 1, 1, True)])
def test_clear_must_lie_on_the_quiet_side_of_fire(op: str, fire: float, clear: float,
                                                  ok: bool) -> None:
    rule = {"name": "R", "metric": "inferwatch_plugin_up", "op": op, "fire": fire,
            "clear": clear}
    if ok:
        build_config({"plugins": {"alerts": {"rules": [rule]}}}, {"alerts": AlertsConfig})
    else:
        assert [p.split(":")[0] for p in _problems(rule)] == ["plugins.alerts.rules[0].clear"]


def test_section_problems_unknown_disabled_rules_and_duplicate_names() -> None:
    assert _problems(disabled_rules=["GpuLost", "NoSuchRule"]) == [
        "plugins.alerts.disabled_rules[1]: no rule named 'NoSuchRule'"]
    rule = {"name": "R", "metric": "inferwatch_plugin_up", "fire": 0, "op": "=="}
    assert _problems(rule, rule) == ["plugins.alerts.rules[1].name: a second rule named 'R'"]


def test_unknown_metrics_may_be_warnings_instead() -> None:
    raw = {"plugins": {"alerts": {"unknown_metrics": "warn", "rules": [
        {"name": "R", "metric": "inferwatch_site_sensor", "fire": 1}]}}}
    section = build_config(raw, {"alerts": AlertsConfig}).plugins["alerts"]
    assert [w.split(":")[0] for w in section.warnings()] == ["rules[0].metric"]


def test_check_command_names_the_path(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path}/state"\n[plugins.alerts]\n'
                      '[[plugins.alerts.rules]]\nname = "Hot"\nmetric = "inferwatch_plugin_up"'
                      '\nop = ">"\nfire = 1\nclear = 2\n')
    done = run_cli("check", "-c", str(config))
    assert done.returncode == 78
    assert "plugins.alerts.rules[0].clear: clear (2) must not be above fire (1)" in done.stderr


def test_builtin_rules_can_be_switched_off_and_replaced_by_name() -> None:
    section = build_config({"plugins": {"alerts": {
        "disabled_rules": ["GpuLost"],
        "rules": [{"name": "PluginDown", "metric": "inferwatch_plugin_up", "op": "==",
                   "fire": 0, "for": "1h"}]}}}, {"alerts": AlertsConfig}).plugins["alerts"]
    assert isinstance(section, AlertsConfig)
    rules = {r.name: r for r in compile_rules(section, "h")}
    assert set(rules) == BUILTIN_NAMES - {"GpuLost"}
    assert rules["PluginDown"].config.for_ == 3600


def _declared() -> dict[str, tuple[str, ...]]:
    from agent import sinkmetrics  # noqa: PLC0415 - the core's durable sinks' series
    from plugins.audit import collector as audit  # noqa: PLC0415
    from plugins.drift import metrics as drift  # noqa: PLC0415
    from plugins.host import metrics as host  # noqa: PLC0415
    from plugins.ingest import stats as ingest  # noqa: PLC0415
    from plugins.mqtt import metrics as mqtt  # noqa: PLC0415
    from plugins.nvidia import metrics as nvidia  # noqa: PLC0415
    from plugins.quality import metrics as quality  # noqa: PLC0415

    modules = (sinkmetrics, audit, drift, host, ingest, mqtt, nvidia, quality)
    found = {d.name: d.labels for module in modules
             for d in vars(module).values() if isinstance(d, MetricDef)}
    for metric in vars(SelfMetrics()).values():  # prometheus-client metrics: name and labels
        if hasattr(metric, "_labelnames"):
            suffix = "_total" if metric._type == "counter" else ""
            found[metric._name + suffix] = tuple(metric._labelnames)
    return found


def _documented() -> str:
    return "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("rule", builtin_rules(), ids=lambda r: r.name)
def test_no_builtin_rule_is_dead(rule: object) -> None:
    """Its metrics exist (declared and documented) with the labels its matchers and
    templates name; its events are documented kinds that a plugin emits."""
    from plugins.alerts.config import RuleConfig  # noqa: PLC0415

    assert isinstance(rule, RuleConfig)
    declared, docs = _declared(), _documented()
    used = {m.split("=")[0].rstrip("!~") for m in rule.matchers}
    used |= set(re.findall(r"\$\{labels\.([a-z_]+)\}", rule.summary + rule.description))
    if rule.metric:
        for name in filter(None, (rule.metric, rule.divide_by)):
            assert name in declared, name
            assert f"`{name}" in docs, f"{name} is not in docs/"
        assert used <= set(declared[rule.metric]) | {"alertname", "severity", "host"}
        return
    assert used - {m.split("=")[0].rstrip("!~") for m in rule.matchers} <= \
        set(rule.group_by) | {"alertname", "severity", "host"}
    for kind in filter(None, (rule.event, rule.clear_event)):
        assert f"`{kind}`" in docs, f"event {kind} is not in docs/"
        source = "".join(p.read_text() for p in (ROOT / "plugins").rglob("*.py")
                         if "alerts" not in p.relative_to(ROOT).parts)
        assert f'"{kind}"' in source, f"no plugin emits {kind}"


def test_a_durable_sinks_backlog_fires_once_and_mqtts_is_outbox_backlogs() -> None:
    """The core's durable sinks (webhook, exec) had no shipped backlog rule; MQTT exports the
    same series, so it must not page twice (OutboxBacklog is its rule)."""
    from tests.plugins.alerts_helpers import Harness, config  # noqa: PLC0415

    harness = Harness(config(builtin_rules=True))
    sink = ("plugin", "sink")
    families = {
        "inferwatch_sink_oldest_age_seconds": (sink, [{("webhook", "webhook"): 900.0,
                                                       ("mqtt", "outbox"): 900.0,
                                                       ("exec", "command"): 30.0}]),
        "inferwatch_outbox_oldest_age_seconds": (("sink",), [{("mqtt",): 900.0}]),
    }
    fired = [e for _ in range(30) for e in harness.step(families, 15.0)
             if e.kind == "alert.firing" and not e.data["renewal"]]
    found = sorted((e.data["alertname"], e.data["labels"].get("plugin", ""),
                    e.data["labels"]["sink"]) for e in fired)
    assert found == [("OutboxBacklog", "", "mqtt"), ("SinkBacklog", "webhook", "webhook")]
    backlog = next(e for e in fired if e.data["alertname"] == "SinkBacklog")
    assert backlog.data["annotations"]["summary"] == \
        "Sink webhook/webhook: oldest event waits 900 s"
