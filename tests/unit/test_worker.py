"""`offload`: a small window's arithmetic stays on the event loop, a large one goes to a thread."""

from __future__ import annotations

import threading

import pytest

from agent.worker import INLINE_ROWS, offload


async def test_small_work_runs_on_the_loop_and_large_work_in_a_thread() -> None:
    loop_thread = threading.get_ident()
    small = await offload(threading.get_ident, rows=INLINE_ROWS - 1)
    large = await offload(threading.get_ident, rows=INLINE_ROWS)
    assert small == loop_thread
    assert large != loop_thread


async def test_offload_passes_arguments_and_raises_what_the_function_raises() -> None:
    assert await offload(divmod, 7, 2, rows=10) == (3, 1)
    for rows in (10, INLINE_ROWS):
        with pytest.raises(ZeroDivisionError):
            await offload(divmod, 1, 0, rows=rows)
