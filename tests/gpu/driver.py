"""Whether this machine has an NVIDIA driver NVML can open: the GPU tests' skip marker."""

from __future__ import annotations

import pynvml
import pytest


def _driver() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


REAL_GPU = [pytest.mark.gpu, pytest.mark.skipif(not _driver(), reason="no NVIDIA driver")]
