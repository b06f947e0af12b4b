"""CPU time charged to the component whose work it is, whichever thread spends it.

A blocking collector's CPU is measured in its worker thread (`time.thread_time`). Work it
hands on to threads of its own (the scheduled audit: a thread per plugin's checks, the
storage probe, each endpoint's probe) was charged to nobody: the audit looked free while
its threads burnt CPU. The supervisor makes the collector's account current while it
collects (`charging`); `on_behalf` wraps the work handed on, so the thread that runs it adds
its CPU to that account, and work it hands on in turn is charged the same way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
Account = Callable[[float], None]  # adds CPU seconds to a component's own
_current: ContextVar[Account | None] = ContextVar("inferwatch_cpu_account", default=None)


@contextlib.contextmanager
def charging(account: Account) -> Iterator[None]:
    """Within this block, work wrapped by `on_behalf` is charged to `account`."""
    token = _current.set(account)
    try:
        yield
    finally:
        _current.reset(token)


def on_behalf(fn: Callable[P, T]) -> Callable[P, T]:
    """fn, charging the CPU of whichever thread runs it to the account current now (the
    component whose work it is); fn itself when there is none (the CLI)."""
    account = _current.get()
    if account is None:
        return fn

    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        began = time.thread_time()
        try:
            with charging(account):
                return fn(*args, **kwargs)
        finally:
            account(time.thread_time() - began)

    return run
