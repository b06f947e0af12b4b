"""Console sessions replay and their output matches; JSON records go to a real agent.

A console block is a session: `$ inferwatch ...` runs (in a scratch folder) and what it
prints is compared with what follows it (`...` as a placeholder, see examples.matches),
`$ cat FILE` followed by text writes that file first, `$ echo $?` checks the exit status.
A command this runner cannot replay here is named in SKIPPED with the test that covers it
instead; a block that reaches one stops there. Any other command fails the test, so a new
example gets a runner or a reason.
"""

from __future__ import annotations

import json
import shlex
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docs.examples import Block, blocks, matches
from tests.helpers import AgentProcess, free_port, run_cli, start_agent

RUNNABLE = ("plugins", "check", "--help", "--version")
SKIPPED = {
    "curl": "needs a running agent with an HTTP token; the JSON examples are posted below and "
            "tests/integration/test_ingest.py covers the endpoints",
    "gzip": "the gzip upload: tests/integration/test_ingest.py",
    "echo '{": "a label piped to curl: the JSON examples are posted below",
    "inferwatch replay": "needs recorded data: tests/integration/test_replay.py",
    "inferwatch demo": "minutes long: tests/integration/test_demo.py runs it on a short clock",
    "inferwatch audit": "its output is this host's: tests/integration/test_audit.py runs it",
    "inferwatch alerts": "needs a running agent with a firing alert: "
                         "tests/integration/test_alerts_agent.py",
    "inferwatch reference build": "needs training data: tests/plugins/test_drift.py",
    "/opt/inferwatch/bin/pip install": "installs a package: tests/contract/test_example_plugin.py",
}
ENVELOPE = {"schema", "id", "ts", "host", "kind", "severity", "source", "attributes", "data"}
AUDIT_CHECK = {"name", "status", "value", "threshold", "why", "fix"}


def _where(block: Block) -> str:
    return block.where


def _session(text: str) -> list[tuple[str, list[str]]]:
    """(command, the lines it printed) pairs; a command may go on with a trailing `\\`."""
    out: list[tuple[str, list[str]]] = []
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\"):
                command = command[:-1] + next(lines).strip()
            out.append((command, []))
        elif out:
            out[-1][1].append(line)
    return out


@pytest.mark.parametrize("block", blocks("console"), ids=_where)
def test_console_example_replays(block: Block, tmp_path: Path) -> None:
    status = 0
    for command, expected in _session(block.text):
        program = command.removeprefix(".venv/bin/")
        if skipped := next((why for prefix, why in SKIPPED.items()
                            if program.startswith(prefix)), None):
            pytest.skip(f"{command.split()[0]} ...: {skipped}")
        args = shlex.split(program)
        if args[:1] == ["cat"]:
            (tmp_path / args[1]).write_text("\n".join(expected) + "\n")
        elif args == ["echo", "$?"]:
            assert expected == [str(status)], (block.where, command)
        elif args[0] == "inferwatch" and args[1] in RUNNABLE:
            done = run_cli(*args[1:], cwd=tmp_path)
            status = done.returncode
            printed = (done.stdout + done.stderr).splitlines()
            assert matches(expected, printed), (
                f"{block.where}: `{command}` printed:\n" + "\n".join(printed))
        else:
            pytest.fail(f"{block.where}: no runner for `{command}`: add one, or a reason to "
                        "SKIPPED")


@pytest.fixture(scope="module")
def http_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    folder = tmp_path_factory.mktemp("docs-agent")
    port, http = free_port(), free_port()
    config = folder / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "state"\n[prometheus]\nlisten = "127.0.0.1:{port}"\n'
                      '[plugins.host]\nenabled = false\n'
                      f'[plugins.ingest]\nenabled = true\nsocket_path = "ingest.sock"\n'
                      f'http_listen = "127.0.0.1:{http}"\n')
    agent = start_agent(config, port)
    agent.env["http"] = f"http://127.0.0.1:{http}"
    yield agent
    agent.stop()


def _post(url: str, body: bytes) -> dict[str, Any]:
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 202
        return dict(json.loads(response.read()))


@pytest.mark.parametrize("block", blocks("json"), ids=_where)
def test_json_example(block: Block, http_agent: AgentProcess) -> None:
    """A record is accepted by a real agent; an envelope has the envelope's keys only."""
    document = json.loads(block.text)
    if "request_id" in document:
        endpoint = "labels" if "label" in document and "prediction" not in document else "samples"
        line = json.dumps(document).encode()  # shown wrapped; one line on the wire (NDJSON)
        answer = _post(f"{http_agent.env['http']}/v1/{endpoint}", line)
        assert answer == {"accepted": 1, "rejected": 0, "errors": []}, block.where
    elif "kind" in document:
        assert set(document) <= ENVELOPE, (block.where, set(document) - ENVELOPE)
    elif "checks" in document:  # `inferwatch audit --format json` (DESIGN.md)
        assert document["status"] in {"ready", "warnings", "not_ready"}, block.where
        for check in document["checks"]:
            assert set(check) == AUDIT_CHECK, (block.where, set(check) ^ AUDIT_CHECK)
            assert check["status"] in {"pass", "warn", "fail"}, block.where
    elif document.get("version") == "4":  # the webhook's format = "alertmanager" payload
        from plugins.webhook.amformat import ALERT_KEYS, PAYLOAD_KEYS  # noqa: PLC0415
        assert set(document) == PAYLOAD_KEYS, block.where
        assert all(set(a) == ALERT_KEYS for a in document["alerts"]), block.where
    else:
        assert document["$schema"].startswith("https://json-schema.org/"), block.where

