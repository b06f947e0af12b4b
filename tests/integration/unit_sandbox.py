"""Run the agent as the shipped unit would, then the SDK as the model server would.

Invoked by test_unit_socket.py inside `unshare -m` (a private mount namespace, as root): a
tmpfs on /run stands for the host's /run, so /run/inferwatch is created exactly as systemd's
RuntimeDirectory= would make it, for a dynamic uid and the unit's Group=, with the unit's
RuntimeDirectoryMode= and UMask=. Prints one JSON object with what it saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

AGENT_UID, CLIENTS_GID, MEMBER_UID, STRANGER_UID = 61_234, 61_235, 61_236, 61_237
ROOT = Path(__file__).resolve().parents[2]

SDK = """
import json, logging, sys
logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s %(message)s")
import agent.client as inferwatch
inferwatch.configure(model="m")
for i in range(5):
    inferwatch.record(f"r-{i}", {"x": i}, prediction=i % 2)
inferwatch._client().flush(3.0)
print(json.dumps(inferwatch.stats()))
"""


def unit_settings(unit: Path) -> dict[str, str]:
    settings = {}
    for line in unit.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            settings[key.strip()] = value.strip()
    return settings


def main(unit: Path, port: int) -> None:
    unit_of = unit_settings(unit)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
    runtime = Path("/run") / unit_of["RuntimeDirectory"]
    runtime.mkdir(mode=int(unit_of["RuntimeDirectoryMode"], 8))
    runtime.chmod(int(unit_of["RuntimeDirectoryMode"], 8))
    os.chown(runtime, AGENT_UID, CLIENTS_GID)  # User=<dynamic>, Group=inferwatch-clients
    state = Path("/run/sandbox-state")
    state.mkdir(mode=0o700)
    os.chown(state, AGENT_UID, CLIENTS_GID)
    config = Path("/run/sandbox-agent.toml")
    config.write_text(f'[agent]\nstate_dir = "{state}"\n'
                      f'[prometheus]\nlisten = "127.0.0.1:{port}"\n'
                      '[plugins.host]\nenabled = false\n'
                      '[plugins.ingest]\nenabled = true\ninterval = "1s"\n')
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": "/nonexistent",
           "RUNTIME_DIRECTORY": str(runtime), "STATE_DIRECTORY": str(state)}
    agent = subprocess.Popen(
        ["setpriv", f"--reuid={AGENT_UID}", f"--regid={CLIENTS_GID}", "--clear-groups",
         sys.executable, "-m", "agent", "run", "-c", str(config)],
        cwd=ROOT, env=env, umask=int(unit_of["UMask"], 8),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        print(json.dumps(observe(runtime / "ingest.sock", port)))
    finally:
        agent.terminate()
        agent.wait(15)


def observe(sock: Path, port: int) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while not sock.exists():
        if time.monotonic() > deadline:
            return {"error": "no socket"}
        time.sleep(0.05)
    info = sock.stat()
    seen = {"path": str(sock), "mode": info.st_mode & 0o777, "uid": info.st_uid,
            "gid": info.st_gid, "member": sdk(MEMBER_UID, [CLIENTS_GID]),
            "stranger": sdk(STRANGER_UID, [])}
    seen["received"] = received(port)
    return seen


def sdk(uid: int, groups: list[int]) -> dict[str, object]:
    groups_arg = [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    done = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", *groups_arg,
                           sys.executable, "-c", SDK], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT),
                               "HOME": "/nonexistent"}, check=False, timeout=30)
    stats = json.loads(done.stdout) if done.stdout.strip() else {}
    return {"stats": stats, "log": done.stderr}


def received(port: int) -> float:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith('inferwatch_samples_received_total{model="m"}'):
                    return float(line.split()[-1])
        time.sleep(0.1)
    return 0.0


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
