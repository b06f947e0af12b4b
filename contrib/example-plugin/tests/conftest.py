"""Run from a checkout without installing the plugin: its `src` folder goes on the path.

(Installed with `pip install -e .`, this changes nothing.)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
