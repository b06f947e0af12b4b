"""Per-GPU telemetry from NVML, read in the collector's worker thread.

NVML is called from one thread with the collection under the plugin's timeout; the call in
flight is recorded, so a hang is blamed on one GPU and one function. A field NVML does not
support on a GPU is skipped, and not asked for again. NVML is re-initialised after a driver
reload or library/driver mismatch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pynvml
import structlog

from agent.components import Collector
from agent.metrics import Accumulator
from agent.model import Severity
from plugins.nvidia import metrics as m
from plugins.nvidia.config import NvidiaConfig
from plugins.nvidia.readers import GpuReader
from plugins.nvidia.state import GpuId, NvidiaState

log = structlog.get_logger("inferwatch")

# Errors after which NVML must be shut down and initialised again.
RESET = {pynvml.NVML_ERROR_UNINITIALIZED, pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
         pynvml.NVML_ERROR_DRIVER_NOT_LOADED}
# Errors of nvmlInit that retrying every interval may cure (a driver installed or loaded
# later, device access granted): said once, then retried quietly, by the collector and by
# the XID service alike.
UNAVAILABLE = {
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: "no NVIDIA driver on this host; GPU metrics off "
                                         "until one appears",
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "no NVIDIA driver on this host; GPU metrics off "
                                         "until one appears",
    pynvml.NVML_ERROR_NO_PERMISSION: "no permission to open the NVIDIA devices (under the "
                                     "hardened unit install systemd/inferwatch.service.d/"
                                     "nvidia.conf); GPU metrics off until granted",
}
ABSENT = set(UNAVAILABLE)

Emit = Callable[[str, Severity, dict[str, Any], GpuId | None], None]


class GpuCollector(Collector):
    def __init__(self, config: NvidiaConfig, nvml: Any, state: NvidiaState, emit: Emit) -> None:
        super().__init__("gpus")
        self.config, self.nvml, self.state, self.emit = config, nvml, state, emit
        self._initialised = False
        self._absent_logged: int | None = None  # the unavailable cause last said
        self._readers: dict[str, GpuReader] = {}  # by UUID: keeps unsupported sets and history
        self._failing: dict[int, str] = {}  # GPU index -> the error last said for it

    def collect(self, out: Accumulator) -> None:
        if not self._initialised and not self._init():
            return
        try:
            self._collect(out)
        except pynvml.NVMLError as exc:
            if exc.value in RESET:
                self._reset(str(exc))
            raise

    async def stop(self) -> None:
        self.state.nvml_up = False

    def _init(self) -> bool:
        try:
            self.nvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self.state.nvml_up = False
            if exc.value not in ABSENT:
                raise
            if self._absent_logged != exc.value:  # once per cause, not every interval
                log.warning(UNAVAILABLE[exc.value], error=str(exc))
                self._absent_logged = exc.value
            return False
        self._initialised, self._absent_logged = True, None
        self.state.driver = _text(self.nvml.nvmlSystemGetDriverVersion())
        cuda = int(self.nvml.nvmlSystemGetCudaDriverVersion())
        self.state.cuda = f"{cuda // 1000}.{cuda % 1000 // 10}"
        log.info("NVML initialised", driver=self.state.driver, cuda=self.state.cuda)
        return True

    def _reset(self, why: str) -> None:
        log.warning("NVML needs re-initialising (driver reloaded?)", error=why)
        self.state.nvml_up = False
        self._initialised = False
        with contextlib.suppress(pynvml.NVMLError):
            self.nvml.nvmlShutdown()

    def _collect(self, out: Accumulator) -> None:
        """Each GPU on its own: an error on one is that GPU's, not the collection's."""
        try:
            count = self.nvml.nvmlDeviceGetCount()
            seen: dict[int, GpuId] = {}
            for index in range(count):
                if (gpu := self._gpu(index, out)) is not None:
                    seen[index] = gpu
                time.sleep(0)  # let the event loop have the GIL between GPUs
            self.state.enumerated(seen)
            self.state.nvml_up = True
        finally:
            self.state.done()  # whatever happened, no call is in flight any more

    def _gpu(self, index: int, out: Accumulator) -> GpuId | None:
        """Read one GPU into its own accumulator, merged into `out` only when whole."""
        known = self.state.gpus.get(index)
        mine = Accumulator()
        try:
            reader = self._reader(index)
            if reader is None:  # lost: still enumerated, reported down under its old identity
                return known
            known = reader.gpu
            self._read(reader, mine)
        except pynvml.NVMLError as exc:
            if exc.value in RESET:
                raise
            self._failed(index, known, exc)
            return known
        for metric, series in mine.series.items():
            out.series.setdefault(metric, {}).update(series)
        if self._failing.pop(index, None) is not None:
            log.info("GPU answers again", gpu=index)
        return known

    def _failed(self, index: int, gpu: GpuId | None, exc: pynvml.NVMLError) -> None:
        """Down, counted by error, and said once per GPU and error (not every interval)."""
        error = error_name(exc.value)
        with self.state.lock:
            self.state.up[index] = False
            if gpu is not None:
                self.state.errors[(gpu, error)] += 1
        if self._failing.get(index) != error:
            self._failing[index] = error
            log.warning("GPU read failed; its series are withdrawn until it answers",
                        gpu=index, function=self.state.in_call and self.state.in_call[1],
                        error=str(exc))

    def _reader(self, index: int) -> GpuReader | None:
        self.state.begin(index, "nvmlDeviceGetHandleByIndex")
        try:
            handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
            self.state.begin(index, "nvmlDeviceGetUUID")
            uuid = _text(self.nvml.nvmlDeviceGetUUID(handle))
            reader = self._readers.get(uuid)
            if reader is None or reader.gpu.index != index:
                self.state.begin(index, "nvmlDeviceGetName")
                gpu = GpuId(index, uuid, _text(self.nvml.nvmlDeviceGetName(handle)),
                            _bus_id(self.nvml, handle))
                reader = self._readers[uuid] = GpuReader(self.nvml, gpu, self.state, self.config)
            reader.handle = handle
        except pynvml.NVMLError as exc:
            if exc.value == pynvml.NVML_ERROR_GPU_IS_LOST:
                self._lost(index)
                return None
            raise
        return reader

    def _read(self, reader: GpuReader, out: Accumulator) -> None:
        try:
            for kind, severity, data in reader.read(out):
                self.emit(kind, severity, data, reader.gpu)
        except pynvml.NVMLError as exc:
            if exc.value != pynvml.NVML_ERROR_GPU_IS_LOST:
                raise
            self._lost(reader.gpu.index)
            return
        with self.state.lock:
            self.state.up[reader.gpu.index] = True
            self.state.last_success[reader.gpu.index] = time.time()

    def _lost(self, index: int) -> None:
        with self.state.lock:
            was_up = self.state.up.get(index, True)
            self.state.up[index] = False
        if was_up:
            gpu = self.state.gpus.get(index)
            log.error("GPU lost: it no longer answers NVML", gpu=index)
            self.emit("gpu.lost", Severity.CRITICAL,
                      {"gpu": index, "description": "GPU is lost (fallen off the bus or hung)"},
                      gpu)


class HealthCollector(Collector):
    """Publishes what NVML last told us, without calling it: this never hangs."""

    blocking = False

    def __init__(self, state: NvidiaState, timeout: float) -> None:
        super().__init__("health")
        self.state, self.timeout = state, timeout
        self._reported: tuple[int, str] | None = None

    async def collect(self, out: Accumulator) -> None:
        self.publish(out)

    def publish(self, out: Accumulator) -> None:
        state = self.state
        hung = state.hung(self.timeout)
        self._report(hung)
        out.add(m.NVML_UP, 1 if state.nvml_up and not hung else 0)
        if state.driver:
            out.add(m.DRIVER_INFO, 1, driver_version=state.driver, cuda_version=state.cuda)
        with state.lock:
            for index, gpu in state.gpus.items():
                stuck = hung is not None and hung[0] == index
                out.add(m.GPU_UP, 1 if state.up.get(index) and not stuck else 0, **gpu.labels)
                if index in state.last_success:
                    out.add(m.LAST_SUCCESS, state.last_success[index], **gpu.labels)
            for (gpu, code), count in state.xids.items():
                if gpu.index in state.gpus:
                    out.add(m.XID_ERRORS, count, **gpu.labels, xid=str(code))
            for (gpu, error), count in state.errors.items():
                if state.gpus.get(gpu.index) == gpu:
                    out.add(m.GPU_ERRORS, count, **gpu.labels, error=error)


    def _report(self, hung: tuple[int, str, float] | None) -> None:
        call = hung[:2] if hung else None
        if call and call != self._reported:
            log.error("NVML call has not returned; GPU marked down", gpu=call[0],
                      function=call[1], seconds=round(hung[2], 1) if hung else 0)
        elif self._reported and not call:
            log.info("NVML answers again", gpu=self._reported[0])
        self._reported = call


ERROR_NAMES = {getattr(pynvml, name): name.removeprefix("NVML_ERROR_").lower()
               for name in dir(pynvml)
               if name.startswith("NVML_ERROR_") and isinstance(getattr(pynvml, name), int)}


def error_name(code: int) -> str:
    """NVML's name for an error code (a fixed set: bounded as a label value)."""
    return ERROR_NAMES.get(code, "other")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bus_id(nvml: Any, handle: Any) -> str:
    try:
        return _text(nvml.nvmlDeviceGetPciInfo(handle).busId)
    except pynvml.NVMLError:
        return ""

