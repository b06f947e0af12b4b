"""The `mqtt` output: each line one message on the configured topic (QoS 1 or 2); lines
leave the outbox once the broker acknowledged every message of the read."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import aiomqtt

from agent.broker import tls_context
from plugins.logs.config import LogOutput
from plugins.logs.outputs.base import Chunk, LogOutbox, OutputDown, Sender


class MqttSender(Sender):
    def __init__(self, name: str, box: LogOutbox, config: LogOutput, topic: str, *,
                 client_id: str) -> None:
        super().__init__(name, box)
        self.config, self.topic, self.client_id = config, topic, client_id
        self._client: aiomqtt.Client | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    async def send(self, chunks: list[Chunk]) -> None:
        client = await self._connect()
        qos = self.config.qos
        try:
            await asyncio.gather(*(client.publish(self.topic, line, qos=qos)
                                   for chunk in chunks for line in chunk.lines))
        except (aiomqtt.MqttError, OSError) as exc:
            raise OutputDown("publish_error", str(exc)) from None

    async def _connect(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        c = self.config
        client = aiomqtt.Client(
            c.host, c.default_port, identifier=self.client_id, username=c.username,
            password=c.password.reveal() if c.password else None,
            timeout=float(c.timeout), max_queued_outgoing_messages=None,
            tls_context=tls_context(c) if c.tls else None)
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(client)
        except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
            raise OutputDown("connect_error", str(exc)) from None
        self._client, self._stack = client, stack
        return client

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
                await asyncio.wait_for(stack.aclose(), 5.0)
