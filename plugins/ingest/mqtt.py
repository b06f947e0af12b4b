"""Predictions and labels from edge devices, through an MQTT subscription."""

from __future__ import annotations

import asyncio
import ssl

import aiomqtt
import structlog

from agent.components import Service
from agent.supervisor import Backoff
from plugins.ingest.config import IngestMqtt
from plugins.ingest.slices import count_in_slices, decode_in_slices
from plugins.ingest.tally import Tally

log = structlog.get_logger("inferwatch")


class IngestSubscriber(Service):
    def __init__(self, config: IngestMqtt, tally: Tally, host_id: str) -> None:
        super().__init__("mqtt")
        self.config, self.tally = config, tally
        self.client_id = config.client_id or f"{host_id}-ingest"
        self.connected = False
        self.messages = 0
        self._backoff = Backoff()

    async def run(self) -> None:
        while True:
            try:
                async with self._client() as client:
                    for topic in self.config.topics:
                        await client.subscribe(topic, qos=self.config.qos)
                    self.connected = True
                    self._backoff.reset()
                    log.info("subscribed for ingestion", topics=self.config.topics)
                    async for message in client.messages:
                        await self._accept(message.payload)
            except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
                log.warning("MQTT ingestion disconnected", error=str(exc) or type(exc).__name__)
            self.connected = False
            await asyncio.sleep(self._backoff.next())

    def _client(self) -> aiomqtt.Client:
        c = self.config
        return aiomqtt.Client(
            c.host, c.broker_port, identifier=self.client_id, username=c.username,
            password=c.revealed_password(),
            protocol=aiomqtt.ProtocolVersion.V311, clean_session=False,
            tls_context=c.tls_context(),
        )

    async def _accept(self, payload: object) -> None:
        self.messages += 1
        if not isinstance(payload, bytes | bytearray):
            self.tally.rejected[("", "invalid_json")] += 1
            return
        self.tally.bytes += len(payload)
        if len(payload) > self.config.max_payload_bytes:
            self.tally.rejected[("", "too_large")] += 1
            return
        try:
            decoded = await decode_in_slices(bytes(payload))
        except ValueError:
            self.tally.rejected[("", "invalid_json")] += 1
            return
        await count_in_slices(self.tally, decoded)
