"""What the NVML collector learns, shared with the health collector and the XID service.

The health collector publishes from here without touching NVML, so `nvml_up`, per-GPU `up`
and the XID counters stay visible while an NVML call hangs.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GpuId:
    index: int
    uuid: str
    model: str
    pci_bus_id: str = ""

    @property
    def labels(self) -> dict[str, str]:
        return {"gpu": str(self.index), "uuid": self.uuid, "model": self.model}


@dataclass
class NvidiaState:
    nvml_up: bool = False
    driver: str = ""
    cuda: str = ""
    gpus: dict[int, GpuId] = field(default_factory=dict)
    up: dict[int, bool] = field(default_factory=dict)
    last_success: dict[int, float] = field(default_factory=dict)
    in_call: tuple[int, str] | None = None  # (gpu index, NVML function) while a call runs
    in_call_since: float = 0.0
    xids: Counter[tuple[GpuId, int]] = field(default_factory=Counter)
    errors: Counter[tuple[GpuId, str]] = field(default_factory=Counter)  # per GPU, NVML error
    lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, index: int, function: str) -> None:
        if self.in_call is None:
            self.in_call_since = time.monotonic()
        self.in_call = (index, function)

    def done(self) -> None:
        self.in_call = None

    def hung(self, timeout: float) -> tuple[int, str, float] | None:
        """The GPU and NVML function stuck for longer than `timeout`, if any."""
        call, since = self.in_call, self.in_call_since
        if call is None or time.monotonic() - since < timeout:
            return None
        return call[0], call[1], time.monotonic() - since

    def enumerated(self, gpus: dict[int, GpuId]) -> None:
        """A GPU that is no longer enumerated is forgotten: its series go with it."""
        with self.lock:
            self.gpus = gpus
            self.up = {i: up for i, up in self.up.items() if i in gpus}
            self.last_success = {i: t for i, t in self.last_success.items() if i in gpus}
