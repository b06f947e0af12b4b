"""The audit's threads, kept from one run to the next.

A fresh thread per plugin, endpoint and probe on every scheduled audit would give glibc a
new malloc arena each time: the agent's RSS grew ~10 MiB until the arena cap (8 per core),
measured in the soak. Each name keeps one daemon thread; a call still hung from an earlier
run keeps its thread, and the name gets a fresh one (the old one exits once it returns).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from agent.cputime import on_behalf
from agent.worker import Worker

T = TypeVar("T")
_lock = threading.Lock()
_workers: dict[str, tuple[Worker, Future[Any]]] = {}


def submit(name: str, fn: Callable[..., T], *args: Any) -> Future[T]:
    """Run fn in the thread kept for `name` (bounded names: plugins, endpoint slots)."""
    with _lock:
        worker, last = _workers.get(name, (None, None))
        if worker is None or (last is not None and not last.done()):
            if worker is not None:
                worker.close()  # hung: it exits when the call returns
            worker = Worker(f"audit.{name}")
        future = worker.submit(on_behalf(fn), *args)
        _workers[name] = (worker, future)
    return future
