"""Fleet-level drift and quality from the window profiles of many inferwatch agents.

    python contrib/fleet/consumer.py --broker mqtt.internal --name fleet-1 \
        --reference fraud-v3.json --listen 127.0.0.1:9881

Several instances split the load through an MQTT 5 shared subscription
(`$share/<group>/inferwatch/v1/+/profiles/#`): each profile reaches one instance. Each
instance keeps what it received as *retained* partials (`<partials>/<key digest>/<host>`,
one message per window and host, so no instance ever rewrites what another message added)
and reads all of them, so every instance exports the whole fleet on its /metrics, and a
restarted instance finds the state in the broker. A host is who its topic says: a profile
naming other hosts, another model than its reference's, or counts off the reference's bins
is refused and counted. An incoming profile is acknowledged only once the broker has accepted
the partial that holds it (manual acks), so killing an instance at any moment loses nothing:
its unacknowledged profiles wait in its persistent session. Duplicates (at-least-once)
count once: partials hold profiles by host.

Needs the inferwatch package (for plugins.drift) and paho-mqtt, which it depends on.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.broker import Broker
from agent.config import InputFile, resolve_secret
from plugins.drift.fleet import (
    WindowProfile,
    decode,
    drift,
    encode,
    invalid,
    merge,
    quality,
    reference_digest,
)
from plugins.drift.profile import Profile

log = logging.getLogger("inferwatch.fleet")
KEEP_WINDOWS = 24  # per stream: enough for a day of hourly windows


class Fleet:
    """Every host's profile of the kept windows, merged on demand; thread-safe (paho calls
    back on its thread). One retained partial per (window key, host): writing one never
    replaces another host's, so no read-modify-write can lose what another message added."""

    def __init__(self, references: list[Profile]) -> None:
        self.references = {reference_digest(r): r for r in references}
        self.partials: dict[str, dict[str, WindowProfile]] = {}  # key digest -> host -> profile
        self.streams: dict[tuple[str, str, str], dict[str, float]] = {}  # -> key -> window end
        self.received = 0
        self.rejected: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def accept(self, host: str, payload: bytes) -> tuple[str, bytes] | None:
        """A profile an agent published on its own topic: (the partial's topic below
        --partials, its payload), or None when refused (counted by reason)."""
        profile = self._checked(host, payload, "malformed")
        if profile is None:
            return None
        key = key_digest(profile)
        with self.lock:
            self.received += 1
            self._keep(key, host, profile)
        return f"{key}/{host}", encode(profile)

    def partial(self, key: str, host: str, payload: bytes) -> None:
        """A retained partial (anyone's, ours included); empty means deleted."""
        if not payload:
            with self.lock:
                self.partials.get(key, {}).pop(host, None)
            return
        profile = self._checked(host, payload, "malformed_partial")
        if profile is not None and key_digest(profile) != key:
            profile = None
            with self.lock:
                self.rejected["malformed_partial"] += 1
        if profile is not None:
            with self.lock:
                self._keep(key, host, profile)

    def _checked(self, host: str, payload: bytes, malformed: str) -> WindowProfile | None:
        try:
            profile = decode(payload)
        except ValueError:
            reason: str | None = malformed
        else:
            reference = self.references.get(profile.reference)
            reason = ("unknown_reference" if reference is None
                      else "wrong_host" if profile.hosts != [host]  # the topic is the identity
                      else invalid(profile, reference))
            if reason is None:
                return profile
        with self.lock:
            self.rejected[str(reason)] += 1
        return None

    def _keep(self, key: str, host: str, profile: WindowProfile) -> None:
        """Memory bound: the newest KEEP_WINDOWS windows of each stream (the broker drops
        older retained partials itself, by their message expiry); caller holds the lock."""
        if key not in self.partials:
            ends = self.streams.setdefault(profile.key[:3], {})
            ends[key] = profile.end
            while len(ends) > KEEP_WINDOWS:
                oldest = min(ends, key=ends.__getitem__)
                del ends[oldest]
                self.partials.pop(oldest, None)
            if key not in ends:  # older than every kept window
                return
            self.partials[key] = {}
        self.partials[key][host] = profile

    def merged(self) -> Iterator[tuple[WindowProfile, Profile]]:
        """The latest window of each stream, every host's profile once."""
        with self.lock:
            latest = [list(self.partials.get(max(ends, key=ends.__getitem__), {}).values())
                      for ends in self.streams.values() if ends]
        for profiles in latest:
            if profiles:
                window = merge(profiles)
                yield window, self.references[window.reference]


def key_digest(profile: WindowProfile) -> str:
    return hashlib.sha256(msgspec.json.encode(profile.key)).hexdigest()[:24]


class FleetMetrics(Collector):
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["model", "model_version", "window"]
        families = {name: GaugeMetricFamily(f"inferwatch_fleet_{name}", help_, labels=labels)
                    for name, help_ in (
                        ("accuracy", "Accuracy of the fleet's labelled predictions."),
                        ("precision", "Precision of the positive class, fleet-wide."),
                        ("recall", "Recall of the positive class, fleet-wide."),
                        ("f1", "F1 of the positive class, fleet-wide."),
                        ("hosts", "Hosts whose profile is in the latest window."),
                        ("window_samples", "Predictions in the latest window, fleet-wide."),
                        ("window_end_timestamp_seconds", "End of the latest window."))}
        psi = GaugeMetricFamily("inferwatch_fleet_drift_psi", "PSI against the reference.",
                                labels=[*labels, "feature"])
        tvd = GaugeMetricFamily("inferwatch_fleet_drift_tvd",
                                "Total variation distance against the reference.",
                                labels=[*labels, "feature"])
        for window, reference in self.fleet.merged():
            key = [window.model, window.model_version, window.window]
            values = quality(window) | {"hosts": len(window.hosts), "window_samples": window.n,
                                        "window_end_timestamp_seconds": window.end}
            for name, value in values.items():
                if name in families:
                    families[name].add_metric(key, value)
            for feature, found in drift(window, reference).items():
                psi.add_metric([*key, feature], found["psi"])
                tvd.add_metric([*key, feature], found["tvd"])
        yield from families.values()
        yield psi
        yield tvd
        with self.fleet.lock:  # paho's thread may add a reason while this scrape reads them
            received, refused = self.fleet.received, dict(self.fleet.rejected)
        yield CounterMetricFamily("inferwatch_fleet_profiles_received",
                                  "Window profiles accepted.", value=received)
        rejected = CounterMetricFamily("inferwatch_fleet_profiles_rejected",
                                       "Window profiles refused, by reason.", labels=["reason"])
        for reason, count in refused.items():
            rejected.add_metric([reason], count)
        yield rejected


