"""Exponential backoff with equal jitter: restarts and retries never move in step."""

from __future__ import annotations

import random


class Backoff:
    """Each delay is uniform in [d/2, d] for d = min(cap, base * 2**attempt)."""

    def __init__(self, base: float = 1.0, cap: float = 60.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not cryptography

    def reset(self) -> None:
        self.attempt = 0
