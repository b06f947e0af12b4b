"""The code blocks of every Markdown file users read, collected with Sybil.

Sybil finds the fenced blocks (and their line numbers); the tests in this folder decide
what "works" means for each language: Python runs, TOML passes `inferwatch check`, console
sessions replay, JSON records are posted to a real agent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser

from tests.helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "plugins").glob("*/README.md")),
        *sorted((ROOT / "contrib").glob("*/README.md"))]
LANGUAGES = ("python", "toml", "console", "json", "sh")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _collect() -> list[Block]:
    sybil = Sybil(parsers=[CodeBlockParser(language=lang, evaluator=lambda _example: None)
                           for lang in LANGUAGES])
    return [Block(path, example.line, example.region.lexemes["arguments"], str(example.parsed))
            for path in DOCS for example in sybil.parse(path)]


BLOCKS = _collect()


def blocks(language: str) -> list[Block]:
    return [b for b in BLOCKS if b.language == language]


def matches(expected: list[str], actual: list[str]) -> bool:
    """Output comparison with the docs' placeholders: a line `...` stands for any number of
    lines, and `...` inside a line for any text."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head.strip() == "...":
        return any(matches(rest, actual[i:]) for i in range(len(actual) + 1))
    if not actual:
        return False
    pattern = ".*".join(re.escape(part) for part in head.rstrip().split("..."))
    return re.fullmatch(pattern, actual[0].rstrip()) is not None and matches(rest, actual[1:])
