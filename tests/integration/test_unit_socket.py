"""The socket the shipped unit implies is the one the agent creates and the SDK finds.

Runs the real agent the way the unit would (its RuntimeDirectory=, Group=, UMask=, a
non-root uid) in a private mount namespace, then the SDK as a member of the clients' group
and as a stranger. Needs root and `unshare`/`setpriv` (util-linux); skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from agent.client import DEFAULT_SOCKET
from tests.helpers import ROOT, free_port
from tests.integration.unit_sandbox import CLIENTS_GID, unit_settings

UNIT = ROOT / "systemd" / "inferwatch.service"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare")
                       or not shutil.which("setpriv"), reason="needs root, unshare, setpriv"),
]


def test_the_unit_runtime_directory_is_where_the_sdk_looks_first() -> None:
    unit = unit_settings(UNIT)
    assert f"/run/{unit['RuntimeDirectory']}/ingest.sock" == DEFAULT_SOCKET
    assert unit["Group"] == "inferwatch-clients"
    assert int(unit["RuntimeDirectoryMode"], 8) & 0o050 == 0o050, "the group must pass through"
    assert int(unit["StateDirectoryMode"], 8) & 0o077 == 0, "the state is the agent's alone"


@pytest.mark.timeout(120)
def test_sdk_reaches_the_agent_under_the_unit_settings() -> None:
    done = subprocess.run(["unshare", "-m", sys.executable,
                           str(ROOT / "tests" / "integration" / "unit_sandbox.py"), str(UNIT),
                           str(free_port())], capture_output=True, text=True, timeout=100,
                          check=False)
    if "mount" in done.stderr and done.returncode != 0:
        pytest.skip(f"no private mounts here: {done.stderr.strip()[:200]}")
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["path"] == DEFAULT_SOCKET
    assert seen["mode"] == 0o660
    assert seen["gid"] == CLIENTS_GID, "the socket is in the unit's Group=, for the clients"
    member, stranger = seen["member"], seen["stranger"]
    assert member["stats"]["sent"] == 5, member
    assert member["stats"]["socket_path"] == DEFAULT_SOCKET
    assert member["log"] == ""
    assert seen["received"] == 5.0
    assert stranger["stats"]["sent"] == 0
    assert stranger["stats"]["dropped_agent_unavailable"] == 5
    assert stranger["stats"]["looked_at"][0] == DEFAULT_SOCKET
    assert stranger["log"].count("cannot reach the agent") == 1, stranger["log"]
    assert "Permission denied" in stranger["log"]
