"""The webhook sink against a real aiohttp receiver: signatures, TLS, retries, refusals."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.backoff import Backoff
from agent.config import ConfigError, build_config
from agent.delivery import DurableDelivery
from agent.errors import PermanentDeliveryError
from agent.loader import discover
from agent.metrics import PluginMetrics
from agent.model import Event, Severity
from plugins.webhook.config import WebhookConfig
from plugins.webhook.sink import WebhookError, WebhookSink, signature
from tests.helpers import poll_async
from tests.webhook_receiver import Receiver, receiving, verify

SECRET = b"s3cret-webhook-key"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA made for this test, a server certificate for 127.0.0.1 it signed, another CA."""
    folder = tmp_path_factory.mktemp("pki")
    for name in ("ca", "other"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                 f"/CN={name}", "-keyout", str(folder / f"{name}.key"),
                 "-out", str(folder / f"{name}.crt"))
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(key), "-out", str(csr))
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(folder / "ca.crt"), "-CAkey",
             str(folder / "ca.key"), "-CAcreateserial", "-days", "1", "-extfile",
             str(folder / "san.ext"), "-out", str(cert))
    (folder / "secret").write_bytes(SECRET + b"\n")
    return {"ca": folder / "ca.crt", "other": folder / "other.crt", "cert": cert, "key": key,
            "secret": folder / "secret"}


