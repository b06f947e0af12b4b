"""The webhook sink's Alertmanager payload against what the real Alertmanager (Debian's)
posts to a webhook receiver for the same alert: same keys, same values where they are ours."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import build_config
from agent.model import utc_timestamp
from plugins.webhook.config import WebhookConfig
from plugins.webhook.sink import WebhookSink
from tests.helpers import poll
from tests.integration.alertmanager_helpers import Alertmanager, Receiver
from tests.plugins.test_webhook_alertmanager import alert_event

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


def _when(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


async def test_same_shape_as_alertmanagers_own_notification(tmp_path: Path,
                                                            receiver: Receiver) -> None:
    event = alert_event(fp="5c2d0e1f9a8b7c6d")  # the engine's: 16 hex digits, as theirs
    event.data["startsAt"] = utc_timestamp(dt.datetime.now(dt.UTC).timestamp() - 60)
    am = Alertmanager(tmp_path / "am", receiver.port).start()
    try:
        labels = {"alertname": "DiskNearlyFull", **event.data["labels"]}
        body = json.dumps([{"labels": labels, "annotations": event.data["annotations"],
                            "startsAt": event.data["startsAt"],
                            "generatorURL": event.data["generatorURL"]}]).encode()
        request = urllib.request.Request(  # noqa: S310 - a test URL
            f"{am.url}/api/v2/alerts", data=body, method="POST",
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).close()  # noqa: S310 - a test URL
        (theirs,) = poll(lambda: list(receiver.notifications), what="Alertmanager's post")
    finally:
        am.stop()
    config = build_config({"plugins": {"webhook": {
        "enabled": True, "format": "alertmanager", "receiver": "hook",
        "url": f"http://127.0.0.1:{receiver.port}/hook"}}},
        {"webhook": WebhookConfig}).plugins["webhook"]
    assert isinstance(config, WebhookConfig)
    sink = WebhookSink(config, "webhook")
    await sink.start()
    try:
        await sink.deliver([event])
    finally:
        await sink.stop()
    ours = receiver.notifications[1]
    assert set(ours) == set(theirs)
    assert set(ours["alerts"][0]) == set(theirs["alerts"][0])
    same = ("version", "groupKey", "status", "receiver", "groupLabels", "commonLabels",
            "commonAnnotations", "truncatedAlerts")
    assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
    mine, real = ours["alerts"][0], theirs["alerts"][0]
    for key in ("status", "labels", "annotations", "generatorURL"):
        assert mine[key] == real[key], key
    assert _when(mine["startsAt"]) == pytest.approx(_when(real["startsAt"]), abs=0.001)
    assert len(mine["fingerprint"]) == len(real["fingerprint"]) == 16
