"""What a Monitor receives: one model's samples over one window, as columns (numpy arrays).

Columns, not lists of dicts: every metric and drift statistic is a vectorised pass over
arrays, and one window is built once however many monitors read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.config import parse_duration

if TYPE_CHECKING:  # numpy is imported where windows are built: a config naming
    import numpy as np  # windows (WindowSpec) must not cost the agent numpy's memory

_COUNT = re.compile(r"^\s*(\d+)\s*n\s*$")


@dataclass(frozen=True)
class WindowSpec:
    """`"1h"` tumbling time, `"1h/10m"` sliding (size/step), `"10000n"`, `"10000n/2000n"` counts.

    Time windows are aligned to the epoch: a `1h` window starts on the hour, UTC.
    """

    name: str
    size: float  # seconds, or samples when by_count
    step: float
    by_count: bool

    @classmethod
    def parse(cls, text: str) -> WindowSpec:
        """Raise ValueError with a readable reason."""
        size_text, _, step_text = text.partition("/")
        step_text = step_text or size_text
        counts = [_COUNT.match(size_text), _COUNT.match(step_text)]
        if all(counts):
            size, step = (float(m.group(1)) for m in counts if m)
            if size < 1 or step < 1:
                raise ValueError(f"window {text!r}: counts must be at least 1")
        elif any(counts):
            raise ValueError(f"window {text!r}: size and step must both be durations or counts")
        else:
            try:
                size, step = parse_duration(size_text), parse_duration(step_text)
            except ValueError as exc:
                raise ValueError(f"window {text!r}: {exc} (or a count like '10000n')") from None
        if step > size or size % step:
            raise ValueError(f"window {text!r}: the step must divide the size")
        return cls(text.strip(), size, step, by_count=bool(counts[0]))

    @property
    def panes(self) -> int:
        """How many steps one window spans (1 for tumbling windows)."""
        return int(self.size // self.step)


@dataclass(frozen=True)
class Coded:
    """A categorical column as integer codes into `levels` (-1 where missing): what a monitor
    counts with `np.bincount` instead of hashing every string again."""

    codes: np.ndarray  # intp, one per row
    levels: tuple[str, ...]

    @classmethod
    def of(cls, values: np.ndarray) -> Coded:
        """From an object array of strings and None (one dict lookup per row)."""
        import numpy as np  # noqa: PLC0415 - see the import at the top

        items = values.tolist()
        levels = tuple(v for v in dict.fromkeys(items) if v is not None)
        index: dict[Any, int] = {v: i for i, v in enumerate(levels)}
        index[None] = -1
        return cls(np.fromiter(map(index.__getitem__, items), np.intp, len(items)), levels)

    def counts(self) -> dict[str, int]:
        """Rows per level (missing rows left out)."""
        import numpy as np  # noqa: PLC0415 - see the import at the top

        found = np.bincount(self.codes + 1, minlength=len(self.levels) + 1)[1:]
        return dict(zip(self.levels, found.tolist(), strict=True))


@dataclass
class Window:
    """One model, one window. Rows are samples; arrays are aligned on them.

    Classification: `y_pred`/`y_true` are indices into `classes`, -1 where no label (yet);
    `scores[i, k]` is the score of `classes[k]` (NaN where the sample sent none).
    Regression: `y_pred`/`y_true` are floats, NaN where no label.
    Features: float64 with NaN for missing/invalid (numeric), object arrays with None
    (categorical); `coded` holds the categorical ones as integer codes too, where the
    window stage built them. `n` counts every sample of the window; the arrays hold at most
    the configured maximum (a uniform sample beyond it). The arrays are shared (a tumbling
    window's with its pane and between its two passes, a sliding window's `scores` between
    its two): read them, never write (`scores` is read only). The dicts are each pass's own.
    """

    model: str
    model_version: str
    spec: str
    start: float
    end: float
    task: str  # "classification" | "regression"
    n: int
    y_pred: np.ndarray
    y_true: np.ndarray
    classes: tuple[str, ...] = ()
    positive: int = -1  # index of the positive class for a binary model, else -1
    scores: np.ndarray | None = None
    features: dict[str, np.ndarray] = field(default_factory=dict)
    coded: dict[str, Coded] = field(default_factory=dict)  # categorical features, same rows
    group: np.ndarray | None = None
    quality: dict[str, dict[str, float]] = field(default_factory=dict)
    final: bool = True
    # A running view of a window still open (its spec named "<spec>:running"): what the
    # rows so far say, for dashboards. Only monitors that ask (`Monitor.provisional`) get
    # one, and they raise no events and learn nothing from it.
    provisional: bool = False
    results: dict[str, Any] = field(default_factory=dict)  # what monitors found, by section

    @property
    def labeled(self) -> np.ndarray:
        import numpy as np  # noqa: PLC0415 - see the import at the top

        mask: np.ndarray = (self.y_true >= 0 if self.task == "classification"
                            else ~np.isnan(self.y_true))
        return mask

    @property
    def rows(self) -> int:
        return len(self.y_pred)
