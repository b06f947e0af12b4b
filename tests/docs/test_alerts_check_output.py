"""docs/alerts.md's "Checking rules" output is what `inferwatch check` prints for it."""

from __future__ import annotations

import re
import tomllib

import pytest

from agent.config import build_config
from agent.errors import ConfigError
from agent.loader import discover
from tests.helpers import ROOT

BAD = """
[plugins.alerts]
disabled_rules = ["NoSuchRule"]
[[plugins.alerts.rules]]
name = "T"
metric = "inferwatch_gpu_temprature_celsius"
fire = 80
clear = 90
matchers = ['gpu=~"[0-"']
summary = "GPU ${value"
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_config(tomllib.loads(text), discover().config_models())
    return caught.value.problems


def test_the_documented_check_output_is_printed_run_by_run() -> None:
    doc = (ROOT / "docs" / "alerts.md").read_text()
    section = doc[doc.index("## Checking rules"):doc.index("**Unknown metrics are errors**")]
    first, second = (block.splitlines() for block in
                     re.findall(r"```text\n(.*?)```", section, re.S))
    assert _problems(BAD) == first
    fixed = BAD.replace("clear = 90", "clear = 70").replace("temprature", "temperature")
    fixed = fixed.replace("[0-", "[0-3]").replace("${value", "${value}")
    assert _problems(fixed) == second
