"""A frozen copy of agent/redact.py before the speed work (commit 9f75dae): the reference the
faster engine must agree with, output for output and count for count (test_redact_fast.py).
Not used by the agent. Its IPV6 pattern backtracks cubically: feed it short lines only.

The original docstring follows.

One redaction engine for everything that leaves the process: shipped log lines and the
feature values and request ids of samples (so PII never lands in state_dir either).

Rules run in a fixed order (TOKEN, EMAIL, CARD, IPV4, IPV6, then custom rules in config order),
each with one compiled regex and a cheap pre-check that skips it when its trigger (`earer`,
`@`, a digit run, a dot, a colon) is absent: most lines pay one `in` test per rule. Each match
is masked (`[REDACTED:<NAME>]`) or, for the rules named in `pseudonymise`, replaced by a keyed
HMAC (`[<NAME>:p<16 hex>]`) so the same value maps to the same token across lines and
restarts and can be joined without being revealed. Redacting twice changes nothing: no
replacement can be a candidate of any built-in rule.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from agent.config import Secret

BUILTIN = ("TOKEN", "EMAIL", "CARD", "IPV4", "IPV6")
DEFAULT_RULES = ("TOKEN", "EMAIL", "CARD", "IPV4")

_PATTERNS = {
    # The keyword and its spaces are kept (group 1); only the credential is replaced.
    "TOKEN": r"((?<![A-Za-z0-9])(?:Bearer|bearer|BEARER) +)[A-Za-z0-9\-._~+/]+=*",
    "EMAIL": (r"(?<![A-Za-z0-9._%+@-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}"
              r"(?![A-Za-z0-9_%+@-]|\.[A-Za-z0-9._%+-])"),
    # Digits with single space/dash separators, not glued to a word character or '-'; the
    # longest such candidate is checked, and when it fails Luhn the scan resumes after it.
    "CARD": r"(?<![\w-])[0-9](?:[ -]?[0-9]){12,18}(?![\w-])",
    # Four maximal digit runs; octets and what surrounds them are checked in _is_ipv4 (an
    # alternation of octet ranges here makes the scan five times slower).
    "IPV4": r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+",
    "IPV6": r"(?<![\w:.])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:]*(?![\w:])",
}
_MASK = {"IPV4": "[REDACTED:IP]", "IPV6": "[REDACTED:IP]"}
_DIGITS = b"0123456789"
_ZEROS = bytes.maketrans(_DIGITS, b"0" * 10)
_OCTET = re.compile(r"25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]")


class CustomRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[[...rules]] name, pattern, replacement` (default `[REDACTED:<name>]`)."""

    name: str
    pattern: str
    replacement: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,31}", self.name) or self.name in BUILTIN:
            raise ValueError(f"rule name {self.name!r} must be 1-32 of A-Z, 0-9, _ "
                             f"(starting with a letter) and not a built-in ({', '.join(BUILTIN)})")
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"rule {self.name}: invalid pattern: {exc}") from None
        if compiled.search(""):
            raise ValueError(f"rule {self.name}: the pattern matches the empty string")


class RedactSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Custom rules and pseudonymisation, shared by every place that names rules to apply."""

    rules: list[CustomRule] = msgspec.field(default_factory=list)
    pseudonymise: list[str] = msgspec.field(default_factory=list)  # rule names
    key: Secret | None = None  # the HMAC key: {file = "..."} (or {env = "..."})

    def __post_init__(self) -> None:
        known = {*BUILTIN, *(r.name for r in self.rules)}
        if unknown := sorted(set(self.pseudonymise) - known):
            raise ValueError(f"pseudonymise names unknown rules {unknown}")
        if self.pseudonymise and (self.key is None or not self.key.reveal()):
            raise ValueError("pseudonymise needs a non-empty key = {file = \"...\"}")

    def redactor(self, names: Sequence[str]) -> Redactor:
        """A Redactor applying `names` (built-in or custom) with these settings."""
        key = self.key.reveal().encode() if self.key is not None else None
        return Redactor(names, custom=self.rules, key=key,
                        pseudonymise=[n for n in self.pseudonymise if n in names])


def check_names(names: Sequence[str], settings: RedactSettings) -> str | None:
    """Why `names` cannot be applied, or None."""
    known = [*BUILTIN, *(r.name for r in settings.rules)]
    unknown = [n for n in names if n not in known]
    return f"unknown rules {unknown} (known: {', '.join(known)})" if unknown else None


@dataclass(frozen=True)
class _Rule:
    name: str
    regex: re.Pattern[str]
    trigger: Callable[[str], int]  # where the first match can start at the earliest; -1: none
    replace: Callable[[re.Match[str]], str]
    counts_itself: bool = False  # its callback leaves some candidates (a Luhn failure) as is


def luhn(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_digits(candidate: str) -> str:
    return candidate.replace(" ", "").replace("-", "")


class Redactor:
    """Applies the chosen rules to strings and counts matches per rule (`counts`)."""

    def __init__(self, rules: Sequence[str] = DEFAULT_RULES, *,
                 custom: Sequence[CustomRule] = (), pseudonymise: Iterable[str] = (),
                 key: bytes | None = None) -> None:
        known = {*BUILTIN, *(c.name for c in custom)}
        if unknown := [r for r in [*rules, *pseudonymise] if r not in known]:
            raise ValueError(f"unknown redaction rules {unknown} (known: {sorted(known)})")
        self._pseudo = set(pseudonymise)
        if self._pseudo and not key:
            raise ValueError("pseudonymise needs a key")
        self._key = key or b""
        self.counts: Counter[str] = Counter()
        chosen = set(rules)
        order = [n for n in BUILTIN if n in chosen]
        self._rules = [self._builtin(n) for n in order]
        self._rules += [self._custom(c) for c in custom if c.name in chosen]
        self.names = tuple(r.name for r in self._rules)

    def redact(self, text: str) -> str:
        # The one change since: passes repeat while a rule after CARD took digits that a
        # failed card candidate held (agent.redact.Redactor.redact), so that twice is once.
        for _ in range(3):
            text, again = self._pass(text)
            if not again:
                break
        return text

    def _pass(self, text: str) -> tuple[str, bool]:
        digits_seen = again = False
        for rule in self._rules:
            at = rule.trigger(text)
            if at < 0:
                continue
            digits_seen = digits_seen or rule.name == "CARD"
            if at == 0:
                text, n = rule.regex.subn(rule.replace, text)
            else:  # the scan starts at the hint; lookbehinds still see what precedes it
                text, n = _subn_from(rule, text, at)
            if n and not rule.counts_itself:
                self.counts[rule.name] += n
            again = again or (digits_seen and n > 0 and rule.name != "CARD")
        return text, again

    def touches(self, text: str) -> bool:
        """Whether redact() would change `text`, without counting anything."""
        saved = self.counts.copy()
        try:
            return self.redact(text) != text
        finally:
            self.counts.clear()
            self.counts.update(saved)

    def redact_value(self, value: Any) -> Any:
        """Strings, and integers long enough to be a card, redacted at any depth (JSON)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_value(v) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**12:
            text = str(value)
            out = self.redact(text)
            return value if out == text else out
        return value

    def __bool__(self) -> bool:
        return bool(self._rules)

    def token(self, name: str, value: str) -> str:
        """The pseudonym of `value` under rule `name`: stable for a key, joinable, opaque."""
        mac = hmac.new(self._key, f"{name}\0{value}".encode(), hashlib.sha256)
        return f"[{name}:p{mac.hexdigest()[:16]}]"

    def _builtin(self, name: str) -> _Rule:
        regex = re.compile(_PATTERNS[name])
        return _Rule(name, regex, _TRIGGERS[name], self._replacer(name), name in _CHECKS)

    def _custom(self, rule: CustomRule) -> _Rule:
        regex = re.compile(rule.pattern)
        if rule.name in self._pseudo:
            return _Rule(rule.name, regex, _always, lambda m: self.token(rule.name, m[0]))
        mask = rule.replacement or f"[REDACTED:{rule.name}]"
        return _Rule(rule.name, regex, _always, lambda _m: mask)

    def _replacer(self, name: str) -> Callable[[re.Match[str]], str]:
        pseudo = name in self._pseudo
        mask = _MASK.get(name, f"[REDACTED:{name}]")
        if name == "TOKEN":
            if pseudo:
                return lambda m: m[1] + self.token(name, m[0][len(m[1]):])
            return lambda m: m[1] + mask
        check = _CHECKS.get(name)
        if check is None:
            return (lambda m: self.token(name, m[0])) if pseudo else (lambda _m: mask)
        counts = self.counts

        def checked(match: re.Match[str]) -> str:
            if not check(match):
                return match[0]  # a near miss: left as is, scanning resumes after it
            counts[name] += 1
            return self.token(name, match[0]) if pseudo else mask
        return checked


