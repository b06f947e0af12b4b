"""Event topics: a kind's dot-separated parts are topic levels, so MQTT wildcards work."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from plugins.mqtt.sink import event_topic

PREFIX = "inferwatch/v1/h"


def test_kind_parts_are_levels() -> None:
    assert event_topic(PREFIX, "gpu.xid") == f"{PREFIX}/events/gpu/xid"
    assert event_topic(PREFIX, "alert.firing") == f"{PREFIX}/events/alert/firing"
    assert event_topic(PREFIX, "agent.started") == f"{PREFIX}/events/agent/started"
    assert event_topic(PREFIX, "odd/kind+#") == f"{PREFIX}/events/odd_kind__"
    assert event_topic(PREFIX, "a..b") == f"{PREFIX}/events/a/_/b"


@given(st.text(min_size=1, max_size=40))
def test_any_kind_gives_a_publishable_topic_with_one_level_per_part(kind: str) -> None:
    levels = event_topic(PREFIX, kind).split("/")[4:]
    assert len(levels) == kind.count(".") + 1
    assert all(level and "+" not in level and "#" not in level for level in levels)
    if not any(c in kind for c in "/+#") and "" not in kind.split("."):
        assert ".".join(levels) == kind
