"""Plain Python at the boundary of a monitor: what it leaves in `window.results` and puts in
an event is built from dict, list, tuple, str, int, float, bool and None only.

A numpy scalar passes `isinstance(x, float)` yet msgspec refuses to encode it, so one
escaping from a rarely taken branch (fairness rates, a cost matrix) used to crash `replay`
or the outbox far from where it was made. Converting where a monitor's output leaves it
fixes the whole class, for third-party monitors too. numpy is not imported: its scalars and
arrays are recognised by their `tolist()`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import msgspec

from agent.model import Event

_PLAIN = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """`value` with every numpy scalar or array (at any depth) turned into Python numbers and
    lists, and every mapping into a dict. msgspec walks it in C (twice as fast as the walk
    below, which matters for small windows); what msgspec cannot take goes the Python way."""
    try:
        return msgspec.to_builtins(value, enc_hook=_numpy)
    except (TypeError, ValueError, NotImplementedError):
        return _walk(value)


def _numpy(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy scalars (-> Python) and arrays (-> lists)
    if callable(tolist):
        return tolist()
    raise NotImplementedError(type(value))


def _walk(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {_walk(k): _walk(v) for k, v in value.items()}
    if kind is list:
        return [_walk(v) for v in value]
    if kind is tuple:
        return tuple(_walk(v) for v in value)
    return _odd(value)


def plain_event(event: Event) -> Event:
    """The event with plain `data` and `attributes` (a copy; events are frozen)."""
    return msgspec.structs.replace(event, data=plain(event.data),
                                   attributes=plain(event.attributes))


def _odd(value: Any) -> Any:
    """Subclasses, enums, numpy values, sets: the rare types, converted one by one."""
    if isinstance(value, enum.Enum):
        return _walk(value.value)
    tolist = getattr(value, "tolist", None)  # numpy scalars (-> Python) and arrays (-> lists)
    if callable(tolist):
        return _walk(tolist())
    for base in (bool, int, float, str):  # e.g. a str subclass: its plain value
        if isinstance(value, base):
            return base(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_walk(v) for v in value]
    return value


def is_plain(value: Any) -> bool:
    """True when `value` holds nothing but the plain types (what the contract tests check)."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is dict:
        return all(is_plain(k) and is_plain(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(is_plain(v) for v in value)
    return False
