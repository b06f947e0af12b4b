"""Shell one-liners the docs give in prose, run as written."""

from __future__ import annotations

import re
import subprocess
import sys

import bcrypt

from agent.config import build_config
from tests.helpers import ROOT


def test_the_bcrypt_one_liner_makes_a_hash_the_exporter_accepts() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    (code,) = set(re.findall(r"python3 -c '([^']*bcrypt[^']*)'", text))
    done = subprocess.run([sys.executable, "-c", code], input="s3cret\n", text=True,
                          capture_output=True, timeout=60, check=True)
    hashed = done.stdout.strip().splitlines()[-1]
    assert bcrypt.checkpw(b"s3cret", hashed.encode())
    config = build_config({"prometheus": {"basic_auth_users": {"prometheus": hashed}}}, {})
    assert config.prometheus.basic_auth_users == {"prometheus": hashed}
