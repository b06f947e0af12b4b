"""`[plugins.alerts]` and its `[[plugins.alerts.rules]]`: every problem with its TOML path."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from agent.config import Duration, FieldError, MultiFieldError, PluginConfig
from plugins.alerts import templates
from plugins.alerts.matchers import parse_matcher

Op = Literal[">", ">=", "<", "<=", "==", "!="]
_ALERTNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DEBOUNCE = re.compile(r"^\s*(\d+)\s*(?:/|of)\s*(\d+)\s*$")
RESERVED_LABELS = frozenset({"alertname", "severity", "host"})


class RuleConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One rule: a metric rule (`metric`) or an event rule (`event`), never both."""

    name: str
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    summary: str = ""
    description: str = ""
    runbook_url: str = ""
    # -- metric rules
    metric: str = ""
    matchers: list[str] = msgspec.field(default_factory=list)
    function: Literal["value", "increase", "rate"] = "value"
    range: Duration | None = None  # the window of increase/rate
    divide_by: str = ""  # another metric; joined on its labels, each side through `function`
    op: Op = ">"
    fire: float | None = None
    clear: float | None = None  # default: the fire threshold (no hysteresis)
    for_: Duration | None = msgspec.field(default=None, name="for")
    keep_firing_for: Duration | None = None
    debounce: str = ""  # "M/N": active when M of the last N evaluations cross
    # -- event rules
    event: str = ""  # kind glob
    group_by: list[str] = msgspec.field(default_factory=list)  # attributes that become labels
    clear_event: str = ""  # kind glob whose matching event (same group_by values) resolves
    clear_matchers: list[str] = msgspec.field(default_factory=list)
    resolve_after: Duration = Duration(3600.0)  # resolved this long after the last match
    value_from: str = ""  # a dotted path into the event (`data.value`) that is $value

    def __post_init__(self) -> None:
        if found := rule_problems(self):
            # The section's own checks (unknown metrics) do not run past a broken rule:
            # name this rule's unknown metric now, so one `check` shows every problem.
            from plugins.alerts.known import unknown_in  # noqa: PLC0415

            raise MultiFieldError(found + unknown_in(self, ""))

    @property
    def kind(self) -> Literal["metric", "event"]:
        return "metric" if self.metric else "event"

    def window(self) -> tuple[int, int]:
        """The debounce as (m, n); (1, 1) without one."""
        found = _DEBOUNCE.match(self.debounce)
        return (int(found[1]), int(found[2])) if found else (1, 1)


def rule_problems(rule: RuleConfig) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if not _ALERTNAME.match(rule.name):
        found.append(("name", f"{rule.name!r} must match {_ALERTNAME.pattern} (it is the "
                              "alertname label)"))
    found += _label_problems(rule)
    found += _template_problems(rule)
    if bool(rule.metric) == bool(rule.event):
        found.append(("metric", "a rule has either `metric` (a metric rule) or `event` "
                                "(an event rule), exactly one"))
        return found
    found += _metric_problems(rule) if rule.metric else _event_problems(rule)
    return found


def _label_problems(rule: RuleConfig) -> list[tuple[str, str]]:
    return [(f"labels.{k}", "not a label name" if not _LABEL.match(k)
             else f"{k} is set by the engine") for k in rule.labels
            if not _LABEL.match(k) or k in RESERVED_LABELS]


def _template_problems(rule: RuleConfig) -> list[tuple[str, str]]:
    return [(key, problem) for key in ("summary", "description", "runbook_url")
            for problem in templates.problems(getattr(rule, key))]


def _matcher_problems(key: str, texts: list[str]) -> list[tuple[str, str]]:
    found = []
    for i, text in enumerate(texts):
        try:
            parse_matcher(text)
        except ValueError as exc:
            found.append((f"{key}[{i}]", str(exc)))
    return found


