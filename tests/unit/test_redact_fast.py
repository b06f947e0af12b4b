"""The faster engine (agent/redact.py) against the engine it replaced, kept as a reference
(tests/unit/redact_reference.py): the same output and the same counts on the bench's lines and
on generated lines whose pieces make the rules' edges meet; and no rule backtracks out of
linear time on an adversarial 256 KiB line (the old IPV4 was quadratic on a long digit run,
the old IPV6 cubic on a run of colons)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.redact import BUILTIN, Redactor
from bench.logs import mixed_lines
from tests.unit import redact_reference as ref

VISA = "4111111111111111"
_PIECES = st.sampled_from([
    VISA, "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111112", "10.0.0.1",
    "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3.4.5", ":8080", "a@b.cc", "x.y@ex.io",
    "@x.io", "Bearer x", "bearer  t0k==", "BEARER", "xBearer y", "earer", "EARER", "fe80::1",
    "::", "2001:db8::1", "255.", "4111", "é", "²", "_", "-", ".", "@", " ", "\n"])
_ALPHABET = "0123456789 -.:@_%+/=abcdefxyzBEARer[]é²"
_TEXT = st.lists(st.one_of(st.text(_ALPHABET, max_size=6), _PIECES), max_size=10).map("".join)


def _both(rules: tuple[str, ...], text: str, **kw: object) -> None:
    new, old = Redactor(rules, **kw), ref.Redactor(rules, **kw)  # type: ignore[arg-type]
    assert new.redact(text) == old.redact(text)
    assert new.counts == old.counts


@settings(max_examples=1500, deadline=None)
@given(_TEXT | st.text(max_size=40))
@example("12 1.2.3.4 5")
@example("é 4111 1111 1111 1111 é 10.0.0.1 Bearer a@b.cc")
@example("1.2.3.4.²")
def test_the_engine_agrees_with_the_reference(text: str) -> None:
    _both(("TOKEN", "EMAIL", "CARD", "IPV4"), text)
    for rule in BUILTIN:
        _both((rule,), text)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_pseudonyms_agree_with_the_reference(text: str) -> None:
    _both(BUILTIN, text, pseudonymise=BUILTIN, key=b"k")


@pytest.mark.parametrize("dense", [False, True])
def test_the_bench_lines_agree(dense: bool) -> None:
    new, old = Redactor(), ref.Redactor()
    for line in mixed_lines(3000, seed=11, dense=dense):
        assert new.redact(line) == old.redact(line)
    assert new.counts == old.counts


_N = 256 * 1024
ADVERSARIAL = {
    "digit run then an address": "1" * _N + " 1.1.1.1",
    "dotted digits": "1." * (_N // 2),
    "digits and spaces": "1 " * (_N // 2),
    "digits and dashes": "1-" * (_N // 2),
    "'@' flood": "@" * _N,
    "local parts and '@'": "a@" * (_N // 2),
    "a long domain": "x@" + "a." * (_N // 2),
    "letters then '@'": "a" * _N + "@",
    "'Bearer ' repeated": "Bearer " * (_N // 7),
    "'BEARER ' repeated": "BEARER " * (_N // 7),
    "'Bearer' then spaces": "Bearer" + " " * _N + "!",
    "colons then a letter": ":" * _N + "g",
    "hex and colons then a letter": "a:" * (_N // 2) + "g",
    "card-like groups": "4111 " * (_N // 5),
}


@pytest.mark.timeout(20)  # the hang guard: quadratic backtracking took 60 s on one line
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_lines_are_redacted_without_backtracking(name: str) -> None:
    """256 KiB lines built to make a rule backtrack (a digit run before an address, `a:`
    floods, repeated keywords) and their sixteenths are redacted, idempotently. No
    timed assertion: the marker's timeout is what a quadratic rule runs into (bench/logs.py
    measures the speed)."""
    redactor = Redactor(BUILTIN)
    line = ADVERSARIAL[name]
    small = line[: len(line) // 16]
    for text in (small, line):
        out = redactor.redact(text)
        assert len(out) >= len(text) // 4
        assert redactor.redact(out) == out  # idempotent on the hostile shape too