def _subn_from(rule: _Rule, text: str, at: int) -> tuple[str, int]:
    parts: list[str] = []
    last = 0
    for match in rule.regex.finditer(text, at):
        parts += (text[last:match.start()], rule.replace(match))
        last = match.end()
    if not parts:
        return text, 0
    parts.append(text[last:])
    return "".join(parts), len(parts) // 2


def _always(_text: str) -> int:
    return 0


def _token_at(text: str) -> int:
    found = [i for i in (text.find("earer"), text.find("EARER")) if i >= 0]
    return max(min(found) - 1, 0) if found else -1


def _email_at(text: str) -> int:
    return 0 if "@" in text else -1


def _card_at(text: str) -> int:
    """13 digits in a row once separators are gone: bytes.translate runs at ~400 MB/s, where
    any regex over digit-heavy lines (timestamps, ids) manages 40. The index found there is a
    lower bound of the candidate's position in an ASCII line (translate only deletes)."""
    found = _encode(text).translate(_ZEROS, b" -").find(b"0000000000000")
    return found if found <= 0 or text.isascii() else 0


def _ipv4_at(text: str) -> int:
    """Three dots in a row once digits are gone: every dotted quad leaves `...`."""
    found = _encode(text).translate(None, _DIGITS).find(b"...")
    return found if found <= 0 or text.isascii() else 0


def _ipv6_at(text: str) -> int:
    return 0 if text.count(":") >= 2 else -1


_last: tuple[str, bytes] = ("", b"")


def _encode(text: str) -> bytes:
    """The line's UTF-8, shared by the CARD and IPV4 pre-checks of one line: a one-entry
    cache swapped as one tuple (threads may share it; it holds its text, so `is` is safe)."""
    global _last  # noqa: PLW0603 - a one-entry cache
    last = _last
    if last[0] is text:
        return last[1]
    raw = text.encode("utf-8", "surrogatepass")
    _last = (text, raw)
    return raw


def _is_ipv4(match: re.Match[str]) -> bool:
    text, start, end = match.string, match.start(), match.end()
    if start and (text[start - 1] == "." or _word(text[start - 1])):
        return False
    if end < len(text) and (_word(text[end]) or _dot_digit(text, end)):
        return False
    return all(_OCTET.fullmatch(part) for part in match[0].split("."))


def _dot_digit(text: str, at: int) -> bool:
    """A dot then a digit: the quad goes on (`1.2.3.4.5` is a build number)."""
    return text[at] == "." and text[at + 1:at + 2].isdigit()


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _is_ipv6(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


_TRIGGERS: dict[str, Callable[[str], int]] = {
    "TOKEN": _token_at, "EMAIL": _email_at, "CARD": _card_at, "IPV4": _ipv4_at, "IPV6": _ipv6_at,
}
_CHECKS: dict[str, Callable[[re.Match[str]], bool]] = {
    "CARD": lambda m: luhn(card_digits(m[0])),
    "IPV4": _is_ipv4,
    "IPV6": lambda m: _is_ipv6(m[0]),
}