def _metric_problems(rule: RuleConfig) -> list[tuple[str, str]]:
    found = _matcher_problems("matchers", rule.matchers)
    for key in ("metric", "divide_by"):
        name = getattr(rule, key)
        if name and not _METRIC.match(name):
            found.append((key, f"{name!r} is not a metric name"))
    if rule.function != "value" and rule.range is None:
        found.append(("range", f'function = "{rule.function}" needs a range, e.g. "5m"'))
    if rule.function == "value" and rule.range is not None:
        found.append(("range", 'a range applies to function = "increase" or "rate" only'))
    if rule.debounce and not _debounce_ok(rule.debounce):
        found.append(("debounce", f"{rule.debounce!r}: write \"M/N\" with 1 <= M <= N <= 100"))
    if rule.fire is None:
        found.append(("fire", "a metric rule needs a fire threshold"))
    elif problem := clear_problem(rule.op, rule.fire, rule.clear):
        found.append(("clear", problem))
    found += _unused(rule, ("event", "clear_event"), "a metric rule")
    return found


def _debounce_ok(text: str) -> bool:
    found = _DEBOUNCE.match(text)
    return found is not None and 1 <= int(found[1]) <= int(found[2]) <= 100


def clear_problem(op: str, fire: float, clear: float | None) -> str | None:
    """A clear threshold must lie on the quiet side of fire, or the alert clears as it fires."""
    if clear is None or clear == fire:
        return None
    if op in ("==", "!="):
        return f"op {op} takes no separate clear threshold"
    if op in (">", ">=") and clear > fire:
        return (f"clear ({clear:g}) must not be above fire ({fire:g}) for op {op}: the alert "
                "would clear while still past its fire threshold")
    if op in ("<", "<=") and clear < fire:
        return (f"clear ({clear:g}) must not be below fire ({fire:g}) for op {op}: the alert "
                "would clear while still past its fire threshold")
    return None


def _event_problems(rule: RuleConfig) -> list[tuple[str, str]]:
    found = _matcher_problems("matchers", rule.matchers)
    found += _matcher_problems("clear_matchers", rule.clear_matchers)
    found += [(f"group_by[{i}]", f"{g!r} is not a label name")
              for i, g in enumerate(rule.group_by) if not _LABEL.match(g)
              or g in RESERVED_LABELS]
    if rule.clear_matchers and not rule.clear_event:
        found.append(("clear_matchers", "clear_matchers need a clear_event"))
    if rule.value_from and rule.value_from.split(".", 1)[0] not in ("data", "attributes"):
        found.append(("value_from", "a path into the event: data.<key> or attributes.<key>"))
    found += _unused(rule, ("fire", "clear", "for_", "keep_firing_for", "range", "divide_by"),
                     "an event rule")
    if rule.function != "value" or rule.debounce:
        found.append(("function", "function and debounce apply to metric rules only"))
    return found


def _unused(rule: RuleConfig, keys: tuple[str, ...], what: str) -> list[tuple[str, str]]:
    return [(key.rstrip("_"), f"not used by {what}") for key in keys
            if getattr(rule, key) not in (None, "", [])]


class AlertsConfig(PluginConfig):
    """The engine evaluates metric rules every `interval`; event rules as events arrive."""

    interval: Duration = Duration(15.0)
    builtin_rules: bool = True
    disabled_rules: list[str] = msgspec.field(default_factory=list)
    rules: list[RuleConfig] = msgspec.field(default_factory=list)
    resend_interval: Duration = Duration(60.0)  # alert.firing renewals while firing
    max_alerts: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    # A metric no loaded plugin declares: "error" (a typo never fires) or "warn" (a plugin
    # that names its series at run time); `inferwatch check` reports either way.
    unknown_metrics: Literal["error", "warn"] = "error"
    generator_url: str = ""  # default: http://<host>:<prometheus port>/api/v1/alerts

    def warnings(self) -> list[str]:
        if self.unknown_metrics != "warn":
            return []
        from plugins.alerts.known import unknown_metrics  # noqa: PLC0415

        return [f"{key}: {problem}" for key, problem in unknown_metrics(self)]

    def __post_init__(self) -> None:
        super().__post_init__()
        names = [r.name for r in self.rules]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise FieldError(f"rules[{i}].name", f"a second rule named {name!r}")
        from plugins.alerts.known import check_config  # noqa: PLC0415 - plugin metric modules

        if found := check_config(self):
            raise MultiFieldError(found)
