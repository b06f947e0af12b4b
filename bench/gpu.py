"""GPU collection cost: agent CPU per GPU per tick, and how long it ever blocks the event loop.

    .venv/bin/python bench/gpu.py                  # the fake backend: 1, 2 and 8 GPUs
    .venv/bin/python bench/gpu.py --backend nvml   # real NVML, on a GPU host

The collection runs under the real supervisor, in its worker thread, while a probe task
sleeps 1 ms at a time on the loop and records its worst overshoot.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bus import EventBus
from agent.config import Duration
from agent.metrics import Accumulator, PluginMetrics
from agent.selfmetrics import SelfMetrics
from agent.supervisor import Supervised
from plugins.nvidia.collector import GpuCollector
from plugins.nvidia.config import NvidiaConfig
from plugins.nvidia.state import NvidiaState


class CallTimer:
    """Wraps an NVML module: CPU and wall time per function, to find the costly calls."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self.spent: dict[str, list[float]] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._nvml, name)
        if not (callable(target) and name.startswith("nvml")):
            return target

        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return target(*args, **kwargs)
            finally:
                row = self.spent.setdefault(name, [0.0, 0.0, 0])
                row[0] += time.thread_time() - cpu
                row[1] += time.perf_counter() - wall
                row[2] += 1

        return timed

    def report(self, top: int = 15) -> None:
        ranked = sorted(self.spent.items(), key=lambda kv: -kv[1][0])[:top]
        for name, (cpu, wall, calls) in ranked:
            print(f"  {name:<48} calls {calls:>6}  cpu {cpu * 1000 / calls:8.3f} ms/call  "
                  f"wall {wall * 1000 / calls:8.3f} ms/call")


class Timed(GpuCollector):
    """Records the worker thread's CPU time for each collection."""

    cpu: list[float]

    def collect(self, out: Accumulator) -> None:
        began = time.thread_time()
        super().collect(out)
        self.cpu.append(time.thread_time() - began)


async def measure(nvml: Any, seconds: float, interval: float) -> dict[str, float]:
    config = NvidiaConfig(interval=Duration(interval), timeout=Duration(interval))
    collector = Timed(config, nvml, NvidiaState(), lambda *e: None)
    collector.cpu = []
    metrics = SelfMetrics()
    sup = Supervised("nvidia", collector, config, metrics=metrics,
                     store=PluginMetrics("nvidia", 100_000), bus=EventBus(100, metrics),
                     host_id="bench")
    loop = asyncio.get_running_loop()
    sup.launch()
    gc.freeze()  # as agent/runtime.py does once started: full collections skip start-up objects
    worst, end = 0.0, loop.time() + seconds
    while loop.time() < end:
        began = loop.time()
        await asyncio.sleep(0.001)
        worst = max(worst, loop.time() - began - 0.001)
    await sup.stop(5)
    gpus = nvml.nvmlDeviceGetCount()
    steady = collector.cpu[1:] or collector.cpu  # the first collection probes fields once
    return {"gpus": gpus, "collections": len(collector.cpu),
            "cpu_ms_per_gpu_median": round(statistics.median(steady) * 1000 / gpus, 3),
            "cpu_ms_per_gpu_max": round(max(steady) * 1000 / gpus, 3),
            "loop_blocked_ms_max": round(worst * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["fake", "nvml"], default="fake")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--calls", action="store_true",
                        help="also list the NVML calls that cost the most CPU")
    args = parser.parse_args()
    if args.backend == "nvml":
        import pynvml  # noqa: PLC0415

        backends: list[Any] = [pynvml]
    else:
        from plugins.nvidia.fake import FakeNvml, scenario  # noqa: PLC0415

        backends = [FakeNvml(scenario(n)) for n in (1, 2, 8)]
    for nvml in backends:
        timer = CallTimer(nvml) if args.calls else None
        row = asyncio.run(measure(timer or nvml, args.seconds, args.interval))
        print(args.backend, row)
        if timer is not None:
            timer.report()


if __name__ == "__main__":
    main()
