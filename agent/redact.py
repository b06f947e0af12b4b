"""One redaction engine for everything that leaves the process: shipped log lines and the
feature values and request ids of samples (so PII never lands in state_dir either).

Rules run in a fixed order (TOKEN, EMAIL, CARD, IPV4, IPV6, then custom rules in config order),
each with one compiled regex and a cheap pre-check that skips it when its trigger (`earer`,
`@`, a digit run, a dot, a colon) is absent: most lines pay one `in` test per rule. TOKEN,
EMAIL and IPV4 try their regex only where str.find says a match can begin; every pattern is
linear on adversarial lines (tests/unit/test_redact_fast.py, against the previous engine).
Each match is masked (`[REDACTED:<NAME>]`) or, for the rules named in `pseudonymise`, replaced
by a keyed HMAC (`[<NAME>:p<16 hex>]`) so the same value maps to the same token across lines and
restarts and can be joined without being revealed. Redacting twice changes nothing: no
replacement can be a candidate of any built-in rule.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from agent.config import Secret

BUILTIN = ("TOKEN", "EMAIL", "CARD", "IPV4", "IPV6")
DEFAULT_RULES = ("TOKEN", "EMAIL", "CARD", "IPV4")

# Each lookbehind sits after the pattern's first character so that the regex engine can skip
# to candidate first characters in C (a leading assertion disables that prefix scan); the
# assertions are the same as the rules' (`(?<![X].)` after one character is `(?<![X])` before).
_PATTERNS = {
    # The keyword and its spaces are kept (group 1); only the credential is replaced.
    "TOKEN": r"((?:Bearer|bearer|BEARER)(?<![A-Za-z0-9][A-Za-z]{6}) +)[A-Za-z0-9\-._~+/]+=*",
    # Only ever matched anchored at the start of the local part before an '@' (_email_starts).
    "EMAIL": (r"(?<![A-Za-z0-9._%+@-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}"
              r"(?![A-Za-z0-9_%+@-]|\.[A-Za-z0-9._%+-])"),
    # Digits with single space/dash separators, not glued to a word character or '-'; the
    # longest such candidate is checked, and when it fails Luhn the scan resumes after it.
    "CARD": r"[0-9](?<![\w-].)(?:[ -]?[0-9]){12,18}(?![\w-])",
    # Four maximal digit runs, not glued to a word character or a dot before, nor to a word
    # character after (a failed candidate is skipped whole: no start inside it can follow a
    # digit or a dot). Starting only at a run's first digit keeps a long digit run linear.
    # Octets and a following `.digit` are checked in _ipv4 (an alternation of octet ranges
    # here makes the scan five times slower).
    "IPV4": r"[0-9](?<![\w.].)[0-9]*+\.[0-9]++\.[0-9]++\.[0-9]++(?!\w)",
    # A maximal run of hex digits and colons, checked by ipaddress: possessive, so a long run
    # glued to a word character fails at once (three nested stars backtracked cubically).
    "IPV6": r"(?<![\w:.])(?=[0-9A-Fa-f]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]++(?![\w:])",
}
_MASK = {"IPV4": "[REDACTED:IP]", "IPV6": "[REDACTED:IP]"}
MAX_DEPTH = 64  # JSON nesting redact_value walks; deeper containers are redacted as text
_json = msgspec.json.Encoder().encode
_DIGITS = b"0123456789"
_ZEROS = bytes.maketrans(_DIGITS, b"0" * 10)
_VALUES = bytes.maketrans(_DIGITS, bytes(range(10)))
_DOUBLED = bytes.maketrans(bytes(range(10)), bytes((0, 2, 4, 6, 8, 1, 3, 5, 7, 9)))  # Luhn
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_QUAD = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
_IPV6_MAX = len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")


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
    replace: Callable[[re.Match[str]], str] | str  # a str: a fixed mask, replaced in C
    counts_itself: bool = False  # its callback leaves some candidates (a Luhn failure) as is
    # The places where a match can begin, in order: the regex is then matched only there, and
    # the gaps between them are crossed by str.find in C (where the regex engine would try
    # every position at a fraction of the speed).
    starts: Callable[[str], Iterator[int]] | None = None


def luhn(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits (separators ` ` and `-` ignored): digit
    values by bytes.translate, every second one from the right doubled by a table, summed
    in C."""
    values = digits.encode("ascii").translate(_VALUES, b" -")
    return (sum(values[-1::-2]) + sum(values[-2::-2].translate(_DOUBLED))) % 10 == 0


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
        self._args = (tuple(rules), tuple(custom))
        self._probe: Redactor | None = None
        chosen = set(rules)
        order = [n for n in BUILTIN if n in chosen]
        self._rules = [self._builtin(n) for n in order]
        self._rules += [self._custom(c) for c in custom if c.name in chosen]
        self.names = tuple(r.name for r in self._rules)

    def redact(self, text: str) -> str:
        # A card candidate fails Luhn as a whole; a later rule (an address glued to its end)
        # may then take some of its digits, leaving a shorter run that passes: one more pass
        # then, so that redacting twice changes nothing. Rare, so nearly free.
        for _ in range(3):
            text, again = self._pass(text)
            if not again:
                break
        return text

    def _pass(self, text: str) -> tuple[str, bool]:
        digits_seen = again = False
        for rule in self._rules:
            if (at := rule.trigger(text)) < 0:
                continue
            if rule.name == "CARD":
                digits_seen = True
            if rule.name == "CARD" and at > 0:  # an ASCII line with a candidate
                text, n = _subn_card(rule, text)
            elif rule.starts is None:
                text, n = rule.regex.subn(rule.replace, text) if at == 0 else _subn_from(
                    rule, text, at)
            else:
                text, n = _subn_at(rule, rule.starts, text)
            if n and not rule.counts_itself:
                self.counts[rule.name] += n
            again = again or (digits_seen and n > 0 and rule.name != "CARD")
        return text, again

    def touches(self, text: str) -> bool:
        """Whether redact() would change `text`, without counting anything: a twin with its
        own counts does the work (clearing and restoring ours let a reader in between see
        the counters go back to zero)."""
        if self._probe is None:
            self._probe = Redactor(self._args[0], custom=self._args[1],
                                   pseudonymise=self._pseudo, key=self._key or None)
        self._probe.counts.clear()
        return self._probe.redact(text) != text

    def redact_value(self, value: Any, depth: int = 0) -> Any:
        """Strings, and integers long enough to be a card, redacted at any depth (JSON).
        Below MAX_DEPTH a container is redacted as its JSON text, then kept as it was when
        nothing matched, else replaced by that text: a hostile line nested 600 deep (which
        msgspec decodes) would otherwise raise RecursionError at every retry."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict | list) and depth >= MAX_DEPTH:
            return self._deep(value)
        if isinstance(value, dict):
            return {k: self.redact_value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_value(v, depth + 1) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**12:
            text = str(value)
            out = self.redact(text)
            return value if out == text else out
        return value

    def _deep(self, value: dict[str, Any] | list[Any]) -> Any:
        try:
            text = _json(value).decode("utf-8", "surrogateescape")
        except (RecursionError, msgspec.EncodeError, TypeError):
            self.counts["DEPTH"] += 1
            return "[REDACTED:DEPTH]"  # cannot be looked at: not let through
        out = self.redact(text)
        return value if out == text else out

    def __bool__(self) -> bool:
        return bool(self._rules)

    def token(self, name: str, value: str) -> str:
        """The pseudonym of `value` under rule `name`: stable for a key, joinable, opaque."""
        mac = hmac.new(self._key, f"{name}\0{value}".encode(), hashlib.sha256)
        return f"[{name}:p{mac.hexdigest()[:16]}]"

    def _builtin(self, name: str) -> _Rule:
        regex = re.compile(_PATTERNS[name])
        return _Rule(name, regex, _TRIGGERS[name], self._replacer(name), name in _CHECKS,
                     _STARTS.get(name))

    def _custom(self, rule: CustomRule) -> _Rule:
        regex = re.compile(rule.pattern)
        if rule.name in self._pseudo:
            return _Rule(rule.name, regex, _always, lambda m: self.token(rule.name, m[0]))
        mask = rule.replacement or f"[REDACTED:{rule.name}]"
        return _Rule(rule.name, regex, _always, lambda _m: mask)

    def _replacer(self, name: str) -> Callable[[re.Match[str]], str] | str:
        pseudo = name in self._pseudo
        mask = _MASK.get(name, f"[REDACTED:{name}]")
        if name == "TOKEN":
            if pseudo:
                return lambda m: m[1] + self.token(name, m[0][len(m[1]):])
            return lambda m: m[1] + mask
        check = _CHECKS.get(name)
        if check is None:
            return (lambda m: self.token(name, m[0])) if pseudo else mask.replace("\\", "\\\\")
        counts = self.counts

        def checked(match: re.Match[str]) -> str:
            if not check(match):
                return match[0]  # a near miss: left as is, scanning resumes after it
            counts[name] += 1
            return self.token(name, match[0]) if pseudo else mask
        return checked


def _subn_at(rule: _Rule, starts: Callable[[str], Iterator[int]],
             text: str) -> tuple[str, int]:
    """subn, with the regex tried only where `starts` says a match can begin: the same
    result, as every match of the rule begins at one of those places, in order."""
    parts: list[str] = []
    last = 0
    match, replace = rule.regex.match, rule.replace
    for start in starts(text):
        if start < last or (m := match(text, start)) is None:
            continue
        parts += (text[last:start], replace if isinstance(replace, str) else replace(m))
        last = m.end()
    return _joined(text, parts, last)


def _subn_from(rule: _Rule, text: str, at: int) -> tuple[str, int]:
    """subn scanning from `at`, before which no match begins (lookbehinds still see it)."""
    parts: list[str] = []
    last = 0
    replace = rule.replace
    for m in rule.regex.finditer(text, at):
        parts += (text[last:m.start()], replace if isinstance(replace, str) else replace(m))
        last = m.end()
    return _joined(text, parts, last)


def _subn_card(rule: _Rule, text: str) -> tuple[str, int]:
    """subn for CARD on an ASCII line, the regex searching only from each place where the
    line holds 13 digits once separators are gone (bytes.translate and find, in C) to its
    next match. Every candidate holds such a run, so none is skipped; `o` and `seps` (the
    separators before `o`) only move forward, so the mapping back is linear in the line."""
    raw = _encode(text)
    digits = raw.translate(_ZEROS, b" -")
    parts: list[str] = []
    last = o = seps = 0
    search, replace = rule.regex.search, rule.replace
    while True:
        if last > o:
            seps += raw.count(b" ", o, last) + raw.count(b"-", o, last)
            o = last
        run = digits.find(b"0000000000000", o - seps)
        if run < 0:
            break
        while (step := run - (o - seps)) > 0:  # to the first offset holding that digit
            seps += raw.count(b" ", o, o + step) + raw.count(b"-", o, o + step)
            o += step
        if (m := search(text, o)) is None:
            break
        parts += (text[last:m.start()], replace if isinstance(replace, str) else replace(m))
        last = m.end()
    return _joined(text, parts, last)


def _joined(text: str, parts: list[str], last: int) -> tuple[str, int]:
    """subn's result from (kept text, replacement) pairs ending at `last`: the one tail
    every _subn_* variant shares, so they cannot drift apart."""
    if not parts:
        return text, 0
    parts.append(text[last:])
    return "".join(parts), len(parts) // 2


def _token_starts(text: str) -> Iterator[int]:
    """The keyword's first letter before each `earer`/`EARER`, in order (each find resumes
    after its last hit: linear on a line of repeated keywords)."""
    lower, upper = text.find("earer", 1), text.find("EARER", 1)
    while lower >= 0 or upper >= 0:
        if upper < 0 or 0 <= lower < upper:
            yield lower - 1
            lower = text.find("earer", lower + 1)
        else:
            yield upper - 1
            upper = text.find("EARER", upper + 1)


_LOCAL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-"


def _email_starts(text: str) -> Iterator[int]:
    """The start of the run of local-part characters before each '@' (rstrip finds it in C).
    A run reaching back into an earlier match cannot start one (lookbehind): skipped."""
    prev = 0
    while (at := text.find("@", prev)) >= 0:
        yield prev + len(text[prev:at].rstrip(_LOCAL))
        prev = at + 1


def _ipv4_starts(text: str) -> Iterator[int]:
    """The start of the digit run before each '.' that a digit precedes."""
    prev = 0
    while (dot := text.find(".", prev)) >= 0:
        start = prev + len(text[prev:dot].rstrip("0123456789"))
        if start < dot:
            yield start
        prev = dot + 1


def _always(_text: str) -> int:
    return 0


def _token_at(text: str) -> int:
    return 0 if "earer" in text or "EARER" in text else -1


def _email_at(text: str) -> int:
    return 0 if "@" in text else -1


def _card_at(text: str) -> int:
    """13 digits in a row once separators are gone (bytes.translate runs at ~400 MB/s, where
    any regex over digit-heavy lines manages 40): -1 none, 1 an ASCII line (_subn_card),
    0 another (scanned whole)."""
    if _encode(text).translate(_ZEROS, b" -").find(b"0000000000000") < 0:
        return -1
    return 1 if text.isascii() else 0


def _ipv4_at(text: str) -> int:
    """Three dots in a row once digits are gone: every dotted quad leaves `...`."""
    return _encode(text).translate(None, _DIGITS).find(b"...")


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


def _ipv4(match: re.Match[str]) -> bool:
    """Octets 0-255 without leading zeros, and no `.digit` after (`1.2.3.4.5` is a build
    number); what precedes, and a word character after, the pattern has checked."""
    text, end = match.string, match.end()
    if text[end:end + 1] == "." and text[end + 1:end + 2].isdigit():
        return False
    return _QUAD.fullmatch(match[0]) is not None


def _card(match: re.Match[str]) -> bool:
    return luhn(match[0])


def _ipv6(match: re.Match[str]) -> bool:
    """A candidate longer than any address is not parsed (a flood of colons stays cheap)."""
    if len(match[0]) > _IPV6_MAX:
        return False
    try:
        ipaddress.IPv6Address(match[0])
    except ValueError:
        return False
    return True


_TRIGGERS: dict[str, Callable[[str], int]] = {
    "TOKEN": _token_at, "EMAIL": _email_at, "CARD": _card_at, "IPV4": _ipv4_at, "IPV6": _ipv6_at,
}
_STARTS = {"TOKEN": _token_starts, "EMAIL": _email_starts, "IPV4": _ipv4_starts}
_CHECKS: dict[str, Callable[[re.Match[str]], bool]] = {
    "CARD": _card, "IPV4": _ipv4, "IPV6": _ipv6,
}