def broker_settings(args: argparse.Namespace) -> Broker:
    """The agent's broker-settings type (agent.broker), so TLS is set up as the agent's own
    clients set it up. The password file is read only with a username, as before."""
    password = (resolve_secret({"file": str(args.password_file)}, Path.cwd())
                if args.password_file and args.username else None)
    return Broker(host=args.broker, port=args.port, client_id=args.name,
                  username=args.username, password=password, tls=args.ca_file is not None,
                  ca_file=InputFile(args.ca_file) if args.ca_file else None)


class Consumer:
    def __init__(self, args: argparse.Namespace, fleet: Fleet) -> None:
        self.args, self.fleet = args, fleet
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.name,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        self.waiting: dict[int, tuple[int, int]] = {}  # our publish mid -> incoming (mid, qos)
        self.lock = threading.Lock()
        self.client.on_connect = self._connected
        self.client.on_message = self._message
        self.client.on_publish = self._published

    def run(self) -> None:
        broker = broker_settings(self.args)
        if broker.username:
            self.client.username_pw_set(broker.username, broker.revealed_password())
        if (tls := broker.tls_context()) is not None:
            self.client.tls_set_context(tls)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.args.session_expiry
        self.client.connect(broker.host, broker.broker_port, clean_start=False,
                            properties=props)
        self.client.loop_forever(retry_first_connection=True)

    def _connected(self, client: mqtt.Client, _u: object, _f: object, reason: object,
                   _p: object) -> None:
        log.info("connected: %s", reason)
        client.subscribe([(f"$share/{self.args.group}/{self.args.prefix}/+/profiles/#", 1),
                          (f"{self.args.partials}/#", 1)])

    def _message(self, client: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        """Never raises: paho would stop its loop. A message that fails unexpectedly stays
        unacknowledged, so the broker hands it over again after a reconnect."""
        try:
            self._handle(client, message)
        except Exception:
            log.exception("a message could not be handled: %s", message.topic)
            with self.fleet.lock:
                self.fleet.rejected["error"] += 1

    def _handle(self, client: mqtt.Client, message: mqtt.MQTTMessage) -> None:
        if message.topic.startswith(self.args.partials + "/"):
            key, _, host = message.topic[len(self.args.partials) + 1:].partition("/")
            self.fleet.partial(key, host, bytes(message.payload))
            client.ack(message.mid, message.qos)
            return
        host = message.topic[len(self.args.prefix) + 1:].partition("/")[0]
        accepted = self.fleet.accept(host, bytes(message.payload))
        if accepted is None:  # refused for good: acknowledge, it will not get better
            client.ack(message.mid, message.qos)
            return
        topic, payload = accepted
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.MessageExpiryInterval = self.args.retain_seconds
        with self.lock:
            info = client.publish(f"{self.args.partials}/{topic}", payload,
                                  qos=1, retain=True, properties=props)
            self.waiting[info.mid] = (message.mid, message.qos)

    def _published(self, client: mqtt.Client, _u: object, mid: int, reason: object,
                   _p: object) -> None:
        with self.lock:
            incoming = self.waiting.pop(mid, None)
        if incoming is None:
            return
        if getattr(reason, "is_failure", False):  # an ACL or a quota: the partial is not there
            with self.fleet.lock:
                self.fleet.rejected["partial_refused"] += 1
            log.warning("the broker refused a partial (%s); the profile stays unacknowledged "
                        "and comes again after a reconnect", reason)
            return
        client.ack(*incoming)  # the partial holding it is in the broker: now it is safe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--name", required=True, help="this instance's client id, stable")
    parser.add_argument("--username")
    parser.add_argument("--password-file", type=Path, help="the password (not on the command line)")
    parser.add_argument("--ca-file", type=Path, help="TLS to the broker, verified with this CA")
    parser.add_argument("--group", default="inferwatch-fleet", help="shared subscription group")
    parser.add_argument("--prefix", default="inferwatch/v1", help="the agents' topic prefix")
    parser.add_argument("--partials", default="inferwatch/fleet/v1/partials")
    parser.add_argument("--reference", action="append", type=Path, required=True,
                        help="a reference profile the agents bin on (repeatable)")
    parser.add_argument("--listen", default="127.0.0.1:9881", help="/metrics address")
    parser.add_argument("--session-expiry", type=int, default=86400)
    parser.add_argument("--retain-seconds", type=int, default=KEEP_WINDOWS * 3600)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    fleet = Fleet([Profile.load(path) for path in args.reference])
    registry = CollectorRegistry()
    registry.register(FleetMetrics(fleet))
    host, _, port = args.listen.rpartition(":")
    start_http_server(int(port), addr=host, registry=registry)
    Consumer(args, fleet).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
