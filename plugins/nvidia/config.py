"""`[plugins.nvidia]`: off by default; the fake backend exists for tests and demos."""

from __future__ import annotations

from typing import Literal

from agent.config import Duration, FieldError, InputFile, PluginConfig


class NvidiaConfig(PluginConfig):
    enabled: bool = False
    backend: Literal["nvml", "fake"] = "nvml"
    fake_scenario: InputFile | None = None  # JSON file driving the fake backend
    processes: bool = True  # per-process GPU memory (pid and name labels)
    nvlink: bool = True
    xid_events: bool = True
    event_wait: Duration = Duration(1.0)  # one NVML event wait; bounds how fast XID stops

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backend == "fake" and not self.fake_scenario:
            raise FieldError("fake_scenario", "the fake backend needs a scenario file")
