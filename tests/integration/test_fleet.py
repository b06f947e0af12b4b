"""The fleet consumer (contrib/fleet) with a real mosquitto: three hosts' window profiles,
two consumer instances on a shared subscription, one of them killed and restarted."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from sklearn.metrics import accuracy_score, f1_score

from plugins.drift import fleet, profile
from tests.helpers import ROOT, free_port, http_get, parse_metrics, poll
from tests.integration.live import LiveAgent
from tests.integration.mqtt_helpers import Mosquitto, Subscriber

pytestmark = pytest.mark.integration
HOSTS = ("gpu-1", "gpu-2", "gpu-3")
CONSUMER = ROOT / "contrib" / "fleet" / "consumer.py"


def _columns(rng: np.random.Generator, n: int, shift: float) -> dict[str, np.ndarray]:
    return {"x": rng.normal(shift, 1.0, n), "age": rng.normal(40, 10, n),
            "c": rng.choice(np.array(["a", "b", "c", "d"], dtype=object), n,
                            p=[0.4, 0.3, 0.3 - shift / 10, shift / 10])}


def _host_data(seed: int, n: int, shift: float) -> tuple[dict[str, np.ndarray], list[int],
                                                        list[int]]:
    rng = np.random.default_rng(seed)
    columns = _columns(rng, n, shift)
    labels = (rng.random(n) < 0.3).astype(int).tolist()
    predictions = [label if rng.random() < 0.8 else 1 - label for label in labels]
    return columns, labels, predictions


@pytest.fixture
def reference(tmp_path: Path) -> tuple[profile.Profile, Path]:
    ref = profile.build(_columns(np.random.default_rng(0), 20_000, 0.0), model="fraud",
                        model_version="3")
    path = tmp_path / "ref.json"
    ref.save(path)
    return ref, path


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path / "mqtt").start()
    yield server
    server.stop()


def _publish(port: int, window_end: float, ref: profile.Profile, shifts: tuple[float, ...]
             ) -> list[tuple[dict[str, np.ndarray], list[int], list[int]]]:
    data = [_host_data(int(window_end) + i, 1000 + 300 * i, shift)
            for i, shift in enumerate(shifts)]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="agents",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for host, (columns, labels, predictions) in zip(HOSTS, data, strict=True):
        window = fleet.build(columns, ref, host=host, window="1h", end=window_end,
                             labels=labels, predictions=predictions)
        client.publish(f"inferwatch/v1/{host}/profiles/fraud", fleet.encode(window),
                       qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()
    return data


def _consumer(name: str, port: int, listen: int, ref_path: Path, log: Path
              ) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(CONSUMER), "--broker", "127.0.0.1", "--port", str(port),
             "--name", name, "--reference", str(ref_path), "--listen", f"127.0.0.1:{listen}"],
            stdout=out, stderr=out, cwd=ROOT)


def _fleet_view(listen: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return parse_metrics(http_get(f"http://127.0.0.1:{listen}/metrics"))


def _expected(data: list[tuple[dict[str, np.ndarray], list[int], list[int]]],
              ref: profile.Profile, end: float) -> tuple[dict[str, float], dict[str, float]]:
    """One host's computation over everyone's rows."""
    columns = {name: np.concatenate([d[0][name] for d in data]) for name in data[0][0]}
    labels = [v for d in data for v in d[1]]
    predictions = [v for d in data for v in d[2]]
    single = fleet.build(columns, ref, host="one", window="1h", end=end, labels=labels,
                         predictions=predictions)
    found = fleet.quality(single)
    assert found["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    assert found["f1"] == pytest.approx(f1_score(labels, predictions))
    return found, {k: v["psi"] for k, v in fleet.drift(single, ref).items()}


def _matches(view: dict[tuple[str, tuple[tuple[str, str], ...]], float], end: float,
             quality: dict[str, float], psi: dict[str, float]) -> bool:
    labels = (("model", "fraud"), ("model_version", "3"), ("window", "1h"))
    if view.get(("inferwatch_fleet_window_end_timestamp_seconds", labels)) != end:
        return False
    if view[("inferwatch_fleet_hosts", labels)] < 3:  # the hosts' profiles come one by one
        return False
    for name in ("accuracy", "precision", "recall", "f1"):
        assert view[(f"inferwatch_fleet_{name}", labels)] == pytest.approx(quality[name], 1e-12)
    for feature, value in psi.items():
        key = tuple(sorted((*labels, ("feature", feature))))
        assert view[("inferwatch_fleet_drift_psi", key)] == pytest.approx(value, 1e-9)
    return True


@pytest.mark.timeout(120)
def test_two_consumers_merge_three_hosts_exactly_and_a_killed_one_loses_nothing(
        tmp_path: Path, broker: Mosquitto, reference: tuple[profile.Profile, Path]) -> None:
    ref, ref_path = reference
    ports = [free_port(), free_port()]
    consumers = [_consumer(f"fleet-{i}", broker.port, p, ref_path, tmp_path / f"c{i}.log")
                 for i, p in enumerate(ports)]
    try:
        for p in ports:
            poll(lambda p=p: _fleet_view(p) is not None, 20, what="consumer /metrics")
        _subscribed(tmp_path, consumers)
        end = 1_800_003_600.0
        quality, psi = _expected(_publish(broker.port, end, ref, (0.0, 0.5, 1.5)), ref, end)
        for p in ports:  # every instance shows the whole fleet, whichever got which profile
            poll(lambda p=p: _matches(_fleet_view(p), end, quality, psi), 20, 0.1,
                 "the merged window on each consumer")
        consumers[0].send_signal(signal.SIGKILL)
        consumers[0].wait(10)
        later = end + 3600
        quality, psi = _expected(_publish(broker.port, later, ref, (1.0, 0.0, 0.2)), ref, later)
        consumers[0] = _consumer("fleet-0", broker.port, ports[0], ref_path,
                                 tmp_path / "c0.log")
        for p in ports:  # what waited in the killed instance's session arrives after all
            poll(lambda p=p: _matches(_fleet_view(p), later, quality, psi), 30, 0.1,
                 "the window published while a consumer was down")
    finally:
        for proc in consumers:
            proc.kill()
            proc.wait(10)


def _subscribed(tmp_path: Path, consumers: list[subprocess.Popen[bytes]]) -> None:
    def ready() -> bool:
        for i, proc in enumerate(consumers):
            if proc.poll() is not None:
                raise AssertionError((tmp_path / f"c{i}.log").read_text())
        return all("connected" in (tmp_path / f"c{i}.log").read_text()
                   for i in range(len(consumers)))
    poll(ready, 20, what="consumers connected")


@given(st.lists(st.integers(1, 40), min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_merging_profiles_equals_profiling_the_concatenation(sizes: list[int], seed: int) -> None:
    ref = profile.build(_columns(np.random.default_rng(1), 500, 0.0), model="m")
    rng = np.random.default_rng(seed)
    parts = [_columns(rng, n, float(rng.random())) for n in sizes]
    merged = fleet.merge(fleet.build(p, ref, host=f"h{i}", window="1h", end=1.0)
                         for i, p in enumerate(parts))
    whole = fleet.build({k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, ref,
                        host="all", window="1h", end=1.0)
    assert merged.n == whole.n
    assert merged.features == whole.features
    again = fleet.merge([merged, fleet.build(parts[0], ref, host="h0", window="1h", end=1.0)])
    assert again.features == merged.features  # a host delivered twice counts once


@pytest.mark.timeout(120)
def test_a_live_agent_publishes_its_window_profiles_and_summaries(tmp_path: Path) -> None:
    live = LiveAgent(tmp_path)
    subscriber = Subscriber(live.mosquitto.port, "inferwatch/v1/#", client_id="fleet-test")
    try:
        payloads = poll(lambda: subscriber.payloads("/profiles/fraud"), 60, 0.2,
                        "a window profile on profiles/fraud")
        window = fleet.decode(payloads[0])  # bare, schema 1: what contrib/fleet reads
        assert (window.model, window.model_version, window.window) == ("fraud", "3", "2s")
        assert window.hosts == [socket.gethostname()]
        assert window.n > 0
        assert set(window.features) >= {"amount", "age", "country"}
        assert sum(window.features["amount"].counts or []) <= window.n
        assert sum(map(sum, window.confusion)) > 0  # labels came right behind
        kinds = {e["kind"] for e in subscriber.events()}
        assert {"quality.window", "drift.window"} <= kinds
    finally:
        subscriber.close()
        live.stop()


@pytest.mark.timeout(120)
def test_a_restarted_consumer_keeps_the_hosts_it_had_acknowledged_for_a_window(
        tmp_path: Path, broker: Mosquitto, reference: tuple[profile.Profile, Path]) -> None:
    """Two hosts' profiles of a window acknowledged, the consumer killed, the third host's
    profile of the same window queued in its session: after the restart all three count.
    (A partial per consumer and window, rewritten from memory, lost the first two: the
    queued profile arrives before the retained partial does.)"""
    ref, ref_path = reference
    port = free_port()
    end = 1_800_007_200.0
    data = [_host_data(int(end) + i, 1000 + 300 * i, shift)
            for i, shift in enumerate((0.0, 0.5, 1.5))]
    consumer = _consumer("fleet-0", broker.port, port, ref_path, tmp_path / "c0.log")
    try:
        poll(lambda: _fleet_view(port) is not None, 20, what="consumer /metrics")
        _subscribed(tmp_path, [consumer])
        _send(broker.port, end, ref, dict(zip(HOSTS[:2], data[:2], strict=True)))
        labels = (("model", "fraud"), ("model_version", "3"), ("window", "1h"))
        poll(lambda: _fleet_view(port).get(("inferwatch_fleet_hosts", labels)) == 2, 20, 0.1,
             "two hosts merged")
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(10)
        _send(broker.port, end, ref, {HOSTS[2]: data[2]})
        consumer = _consumer("fleet-0", broker.port, port, ref_path, tmp_path / "c0.log")
        quality, psi = _expected(data, ref, end)
        poll(lambda: _matches(_fleet_view(port), end, quality, psi), 30, 0.1,
             "all three hosts after the restart")
        view = _fleet_view(port)
        assert view[("inferwatch_fleet_window_samples", labels)] == sum(
            len(d[1]) for d in data)
    finally:
        consumer.kill()
        consumer.wait(10)


def _send(port: int, end: float, ref: profile.Profile,
          hosts: dict[str, tuple[dict[str, np.ndarray], list[int], list[int]]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="agents",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for host, (columns, labels, predictions) in hosts.items():
        window = fleet.build(columns, ref, host=host, window="1h", end=end,
                             labels=labels, predictions=predictions)
        client.publish(f"inferwatch/v1/{host}/profiles/fraud", fleet.encode(window),
                       qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


@pytest.mark.timeout(120)
def test_a_refused_partial_leaves_its_profile_unacknowledged(
        tmp_path: Path, reference: tuple[profile.Profile, Path]) -> None:
    """The broker's ACL denies the partials topic (PUBACK 0x87): the profile must not be
    acknowledged as if its partial were stored. Once the ACL allows it, a restarted
    consumer gets the profile again and the window appears."""
    ref, ref_path = reference
    folder = tmp_path / "broker"
    folder.mkdir()
    passwords, acl = folder / "passwords", folder / "acl"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "fleet", "s3cret"],
                   check=True, capture_output=True)
    acl.write_text("user fleet\ntopic read inferwatch/v1/#\n"
                   "topic read inferwatch/fleet/v1/partials/#\n")
    plain, guarded = free_port(), free_port()
    broker = Mosquitto(folder, plain, (
        f"per_listener_settings true\nlistener {plain} 127.0.0.1\nallow_anonymous true\n"
        f"listener {guarded} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {passwords}\nacl_file {acl}\nmax_queued_messages 1000\n")).start()
    (tmp_path / "password").write_text("s3cret\n")
    port = free_port()
    args = ["--username", "fleet", "--password-file", str(tmp_path / "password")]

    def start() -> subprocess.Popen[bytes]:
        with (tmp_path / "c0.log").open("ab") as out:
            return subprocess.Popen(
                [sys.executable, str(CONSUMER), "--broker", "127.0.0.1", "--port",
                 str(guarded), "--name", "fleet-0", "--reference", str(ref_path),
                 "--listen", f"127.0.0.1:{port}", *args], stdout=out, stderr=out, cwd=ROOT)

    consumer = start()
    try:
        poll(lambda: _fleet_view(port) is not None, 20, what="consumer /metrics")
        _subscribed(tmp_path, [consumer])
        end = 1_800_010_800.0
        data = [_host_data(int(end), 1000, 0.3)]
        _send(broker.port, end, ref, {HOSTS[0]: data[0]})
        refused = (("reason", "partial_refused"),)
        poll(lambda: _fleet_view(port).get(("inferwatch_fleet_profiles_rejected_total",
                                            refused)) == 1, 20, 0.1, "the refusal counted")
        acl.write_text("user fleet\ntopic read inferwatch/v1/#\n"
                       "topic readwrite inferwatch/fleet/v1/partials/#\n")
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)  # mosquitto reloads its ACL file
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(10)
        consumer = start()
        labels = (("model", "fraud"), ("model_version", "3"), ("window", "1h"))
        poll(lambda: _fleet_view(port).get(
            ("inferwatch_fleet_window_end_timestamp_seconds", labels)) == end, 30, 0.1,
            "the profile delivered again once the partial is allowed")
    finally:
        consumer.kill()
        consumer.wait(10)
        broker.stop()
