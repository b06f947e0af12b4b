"""Events per second at QoS 1 through the outbox, beside a bare paho loop, same broker, same run.

    .venv/bin/python bench/mqtt.py                 # 100k events each way, outage drain, 1M RSS
    .venv/bin/python bench/mqtt.py --events 20000 --backlog 0

The agent path is the real one, in-process: bus -> MQTT sink (JSON, SQLite commit per batch
into the core's durable outbox) -> the core's delivery loop -> publisher (window of QoS 1
publishes, PUBACKs, one DELETE per window) under the supervisor.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.broker import Broker as BrokerSettings
from agent.bus import EventBus
from agent.config import Duration
from agent.delivery import DurableDelivery, durable_delivery
from agent.metrics import PluginMetrics
from agent.model import Event
from agent.selfmetrics import SelfMetrics
from agent.supervisor import Supervised
from plugins.mqtt.config import MqttConfig
from plugins.mqtt.publisher import Publisher
from plugins.mqtt.sink import MqttSink

PAYLOAD = b'{"schema":1,"kind":"bench","host":"bench-host","data":{"n":0}}'.ljust(300, b" ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             "max_inflight_messages 0\nmax_queued_messages 0\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while socket.socket().connect_ex(("127.0.0.1", self.port)) != 0:
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait()


def bare_paho(port: int, count: int, inflight: int, protocol: str) -> float:
    """The ceiling: paho publishing from memory in its own loop, no outbox at all."""
    acked = [0]

    def on_publish(*_: Any) -> None:
        acked[0] += 1

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-paho-{inflight}",
                         protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311)
    client.max_inflight_messages_set(inflight)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    began, sent = time.perf_counter(), 0
    while acked[0] < count:
        while sent < count and sent - acked[0] < inflight:
            client.publish("bench/paho", PAYLOAD, qos=1)
            sent += 1
        client.loop(0.01)
    elapsed = time.perf_counter() - began
    client.disconnect()
    return count / elapsed


class AgentPath:
    def __init__(self, folder: Path, port: int, inflight: int = 100,
                 protocol: str = "3.1.1") -> None:
        self.config = MqttConfig(enabled=True, broker=BrokerSettings(port=port),
                                 interval=Duration(10),
                                 outbox_sync="full", inflight=inflight,
                                 outbox_max_bytes=4 << 30, outbox_max_age=Duration(86400.0),
                                 protocol=protocol)  # type: ignore[arg-type]
        self.folder = folder
        self.delivery: DurableDelivery

    async def __aenter__(self) -> AgentPath:
        metrics = SelfMetrics()
        self.bus = EventBus(200_000, metrics)
        self.bus_task = asyncio.create_task(self.bus.run())
        prefix = "inferwatch/v1/bench"
        publisher = Publisher(self.config, prefix, "bench-agent")
        sink = MqttSink(publisher, prefix, 1 << 20)
        store = PluginMetrics("mqtt", 100)
        found = durable_delivery("mqtt", sink, self.config, self.folder, store)
        assert found is not None  # the MQTT sink is always durable
        self.delivery = found
        self.sups = [
            Supervised("mqtt", sink, self.config, metrics=metrics, store=store, bus=self.bus,
                       host_id="bench", delivery=found),
            Supervised("mqtt", publisher, self.config, metrics=metrics, store=store,
                       bus=self.bus, host_id="bench"),
        ]
        for sup in self.sups:
            sup.launch()
            await sup.started.wait()
        return self

    async def __aexit__(self, *_: object) -> None:
        for sup in reversed(self.sups):
            await sup.stop(5)
        self.bus_task.cancel()

    async def emit(self, count: int) -> None:
        """Emit as fast as the outbox takes them: the bus drops rather than block, by design."""
        outbox = self.delivery.outbox
        for n in range(count):
            self.bus.emit(Event(kind="bench", source="bench", host="bench-host", data={"n": n}))
            if n % 1000 == 999:
                await asyncio.sleep(0)
                while n - (outbox.depth + self.delivery.delivered) > 20_000:  # noqa: ASYNC110 - counters from a thread
                    await asyncio.sleep(0.001)

    async def until(self, predicate: Any, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("benchmark condition not reached")
            await asyncio.sleep(0.005)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def agent_rate(folder: Path, port: int, count: int, inflight: int, protocol: str
                     ) -> float:
    async with AgentPath(folder, port, inflight, protocol) as agent:
        began = time.perf_counter()
        await agent.emit(count)
        await agent.until(lambda: agent.delivery.delivered >= count)
        return count / (time.perf_counter() - began)


async def outage(folder: Path, broker: Broker, count: int) -> dict[str, float]:
    broker.stop()
    async with AgentPath(folder, broker.port) as agent:
        rss_before = rss_mib()
        began = time.perf_counter()
        await agent.emit(count)
        await agent.until(lambda: agent.delivery.outbox.depth >= count)
        queued = time.perf_counter() - began
        rss_full = rss_mib()
        broker.start()
        began = time.perf_counter()
        await agent.until(lambda: agent.delivery.outbox.depth == 0)
        drain = time.perf_counter() - began
    return {"events": count, "queue_seconds": round(queued, 1), "drain_seconds": round(drain, 1),
            "drain_per_second": round(count / drain), "rss_mib_before": round(rss_before, 1),
            "rss_mib_with_backlog": round(rss_full, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--outage", type=int, default=100_000)
    parser.add_argument("--backlog", type=int, default=1_000_000, help="RSS check; 0 skips")
    parser.add_argument("--protocol", choices=["3.1.1", "5"], default="3.1.1",
                        help="the same on both sides (paho decodes MQTT 5 PUBACK properties)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = Broker(folder)
        broker.start()
        try:
            print(f"MQTT {args.protocol}, {args.events} messages of ~300 bytes, QoS 1")
            bare = {n: bare_paho(broker.port, args.events, n, args.protocol)
                    for n in (20, 100, 1000)}
            for n, rate in bare.items():
                print(f"bare paho QoS 1, {n:4} in flight:        {rate:8.0f} msg/s")
            ceiling = max(bare.values())
            for n in (20, 100, 1000):
                rate = asyncio.run(agent_rate(folder / f"a{n}", broker.port, args.events, n,
                                              args.protocol))
                print(f"agent via outbox, QoS 1, {n:4} in flight: {rate:8.0f} msg/s "
                      f"({100 * rate / ceiling:.0f}% of the best bare paho)")
            if args.outage:
                print("outage drain:", asyncio.run(outage(folder / "b", broker, args.outage)))
            if args.backlog:
                print("backlog RSS:", asyncio.run(outage(folder / "c", broker, args.backlog)))
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
