"""Numeric drift statistics other plugins add (`inferwatch_drift_statistics`): reported and
exported beside the built-in ones (`inferwatch_drift_score{method=<name>}`), never decisive.

Names are checked once, when the monitor is built: a name must be short and lower-case
(it becomes a label value and a results key), may not shadow a built-in, and at most
MAX_EXTRA are taken, so plugins cannot grow the series without bound. A statistic that
raises or returns something other than a finite number is left out of that window, counted
(`inferwatch_drift_statistic_errors_total`) and logged once per name; the monitor goes on.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import structlog

from plugins.drift.profile import NumericProfile

log = structlog.get_logger("inferwatch")
Statistic = Callable[[np.ndarray, NumericProfile], float | None]
BUILT_IN = frozenset({"wasserstein", "ks", "psi", "js", "tvd", "chi2", "unseen_rate",
                      "method", "threshold", "ratio", "drifted", "n", "histogram"})
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_EXTRA = 16


class Extra:
    def __init__(self, statistics: Mapping[str, Statistic] | None = None) -> None:
        self.statistics: dict[str, Statistic] = dict(statistics or {})
        self._said: set[str] = set()  # names whose failure was logged (on the loop)

    @classmethod
    def from_hook(cls, hook: Any) -> Extra:
        """Every plugin's statistics through the hook relay (None: no plugin manager)."""
        answers = hook.inferwatch_drift_statistics() if hook is not None else []
        return cls(dict(_checked(answers)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.statistics)

    def add(self, found: dict[str, float], values: np.ndarray, profile: NumericProfile,
            errors: Counter[str]) -> None:
        """Worker thread: each statistic of this feature into `found`; failures to `errors`."""
        for name, fn in self.statistics.items():
            try:
                value = fn(values, profile)
            except Exception:  # noqa: BLE001 - another plugin's code: counted, never fatal
                errors[name] += 1
                continue
            if value is None:
                continue
            if isinstance(value, int | float | np.number) and math.isfinite(float(value)):
                found[name] = float(value)
            else:
                errors[name] += 1

    def failed(self, errors: Counter[str]) -> None:
        """On the loop: say once per name that a statistic failed (the counter says how often)."""
        for name in sorted(set(errors) - self._said):
            self._said.add(name)
            log.warning("a drift statistic from a plugin failed; left out of the window",
                        statistic=name)


def _checked(answers: Iterable[Any]) -> Iterable[tuple[str, Statistic]]:
    taken: set[str] = set()
    for answer in answers:
        if not isinstance(answer, Mapping):
            log.warning("drift statistics refused: inferwatch_drift_statistics must return "
                        "a mapping of names to functions", got=type(answer).__name__)
            continue
        for name, fn in answer.items():
            problem = _problem(name, fn, taken)
            if problem:
                log.warning("drift statistic refused", statistic=str(name)[:64], why=problem)
                continue
            taken.add(name)
            yield name, fn


def _problem(name: object, fn: object, taken: set[str]) -> str | None:
    if not isinstance(name, str) or not NAME.match(name):
        return f"a name must match {NAME.pattern}"
    if name in BUILT_IN or name in taken:
        return "the name is taken"
    if not callable(fn):
        return "not callable: fn(values, reference) -> float | None"
    if len(taken) >= MAX_EXTRA:
        return f"at most {MAX_EXTRA} statistics from plugins"
    return None
