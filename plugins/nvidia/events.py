"""XID errors from an NVML event set, in a supervised service with its own NVML thread.

Each XID is an event (`gpu.xid`, every occurrence, so two identical errors in a row are two
events) and one more on `inferwatch_gpu_xid_errors_total{xid}`, a counter: DCGM-exporter's
last-value gauge cannot show a repeat.

On a host without a driver the service does not fail: the collector has already said so in
one line, and a failure here would add a warning and a backoff line on every restart. It
runs instead, retrying NVML quietly every `retry` seconds, and subscribes once a driver is
there.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pynvml
import structlog

from agent.components import Service
from agent.errors import NotReadyError
from agent.worker import Worker
from plugins.nvidia.collector import ABSENT, Emit
from plugins.nvidia.state import GpuId, NvidiaState
from plugins.nvidia.xid import describe

log = structlog.get_logger("inferwatch")


class XidService(Service):
    def __init__(self, nvml: Any, state: NvidiaState, emit: Emit, wait_seconds: float,
                 retry: float = 10.0) -> None:
        super().__init__("xid")
        self.nvml, self.state, self.emit = nvml, state, emit
        self.wait_ms = int(wait_seconds * 1000)
        self.retry = retry
        self._worker = Worker("nvidia.xid")
        self._set: Any = None
        self._initialised = False

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await self._worker.call(fn, *args)

    async def start(self) -> None:
        await self._open()

    async def _open(self) -> bool:
        """Initialise NVML and subscribe; False (quietly) while there is no driver."""
        if not self._initialised:
            try:
                await self._call(self.nvml.nvmlInit)
            except pynvml.NVMLError as exc:
                if exc.value in ABSENT:
                    return False
                raise NotReadyError(f"NVML not available for XID events: {exc}") from None
            self._initialised = True
        self._set = await self._call(self._subscribe)
        return True

    def _subscribe(self) -> Any:
        event_set = self.nvml.nvmlEventSetCreate()
        for index in range(self.nvml.nvmlDeviceGetCount()):
            handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
            try:
                self.nvml.nvmlDeviceRegisterEvents(
                    handle, pynvml.nvmlEventTypeXidCriticalError, event_set)
            except pynvml.NVMLError as exc:
                log.warning("no XID events from this GPU", gpu=index, error=str(exc))
        return event_set

    async def run(self) -> None:
        while self._set is None:  # no driver yet: retry on the collector's cadence
            if not await self._open():
                await asyncio.sleep(self.retry)
        while True:
            try:
                data = await self._call(self.nvml.nvmlEventSetWait_v2, self._set, self.wait_ms)
            except pynvml.NVMLError as exc:
                if exc.value == pynvml.NVML_ERROR_TIMEOUT:
                    continue
                raise
            await self._call(self._record, data)

    def _record(self, data: Any) -> None:
        index = int(self.nvml.nvmlDeviceGetIndex(data.device))
        gpu = self.state.gpus.get(index) or _identify(self.nvml, data.device, index)
        code = int(data.eventData)
        with self.state.lock:
            self.state.xids[(gpu, code)] += 1
        description, severity = describe(code)
        log.warning("GPU XID error", gpu=index, xid=code, description=description)
        self.emit("gpu.xid", severity, {"xid": code, "description": description}, gpu)

    async def stop(self) -> None:
        """Free the event set and release our NVML reference, in our own thread."""
        if self._set is not None:
            event_set, self._set = self._set, None
            with contextlib.suppress(pynvml.NVMLError):
                await self._call(self.nvml.nvmlEventSetFree, event_set)
        if self._initialised:
            self._initialised = False
            with contextlib.suppress(pynvml.NVMLError):
                await self._call(self.nvml.nvmlShutdown)
        self._worker.close()


def _identify(nvml: Any, handle: Any, index: int) -> GpuId:
    uuid = nvml.nvmlDeviceGetUUID(handle)
    name = nvml.nvmlDeviceGetName(handle)
    text = [v.decode() if isinstance(v, bytes) else str(v) for v in (uuid, name)]
    return GpuId(index, text[0], text[1])

