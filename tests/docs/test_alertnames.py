"""Alert names the docs route on are names the agent's shipped rules give its alerts."""

from __future__ import annotations

import fnmatch
import re

from plugins.alerts.builtin import builtin_rules
from tests.helpers import ROOT

# Where a user copies an alertname into a sink's routing or a subscription.
PAGES = ["docs/alerts-sinks.md", "docs/mqtt.md", "docs/alerts.md", "plugins/exec/README.md",
         "plugins/alertmanager/README.md", "plugins/alerts/README.md"]
NAMED = re.compile(r'alertname"?\s*[=:]\s*"([A-Za-z0-9_*?]+)"|/alerts/([A-Za-z0-9_*?]+)/')


def _named() -> dict[str, str]:
    found = {}
    for page in PAGES:
        path = ROOT / page
        if path.exists():
            for match in NAMED.finditer(path.read_text()):
                found[match.group(1) or match.group(2)] = page
    return found


def test_every_alertname_the_docs_route_on_matches_a_shipped_rule() -> None:
    shipped = {rule.name for rule in builtin_rules()}
    named = _named()
    assert "ModelQualityDegraded" in named
    assert "GpuXidCritical" in named
    wrong = {name: page for name, page in named.items()
             if name not in {"GpuHot", "XidOnGpu"}  # docs/alerts.md's own example rules
             and not fnmatch.filter(shipped, name)}
    assert wrong == {}