@pytest.fixture(autouse=True)
def _collect_leftovers() -> Iterator[None]:
    """CPython 3.11's SSL transport can outlive a failed handshake or a timed-out request
    (closed by the socket's finalizer, so no descriptor is kept): collect it here, not in
    whichever later test the garbage collector happens to run."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def receiver(pki: dict[str, Path]) -> Iterator[Receiver]:
    with receiving(secret=SECRET, tls=(pki["cert"], pki["key"])) as found:
        yield found


def _config(pki: dict[str, Path], url: str, **extra: Any) -> WebhookConfig:
    raw = {"enabled": True, "url": url, "secret": {"file": str(pki["secret"])},
           "ca_file": str(pki["ca"]), "timeout": "1s", **extra}
    config = build_config({"plugins": {"webhook": raw}}, {"webhook": WebhookConfig})
    found = config.plugins["webhook"]
    assert isinstance(found, WebhookConfig)
    return found


@pytest.fixture
async def sink(pki: dict[str, Path], receiver: Receiver) -> AsyncIterator[WebhookSink]:
    started = WebhookSink(_config(pki, receiver.url))
    await started.start()
    yield started
    await started.stop()


def _events(count: int, kind: str = "retrain.requested") -> list[Event]:
    return [Event(kind=kind, source="drift", host="h", severity=Severity.WARNING,
                  data={"n": n, "model": "fraud"}) for n in range(count)]


async def test_each_event_is_posted_signed_over_tls(sink: WebhookSink,
                                                    receiver: Receiver) -> None:
    events = _events(3)
    await sink.deliver(events)
    assert [e["data"]["n"] for e in receiver.events] == [0, 1, 2]
    assert [e["id"] for e in receiver.events] == [e.id for e in events]
    headers, body = receiver.requests[0]
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == json.loads(events[0].to_json())  # the envelope as is
    assert verify(SECRET, headers, body)
    assert receiver.bad_signatures == 0


def test_the_signature_covers_the_timestamp_and_the_exact_body() -> None:
    body = b'{"kind":"x"}'
    sig = signature(SECRET, "1700000000", body)
    assert sig == ("sha256=" + __import__("hmac").new(
        SECRET, b"1700000000." + body, "sha256").hexdigest())
    headers = {"X-Inferwatch-Timestamp": "1700000000", "X-Inferwatch-Signature": sig}
    assert verify(SECRET, headers, body, now=1700000100)
    assert not verify(SECRET, headers, body + b" ", now=1700000100)  # body changed
    assert not verify(SECRET, headers, body, now=1700009999)  # replayed much later
    assert not verify(b"other", headers, body, now=1700000100)


async def test_headers_and_secret_headers_are_sent(pki: dict[str, Path],
                                                   receiver: Receiver) -> None:
    (pki["secret"].parent / "api-key").write_text("k3y-from-file\n")
    sink = WebhookSink(_config(pki, receiver.url, headers={"X-Team": "ml"}, secret_headers={
        "X-Api-Key": {"file": str(pki["secret"].parent / "api-key")}}))
    await sink.start()
    try:
        await sink.deliver(_events(1))
    finally:
        await sink.stop()
    headers = receiver.requests[0][0]
    assert (headers["X-Team"], headers["X-Api-Key"]) == ("ml", "k3y-from-file")
    assert headers["User-Agent"].startswith("inferwatch/")


async def test_batch_mode_posts_json_arrays_of_at_most_max_batch(
        pki: dict[str, Path], receiver: Receiver) -> None:
    sink = WebhookSink(_config(pki, receiver.url, batch=True, max_batch=4))
    await sink.start()
    try:
        await sink.deliver(_events(10))
    finally:
        await sink.stop()
    assert [len(json.loads(body)) for _, body in receiver.requests] == [4, 4, 2]
    assert [e["data"]["n"] for e in receiver.events] == list(range(10))


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422, 301])
async def test_a_client_error_is_permanent(sink: WebhookSink, receiver: Receiver,
                                           status: int) -> None:
    receiver.answers = [200, status]
    events = _events(3)
    with pytest.raises(PermanentDeliveryError) as caught:
        await sink.deliver(events)
    assert [e.id for e in caught.value.events] == [events[1].id]
    assert [e.id for e in caught.value.delivered or []] == [events[0].id]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_server_errors_408_and_429_are_retried(sink: WebhookSink, receiver: Receiver,
                                                     status: int) -> None:
    receiver.answers = [status]
    with pytest.raises(WebhookError, match=str(status)):
        await sink.deliver(_events(1))


async def test_a_slow_receiver_times_out_and_is_retried(sink: WebhookSink,
                                                        receiver: Receiver) -> None:
    receiver.delay = 3.0  # the config's timeout is 1 s
    with pytest.raises(WebhookError, match="Timeout"):
        await sink.deliver(_events(1))


async def test_a_server_signed_by_another_ca_is_refused_and_retried(
        pki: dict[str, Path], receiver: Receiver) -> None:
    sink = WebhookSink(_config(pki, receiver.url, ca_file=str(pki["other"])))
    await sink.start()
    try:
        with pytest.raises(WebhookError, match=r"[Cc]ertificate"):
            await sink.deliver(_events(1))
    finally:
        await sink.stop()
    assert receiver.requests == []


async def test_a_closed_port_is_retried() -> None:
    from tests.helpers import free_port  # noqa: PLC0415

    config = build_config({"plugins": {"webhook": {
        "enabled": True, "url": f"http://127.0.0.1:{free_port()}/hook"}}},
        {"webhook": WebhookConfig}).plugins["webhook"]
    assert isinstance(config, WebhookConfig)
    sink = WebhookSink(config)
    await sink.start()
    try:
        with pytest.raises(WebhookError, match="Connect"):
            await sink.deliver(_events(1))
    finally:
        await sink.stop()


async def _delivered(sink: WebhookSink, tmp_path: Path) -> DurableDelivery:
    """Five events put through the sink's durable outbox (quick backoff) until it is empty;
    the closed delivery, for its counters."""
    store = PluginMetrics("webhook", 100)
    delivery = DurableDelivery("webhook", sink, sink.config, tmp_path, store,
                               backoff=Backoff(0.001, 0.004))
    await delivery.open()
    await delivery.put(_events(5))
    task = asyncio.create_task(delivery.run())
    await poll_async(lambda: delivery.outbox.depth == 0)
    task.cancel()
    await delivery.close()
    return delivery


async def test_through_its_outbox_retries_then_drops_only_the_refused(
        pki: dict[str, Path], receiver: Receiver, sink: WebhookSink, tmp_path: Path) -> None:
    receiver.answers = [503, 503, 200, 400]  # two failed tries, then event 1 refused
    delivery = await _delivered(sink, tmp_path)
    assert [e["data"]["n"] for e in receiver.events] == [0, 2, 3, 4]
    assert delivery.failed == 2
    assert delivery.outbox.dropped["rejected"] == 1
    assert delivery.delivered == 4


async def test_a_retry_resends_only_what_the_receiver_did_not_take(
        pki: dict[str, Path], receiver: Receiver, sink: WebhookSink, tmp_path: Path) -> None:
    """One POST per event: events 0 and 1 got 200, event 2 a 503. The retry began again at
    event 0, so a receiver failing one request in twenty saw the head of a 100-event batch
    again and again, and the batch almost never got through."""
    receiver.answers = [200, 200, 503]
    delivery = await _delivered(sink, tmp_path)
    assert [e["data"]["n"] for e in receiver.events] == [0, 1, 2, 3, 4]
    assert delivery.delivered == 5
    assert delivery.failed == 1
    assert delivery.outbox.dropped["rejected"] == 0


@pytest.mark.parametrize(("extra", "problem"), [
    ({"url": ""}, "plugins.webhook.url: required"),
    ({"url": "ftp://x/"}, "plugins.webhook.url: must be an http"),
    ({"url": "https://u:p@x/"}, "plugins.webhook.url: must not hold credentials"),
    ({"url": "http://x/", "ca_file": "ca.crt"}, "plugins.webhook.ca_file: a CA file needs"),
    ({"headers": {"X-Inferwatch-Signature": "x"}}, "plugins.webhook.headers.X-Inferwatch-"),
    ({"headers": {"Bad Name": "x"}}, "not a valid HTTP header name"),
    ({"headers": {"X-A": "a\r\nB: c"}}, "must not contain CR"),
    ({"match": []}, "plugins.webhook.match: needs at least one"),
    ({"min_severity": "loud"}, "plugins.webhook.min_severity: must be one of"),
    ({"secret": "literal"}, "plugins.webhook.secret: a secret must be"),
    ({"secret_headers": {"X-Api-Key": "literal"}},
     "plugins.webhook.secret_headers.X-Api-Key: a secret must be"),
    ({"headers": {"x-api-key": "a"}, "secret_headers": {"X-Api-Key": {"env": "HOME"}}},
     "plugins.webhook.secret_headers: a header is set twice"),
])
def test_config_errors_name_their_key(extra: dict[str, Any], problem: str,
                                      tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("x")
    raw = {"enabled": True, "url": "https://hooks.example/x", **extra}
    with pytest.raises(ConfigError) as caught:
        build_config({"plugins": {"webhook": raw}}, {"webhook": WebhookConfig},
                     base_dir=tmp_path)
    assert any(p.startswith(problem) or problem in p for p in caught.value.problems), \
        caught.value.problems


def test_a_bearer_token_over_two_lines_is_a_config_error(tmp_path: Path) -> None:
    """It became an Authorization header that aiohttp refused at every POST (retried
    forever); the error names the key, never the token."""
    (tmp_path / "token").write_text("first-half-of-tok\nsecond-half\n")
    raw = {"enabled": True, "url": "https://hooks.example/x", "bearer_token": {"file": "token"}}
    with pytest.raises(ConfigError) as caught:
        build_config({"plugins": {"webhook": raw}}, {"webhook": WebhookConfig},
                     base_dir=tmp_path)
    assert caught.value.problems == [
        "plugins.webhook.bearer_token: must not contain CR, LF or NUL"]


def test_disabled_by_default_and_registered_through_its_entry_point() -> None:
    plugins = discover()
    record = next(r for r in plugins.loaded if r.name == "webhook")
    assert record.origin == "built-in"
    config = build_config({}, plugins.config_models()).plugins["webhook"]
    assert isinstance(config, WebhookConfig)
    assert not config.enabled
    assert (config.match, config.durable, config.batch) == (["*"], True, False)

