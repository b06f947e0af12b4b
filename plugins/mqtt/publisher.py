"""The broker connection (birth and last will, quiet reconnects) and the sending of rows.

The core's durable delivery (agent/delivery.py) reads the MQTT sink's outbox and hands each
window of rows to `deliver()`; the rows it reports acknowledged are deleted in one
transaction. aiomqtt owns the connection (TLS, auth, will, keepalive, disconnect detection).
Its publish() costs ~100 µs a message (an Event and a wait_for task each), so `deliver()`
feeds the wrapped paho client's non-blocking publish directly, keeping `inflight` messages in
flight (paho walks its whole queue on every PUBACK, so it is never handed more), refilling
once per burst of PUBACKs. A PUBACK (or PUBREC) with a reason code >= 0x80 is a refusal, not a
delivery: see refusals.py. On each connection the sink is woken, so delivery resumes at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiomqtt
import paho.mqtt.client as paho_client
import structlog

from agent.components import Acked, Service
from agent.errors import NotReadyError
from agent.supervisor import Backoff
from plugins.mqtt.config import MqttConfig
from plugins.mqtt.refusals import Refusals, Row
from plugins.mqtt.sink import retained

if TYPE_CHECKING:
    from plugins.mqtt.sink import MqttSink

log = structlog.get_logger("inferwatch")


class Publisher(Service):
    def __init__(self, config: MqttConfig, prefix: str, client_id: str) -> None:
        super().__init__("publisher")
        self.config, self.client_id = config, client_id
        self.sink: MqttSink | None = None  # set by the sink it sends for
        self.resent = 0
        self.prefix, self.status_topic = prefix, f"{prefix}/status"
        self.connected = False
        self.connects = 0
        self.errors: dict[str, int] = {}
        self._backoff = Backoff(1.0, 60.0)
        self._failing: str | None = None
        self._down_since: float | None = None
        self.refusals = Refusals()
        self._pending: dict[int, tuple[int, str]] = {}  # mid -> (outbox seq, topic)
        self._queue: collections.deque[Row] = collections.deque()
        self._acked = asyncio.Event()
        self._paho: Any = None
        self._refill_scheduled = False
        self._publish_rc: int | None = None
        self._max_packet: int | None = None  # the broker's Maximum Packet Size (MQTT 5 CONNACK)
        self._oversize_logged = False
        self._live: Any = None  # the paho client while connected
        self._fresh = False  # no window sent yet on this connection
        self._down = asyncio.Event()
        self._failure: BaseException | None = None

    async def run(self) -> None:
        while True:
            try:
                async with self._client() as client:
                    await self._online(client)
                    try:
                        await self._connected(client)
                    except asyncio.CancelledError:
                        self._live = None
                        await self._offline(client)
                        raise
            except aiomqtt.MqttError as exc:
                self._lost(exc)
            except (OSError, ssl.SSLError) as exc:
                self._lost(exc)
            self.connected, self._live = False, None
            await asyncio.sleep(self._backoff.next())

    async def _connected(self, client: aiomqtt.Client) -> None:
        """Hand the connection to the sink's delivery, and wake it; return (raise) once lost."""
        self._hook(client._client)
        self._down.clear()
        self._failure = None
        self._live, self._fresh = client._client, True
        if self.sink is not None:
            self.sink.wake()
        await self._down.wait()
        self._live = None
        raise self._failure or _client_error(paho_client.MQTT_ERR_CONN_LOST)

    def _fail(self, exc: BaseException) -> None:
        self._failure, self._live = exc, None
        self._down.set()

    def _client(self) -> aiomqtt.Client:
        client = self._new_client()
        paho = client._client
        chained: Any = paho.on_connect  # aiomqtt's own: it completes the connect

        def on_connect(*args: Any) -> None:  # (client, userdata, flags, reason, properties)
            found = getattr(args[4], "MaximumPacketSize", None) if len(args) > 4 else None
            self._max_packet = found if isinstance(found, int) and found > 0 else None
            if chained is not None:
                chained(*args)

        paho.on_connect = on_connect
        return client

    def _new_client(self) -> aiomqtt.Client:
        c, broker = self.config, self.config.broker
        return aiomqtt.Client(
            broker.host, broker.broker_port, identifier=self.client_id,
            username=broker.username, password=broker.revealed_password(),
            protocol=(aiomqtt.ProtocolVersion.V5 if c.protocol == "5"
                      else aiomqtt.ProtocolVersion.V311),
            will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
            keepalive=int(c.keepalive), timeout=float(c.ack_timeout),
            max_inflight_messages=c.inflight, tls_context=self._tls(),
        )

    def _tls(self) -> ssl.SSLContext | None:
        return self.config.broker.tls_context()

    async def _online(self, client: aiomqtt.Client) -> None:
        await client.publish(self.status_topic, b"online", qos=1, retain=True)
        self.connected, self.connects = True, self.connects + 1
        self._backoff.reset()
        outage = None if self._down_since is None else round(time.time() - self._down_since, 1)
        log.info("connected to MQTT broker", broker=self.config.broker.address,
                 outage_seconds=outage, backlog=self._backlog())
        self._failing = self._down_since = None

    async def _offline(self, client: aiomqtt.Client) -> None:
        """Clean shutdown: say so on the status topic (the will covers crashes)."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(2):
                await client.publish(self.status_topic, b"offline", qos=1, retain=True)

    def _lost(self, exc: BaseException) -> None:
        reason = _reason(exc)
        self.errors[reason] = self.errors.get(reason, 0) + 1
        if self._down_since is None:
            self._down_since = time.time()
        if reason != self._failing:  # one line per kind of trouble, not one per retry
            log.warning("MQTT broker unreachable; events wait in the outbox", reason=reason,
                        error=str(exc) or type(exc).__name__,
                        broker=self.config.broker.address)
            self._failing = reason

    def _backlog(self) -> int:
        delivery = None if self.sink is None else self.sink.delivery
        return 0 if delivery is None else delivery.outbox.depth

    async def deliver(self, rows: Sequence[Row], batch: int) -> Acked:
        """Send a batch of outbox rows: which the broker acknowledged, which are too large for
        it (dropped), and when the refused ones are due again. A connection lost on the way
        raises: the core offers everything unacknowledged again once reconnected."""
        paho = self._live
        if paho is None:
            raise NotReadyError("not connected to the MQTT broker")
        # Once due, the held topics are released: the core reads from the start again then.
        self.refusals.retry_due(asyncio.get_running_loop().time())
        sent, big = self._oversized(self.refusals.sendable(list(rows)))
        if self._fresh and self.connects > 1:
            self.resent += len(sent)
        self._fresh = False
        try:
            await self._send(paho, sent)
        except aiomqtt.MqttError as exc:
            self._fail(exc)  # run() logs it, counts it and reconnects
            raise NotReadyError(str(exc)) from exc
        accepted = self.refusals.accepted(sent)
        if len(rows) < batch:  # the outbox is read to its end
            self.refusals.caught_up()
        return Acked(accepted, {"too_large": big} if big else None, self.refusals.retry_at)

    def _oversized(self, rows: list[Row]) -> tuple[list[Row], list[int]]:
        """Drop, and count, what exceeds the Maximum Packet Size the broker announced: it
        would close the connection on each try (mosquitto's `max_packet_size`), and the row
        would come first again after every reconnect, holding back everything behind it."""
        limit = self._max_packet
        if limit is None:
            return rows, []
        big = {seq for seq, topic, payload in rows
               if packet_size(topic, payload, self.config.qos) > limit}
        if not big:
            return rows, []
        if not self._oversize_logged:
            self._oversize_logged = True
            log.warning("events larger than the broker's maximum packet size dropped; lower "
                        "max_payload_bytes or raise the broker's limit",
                        broker_max_packet_size=limit, dropped=len(big))
        return [row for row in rows if row[0] not in big], sorted(big)

    def _hook(self, paho: Any) -> None:
        """See every acknowledgement with its reason code, and a lost connection at once (not
        after `ack_timeout`); aiomqtt's own callbacks still run."""
        chained, disconnected = paho.on_publish, paho.on_disconnect

        def on_publish(*args: Any) -> None:
            if chained is not None:
                chained(*args)  # aiomqtt's own bookkeeping (birth/offline publishes)
            self._ack(args[2], int(getattr(args[3], "value", 0)))  # 3.1.1: always 0

        def on_disconnect(*args: Any) -> None:
            if disconnected is not None:
                disconnected(*args)
            self._publish_rc = paho_client.MQTT_ERR_CONN_LOST
            self._acked.set()
            self._down.set()

        paho.on_publish, paho.on_disconnect = on_publish, on_disconnect
        self._hook_pubrec(paho)

    def _hook_pubrec(self, paho: Any) -> None:
        """paho 2.x ignores a PUBREC's reason code and completes the QoS 2 flow regardless,
        so a refused QoS 2 publish would look delivered: read the code before paho does."""
        pubrec = getattr(paho, "_handle_pubrec", None)
        if pubrec is None:  # a paho that changed its internals; QoS 1 is unaffected
            return

        def handle_pubrec() -> Any:
            packet = paho._in_packet["packet"]
            if len(packet) > 2 and packet[2] >= 0x80:
                self._ack(struct.unpack("!H", packet[:2])[0], packet[2])
            return pubrec()

        paho._handle_pubrec = handle_pubrec

    async def _send(self, paho: Any, rows: list[Row]) -> None:
        """Publish a window, `inflight` at a time; return once every message is acknowledged."""
        if not rows:
            return
        self._begin(paho, rows)
        try:
            async with asyncio.timeout(float(self.config.ack_timeout)):
                await self._acked.wait()
        except TimeoutError:
            raise aiomqtt.MqttError("no acknowledgement from the broker in time") from None
        if self._publish_rc is not None:
            raise _client_error(self._publish_rc)

    def _begin(self, paho: Any, rows: list[Row]) -> None:
        self._paho, self._publish_rc = paho, None
        self._pending.clear()
        self._queue = collections.deque(rows)
        self._acked.clear()
        self._fill()

    def _fill(self) -> None:
        self._refill_scheduled = False
        while self._queue and len(self._pending) < self.config.inflight:
            seq, topic, payload = self._queue.popleft()
            info = self._paho.publish(topic, payload, qos=self.config.qos,
                                      retain=retained(self.prefix, topic))
            if info.rc != 0:
                self._publish_rc = info.rc
                break
            if not info.is_published():
                self._pending[info.mid] = (seq, topic)
        if self._publish_rc is not None or not (self._pending or self._queue):
            self._acked.set()

    def _ack(self, mid: int, code: int = 0) -> None:
        """paho's on_publish (or a refusing PUBREC), on the loop thread: note a refusal, and
        top up once per burst of acknowledgements."""
        sent = self._pending.pop(mid, None)
        if sent is None:
            return
        loop = asyncio.get_running_loop()
        if code >= 0x80:
            self.refusals.refuse(*sent, code, loop.time())
        if not self._refill_scheduled:
            self._refill_scheduled = True
            loop.call_soon(self._fill)


def packet_size(topic: str, payload: bytes, qos: int) -> int:
    """The bytes of an MQTT 5 PUBLISH without properties, as the broker counts them."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + 1 + len(payload)
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else (
        3 if remaining < 2097152 else 4)
    return 1 + length_bytes + remaining


def _client_error(rc: int) -> aiomqtt.MqttError:
    """paho's answer as an error; a lost connection (rc 7) counts as `unreachable`, whether
    it is noticed while idle or by a publish."""
    return aiomqtt.MqttError(f"publish refused by the client (rc {rc}: "
                             f"{paho_client.error_string(rc)})")


def _reason(exc: BaseException) -> str:
    text = str(exc).lower()
    if isinstance(exc, ssl.SSLError) or "certificate" in text or "ssl" in text:
        return "tls"
    if "not authori" in text or "bad user" in text or "password" in text:
        return "auth"
    if "refused" in text or "unreachable" in text or "timed out" in text:
        return "unreachable"
    return "connection"
