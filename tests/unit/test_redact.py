"""The redaction engine (agent/redact.py): each built-in rule, its near misses, and the
properties that matter most: redacting twice changes nothing, and no Luhn-valid card survives."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.redact import _PATTERNS, BUILTIN, CustomRule, Redactor, luhn

ALL = Redactor(BUILTIN)
VISA = "4111111111111111"


def red(text: str, *rules: str) -> str:
    return Redactor(rules or ("TOKEN", "EMAIL", "CARD", "IPV4")).redact(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abc.DEF-ghi_jk~l+m/n==", "Authorization: Bearer [REDACTED:TOKEN]"),
    ("bearer   x1 rest", "bearer   [REDACTED:TOKEN] rest"),
    ("BEARER t0k", "BEARER [REDACTED:TOKEN]"),
    ("(Bearer abc)", "(Bearer [REDACTED:TOKEN])"),
    ("xBearer abc", "xBearer abc"),  # glued to a letter
    ("9Bearer abc", "9Bearer abc"),  # glued to a digit
    ("BeArEr abc", "BeArEr abc"),  # not one of the three spellings
    ("Bearer", "Bearer"),
])
def test_token(text: str, expected: str) -> None:
    assert red(text, "TOKEN") == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("to bob.smith+tag@mail.example.co.uk now", "to [REDACTED:EMAIL] now"),
    ("<a_b%c-d@x-y.io>", "<[REDACTED:EMAIL]>"),
    ("mail me: a@b.cc.", "mail me: [REDACTED:EMAIL]."),
    ("user@localhost", "user@localhost"),
    ("a@b.c", "a@b.c"),  # a one-letter TLD
    ("a@b.com9", "a@b.com9"),  # glued to a digit
    ("x@y.com@z.org", "x@y.com@z.org"),  # glued to another address
    ("a@b.cc.%x@y.dd", "a@b.cc.%x@y.dd"),
])
def test_email(text: str, expected: str) -> None:
    assert red(text, "EMAIL") == expected


@pytest.mark.parametrize(("text", "expected"), [
    (f"card {VISA} ok", "card [REDACTED:CARD] ok"),
    ("card 4111 1111 1111 1111.", "card [REDACTED:CARD]."),
    ("card 4111-1111-1111-1111", "card [REDACTED:CARD]"),
    ("amex 378282246310005", "amex [REDACTED:CARD]"),  # 15 digits
    ("4222222222222", "[REDACTED:CARD]"),  # 13 digits
    ("card 4111111111111112 ok", "card 4111111111111112 ok"),  # Luhn fails
    ("4111-1111-1111-1112 and 4111111111111111", "4111-1111-1111-1112 and [REDACTED:CARD]"),
    (f"id deadbeef{VISA}", f"id deadbeef{VISA}"),  # inside a hex id
    (f"id {VISA}beef", f"id {VISA}beef"),
    (f"x_{VISA}", f"x_{VISA}"),
    (f"-{VISA}", f"-{VISA}"),
    (f"{VISA}-", f"{VISA}-"),
    ("4111  1111 1111 1111", "4111  1111 1111 1111"),  # two spaces: two short runs
    ("4111--1111-1111-1111", "4111--1111-1111-1111"),
    ("41111111111111111111", "41111111111111111111"),  # 20 digits: no card
    ("411111111111", "411111111111"),  # 12 digits
    (f"{VISA} 2024", "[REDACTED:CARD] 2024"),  # a number after it is not glued
    (f"2024 {VISA}", "2024 [REDACTED:CARD]"),
])
def test_card(text: str, expected: str) -> None:
    assert red(text, "CARD") == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("from 10.0.0.1:8080 ok", "from [REDACTED:IP]:8080 ok"),
    ("255.255.255.255", "[REDACTED:IP]"),
    ("0.0.0.0.", "[REDACTED:IP]."),
    ("ip=192.168.1.20,next", "ip=[REDACTED:IP],next"),
    ("256.1.1.1", "256.1.1.1"),  # an octet over 255
    ("1.1.1.300", "1.1.1.300"),
    ("01.2.3.4", "01.2.3.4"),  # a leading zero
    ("1.2.03.4", "1.2.03.4"),
    ("build 1.2.3.4.5", "build 1.2.3.4.5"),  # a five-number dotted sequence
    ("v1.2.3.4", "v1.2.3.4"),  # a version string
    ("version 1.2.3", "version 1.2.3"),
    ("1.2.3.4a", "1.2.3.4a"),
])
def test_ipv4(text: str, expected: str) -> None:
    assert red(text, "IPV4") == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("peer fe80::1 up", "peer [REDACTED:IP] up"),
    ("2001:db8::8a2e:370:7334", "[REDACTED:IP]"),
    ("at 12:00:00 ok", "at 12:00:00 ok"),
    ("std::vector", "std::vector"),
])
def test_ipv6_is_an_option(text: str, expected: str) -> None:
    assert red(text, "IPV6") == expected
    assert red("peer fe80::1 up") == "peer fe80::1 up"  # not among the defaults


@pytest.mark.parametrize("line", ["1:" * 130_000 + "x", "a:" * 130_000 + "::g",
                                  ("::" + "f" * 30 + " ") * 8000])
def test_ipv6_scan_of_a_hostile_line_ends(line: str) -> None:
    """Three overlapping `[0-9A-Fa-f:]*` made the scan cubic: 4 KB of `1:1:...x` took
    minutes, a 256 KiB line forever (the log shipper and the sample path stalled). A hang
    detector, not a speed test: the deadline is far above what the scan needs."""
    code = ("import sys; from agent.redact import Redactor; "
            "sys.stdout.write(Redactor(['IPV6']).redact(sys.stdin.read()))")
    done = subprocess.run([sys.executable, "-c", code], input=line, capture_output=True,
                          text=True, timeout=45, check=True)
    assert done.stdout == line  # no address among them


@given(st.text("0123456789abcdefABCDEFgx:. _", max_size=40))
def test_ipv6_candidates_are_the_maximal_runs_with_two_colons(text: str) -> None:
    """The linear pattern finds what the old, cubic one found."""
    old = re.compile(r"(?<![\w:.])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:]*(?![\w:])")
    new = re.compile(_PATTERNS["IPV6"])
    assert [m.span() for m in new.finditer(text)] == [m.span() for m in old.finditer(text)]


@pytest.mark.parametrize("line", ["1" * 262_144 + "...", "1.1." + "2" * 262_144 + ".x..."])
def test_ipv4_scan_of_a_hostile_line_ends(line: str) -> None:
    """A digit run that is no quad: `[0-9]+` was tried from every digit of it and ran to
    its end each time, quadratic (a minute per 256 KiB line with the default rules)."""
    code = ("import sys; from agent.redact import Redactor; "
            "sys.stdout.write(Redactor().redact(sys.stdin.read()))")
    done = subprocess.run([sys.executable, "-c", code], input=line, capture_output=True,
                          text=True, timeout=45, check=True)
    assert done.stdout == line


@given(st.text("0123456789.a: -", max_size=40))
def test_ipv4_candidates_are_unchanged(text: str) -> None:
    """The linear pattern redacts what the old, quadratic one did."""
    old = Redactor(["IPV4"])
    old._rules[0] = dataclasses.replace(
        old._rules[0], regex=re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+"))
    assert Redactor(["IPV4"]).redact(text) == old.redact(text)


def test_rules_apply_in_order_and_are_counted() -> None:
    redactor = Redactor()
    line = (f"Bearer abc a@b.io {VISA} 4111111111111112 10.1.2.3 "
            "Bearer def 1.2.3.4.5")
    assert redactor.redact(line) == ("Bearer [REDACTED:TOKEN] [REDACTED:EMAIL] [REDACTED:CARD] "
                                     "4111111111111112 [REDACTED:IP] Bearer [REDACTED:TOKEN] "
                                     "1.2.3.4.5")
    assert redactor.counts == {"TOKEN": 2, "EMAIL": 1, "CARD": 1, "IPV4": 1}


def test_non_ascii_lines_are_scanned_whole() -> None:
    assert red(f"ünïcødé… {VISA} é 10.0.0.1") == "ünïcødé… [REDACTED:CARD] é [REDACTED:IP]"
    assert red(f"é{VISA}") == f"é{VISA}"  # glued to a letter, any alphabet


def test_custom_rules() -> None:
    rule = CustomRule(name="SSN", pattern=r"\b\d{3}-\d{2}-\d{4}\b")
    plain = CustomRule(name="USER", pattern=r"user=\w+", replacement="user=?")
    redactor = Redactor(("SSN", "USER", "EMAIL"), custom=[rule, plain])
    assert redactor.redact("ssn 123-45-6789 user=bob") == "ssn [REDACTED:SSN] user=?"
    assert redactor.counts == {"SSN": 1, "USER": 1}


@pytest.mark.parametrize(("fields", "problem"), [
    ({"name": "EMAIL", "pattern": "x"}, "built-in"),
    ({"name": "lower", "pattern": "x"}, "A-Z"),
    ({"name": "BAD", "pattern": "("}, "invalid pattern"),
    ({"name": "EMPTY", "pattern": "x*"}, "empty string"),
])
def test_custom_rule_errors(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        CustomRule(**fields)


def test_unknown_rule_and_missing_key_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown redaction rules"):
        Redactor(("PHONE",))
    with pytest.raises(ValueError, match="needs a key"):
        Redactor(("EMAIL",), pseudonymise=("EMAIL",))


def test_pseudonyms_are_stable_keyed_and_joinable() -> None:
    one = Redactor(pseudonymise=("EMAIL", "TOKEN"), key=b"k1")
    again = Redactor(pseudonymise=("EMAIL", "TOKEN"), key=b"k1")
    other = Redactor(pseudonymise=("EMAIL",), key=b"k2")
    line = "bob@example.com logged in with Bearer s3cret; bob@example.com again"
    out = one.redact(line)
    assert out == again.redact(line)  # across instances (restarts)
    first, second = re.findall(r"\[EMAIL:p[0-9a-f]{16}\]", out)
    assert first == second  # the same user, the same token
    assert "bob" not in out
    assert "s3cret" not in out
    assert re.search(r"Bearer \[TOKEN:p[0-9a-f]{16}\]", out)
    assert other.redact(line) != out  # another key, other tokens
    assert one.counts == {"EMAIL": 2, "TOKEN": 1}


# Characters that make the rules' edges likely to meet.
_ALPHABET = "0123456789 -.:@_%+/=abcdefxyzBearer[]"
_PIECES = st.sampled_from([VISA, "4111 1111 1111 1111", "10.0.0.1", "1.2.3.4.5", "a@b.cc",
                           "Bearer x", "fe80::1", "::", "255.", "@x.io", "4111"])
_TEXT = st.lists(st.one_of(st.text(_ALPHABET, max_size=6), _PIECES), max_size=8).map("".join)


@settings(max_examples=400, deadline=None)
@given(_TEXT | st.text(max_size=60))
def test_redacting_twice_changes_nothing(text: str) -> None:
    once = ALL.redact(text)
    assert ALL.redact(once) == once


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_pseudonymising_twice_changes_nothing(text: str) -> None:
    redactor = Redactor(BUILTIN, pseudonymise=BUILTIN, key=b"key")
    once = redactor.redact(text)
    assert redactor.redact(once) == once


_CANDIDATE = re.compile(r"(?<![\w-])[0-9](?:[ -]?[0-9]){12,18}(?![\w-])")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text("0123456789 -x.", max_size=20),
                          st.from_regex(r"[0-9]{13,19}", fullmatch=True)), max_size=6)
       .map(" ".join))
def test_no_luhn_valid_card_survives(text: str) -> None:
    out = ALL.redact(text)
    survivors = [c[0] for c in _CANDIDATE.finditer(out)]
    assert not [c for c in survivors if luhn(c.replace(" ", "").replace("-", ""))]


@given(st.from_regex(r"[0-9]{13,19}", fullmatch=True))
def test_luhn_matches_the_textbook_definition(digits: str) -> None:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    assert luhn(digits) == (total % 10 == 0)


def test_an_address_taking_a_failed_card_candidates_digits_leaves_no_card_behind() -> None:
    """`64111 1111 1111 1111` fails Luhn whole; IPV6 then takes `1111::`, leaving
    `64111 1111 1111`, which passes: a second redaction found a card the first left."""
    once = ALL.redact("64111 1111 1111 1111::")
    assert once == "[REDACTED:CARD] [REDACTED:IP]"
    assert ALL.redact(once) == once
