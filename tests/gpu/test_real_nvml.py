"""Real NVML on a real GPU. Skipped where no NVIDIA driver answers (CI, most laptops)."""

from __future__ import annotations

import asyncio
import time

import pynvml

from agent.metrics import Accumulator
from plugins.nvidia import metrics as m
from plugins.nvidia.collector import GpuCollector, HealthCollector
from plugins.nvidia.config import NvidiaConfig
from plugins.nvidia.events import XidService
from plugins.nvidia.state import NvidiaState
from tests.gpu.driver import REAL_GPU

pytestmark = REAL_GPU


def test_real_collection_is_plausible() -> None:
    state, events = NvidiaState(), []
    collector = GpuCollector(NvidiaConfig(), pynvml, state, lambda *e: events.append(e))
    acc = Accumulator()
    collector.collect(acc)
    count = pynvml.nvmlDeviceGetCount()
    assert len(acc.series[m.INFO]) == count
    for labels, total in acc.series[m.MEMORY_TOTAL].items():
        assert total > 1 << 30, labels
    for labels, celsius in acc.series[m.TEMPERATURE].items():
        assert 0 < celsius < 120, labels
    for labels, watts in acc.series.get(m.POWER, {}).items():
        assert 0 < watts < 2000, labels
    assert set(acc.series[m.THROTTLE]) , "clock event reasons are decoded on every GPU"
    health = Accumulator()
    HealthCollector(state, 5).publish(health)
    assert health.series[m.NVML_UP][()] == 1
    assert all(v == 1 for v in health.series[m.GPU_UP].values())
    began = time.thread_time()
    collector.collect(Accumulator())
    per_gpu_ms = (time.thread_time() - began) * 1000 / count
    print(f"real NVML: {per_gpu_ms:.2f} ms CPU per GPU per collection")


async def test_xid_subscription_waits_quietly() -> None:
    state = NvidiaState()
    service = XidService(pynvml, state, lambda *e: None, 0.2)
    await service.start()
    task = asyncio.create_task(service.run())
    await asyncio.sleep(1.0)  # a real wait: no XID is expected on a healthy GPU
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await service.stop()
