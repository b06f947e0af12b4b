"""Every TOML block passes `inferwatch check`; every Python block runs; the docs' copy of the
example plugin is the plugin.

Placeholders: an absolute path in a TOML block is moved under a scratch folder; a file it
names that does not exist there is supplied (with placeholder content), as is an
environment variable a secret names. Nothing else is changed.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config import load_config
from agent.errors import ConfigError
from agent.loader import discover
from plugins.drift.profile import build
from tests.docs.examples import Block, blocks
from tests.helpers import ROOT, poll
from tests.unit.test_client import LineServer

EXAMPLE_PLUGIN = ROOT / "contrib" / "example-plugin"
SUPPLIED = (re.compile(r": (\S+): no such file"), re.compile(r"cannot read secret file (\S+):"))
UNSET_ENV = re.compile(r"environment variable (\w+) is not set")


def _where(block: Block) -> str:
    return block.where


@pytest.mark.parametrize("block", blocks("toml"), ids=_where)
def test_toml_example_passes_check(block: Block, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if block.text.startswith("# pyproject.toml"):
        assert block.text.split("\n", 1)[1] == (EXAMPLE_PLUGIN / "pyproject.toml").read_text()
        return
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    path = tmp_path / "etc" / "agent.toml"
    path.parent.mkdir()
    path.write_text(re.sub(r'"(/[^"]*)"', lambda m: f'"{tmp_path}{m[1]}"', block.text))
    extra = []
    if "[plugins.model_files]" in block.text:
        monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN / "src"))
        extra = ["model_files=inferwatch_model_files"]
    models = discover(extra).config_models()
    for _ in range(3):
        try:
            load_config(path, models)
        except ConfigError as exc:
            if not _supply(exc.problems, monkeypatch):
                pytest.fail(f"{block.where}:\n" + "\n".join(exc.problems))
        else:
            return
    pytest.fail(f"{block.where}: still failing after placeholders were supplied")


def _supply(problems: list[str], monkeypatch: pytest.MonkeyPatch) -> bool:
    """Create the files and set the variables the problems name; False if none."""
    supplied = False
    for problem in problems:
        for pattern in SUPPLIED:
            if match := pattern.search(problem):
                target = Path(match[1])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("placeholder\n")
                if ".command: " in problem:  # an exec sink's program must be executable
                    target.chmod(0o755)
                if ".reference: " in problem:  # read when the config loads: a real profile
                    build({"x": np.arange(200.0)}, model="m", model_version="").save(target)
                supplied = True
        if match := UNSET_ENV.search(problem):
            monkeypatch.setenv(match[1], "placeholder")
            supplied = True
    return supplied


class _Model:
    """Stands for the reader's model: two-class probabilities."""

    def predict_proba(self, rows: list[list[float]]) -> np.ndarray:
        return np.tile([0.3, 0.7], (len(rows), 1))


@pytest.fixture
def agent_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LineServer]:
    """The SDK's default path, pointed at a collector of what it sends."""
    server = LineServer(tmp_path / "ingest.sock")
    monkeypatch.setenv("INFERWATCH_SOCKET", str(server.path))
    yield server
    server.sock.close()


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frameworks the examples import and this machine need not have."""
    fastapi = types.ModuleType("fastapi")

    class FastAPI:
        def post(self, _path: str) -> Any:
            return lambda fn: fn

    fastapi.FastAPI = FastAPI  # type: ignore[attr-defined]
    triton = types.ModuleType("triton_python_backend_utils")
    triton.get_input_tensor_by_name = lambda request, _name: request.tensor  # type: ignore[attr-defined]
    triton.Tensor = lambda name, data: (name, data)  # type: ignore[attr-defined]
    triton.InferenceResponse = lambda tensors: tensors  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fastapi", fastapi)
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", triton)


@pytest.mark.parametrize("block", blocks("python"), ids=_where)
@pytest.mark.usefixtures("stubs")
def test_python_example_runs(block: Block, agent_socket: LineServer,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    if "from inferwatch_model_files import" in block.text:  # the example plugin's own tests
        monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN / "src"))
    namespace: dict[str, Any] = {"model": _Model(), "__name__": "example"}
    # dont_inherit: the block runs as a reader's module would, without this file's
    # `from __future__ import annotations` (msgspec resolves string annotations by module).
    exec(compile(block.text, block.where, "exec", dont_inherit=True), namespace)  # noqa: S102
    if "def predict(request_id, features)" in block.text:  # the SDK's three lines, called
        namespace["predict"]("r-17", {"amount": 12.5, "age": 40.0})
        namespace["on_ground_truth"]("r-17", 0)
        _flush()
        poll(lambda: len(agent_socket.lines) == 2, what="a prediction and its label")
        assert [line["request_id"] for line in agent_socket.lines] == ["r-17", "r-17"]


@pytest.mark.usefixtures("stubs")
def test_the_triton_example_gives_each_row_its_own_id(agent_socket: LineServer) -> None:
    (block,) = [b for b in blocks("python") if "TritonPythonModel" in b.text]
    namespace: dict[str, Any] = {}
    # dont_inherit: the block runs as a reader's module would, without this file's
    # `from __future__ import annotations` (msgspec resolves string annotations by module).
    exec(compile(block.text, block.where, "exec", dont_inherit=True), namespace)  # noqa: S102
    server = namespace["TritonPythonModel"]()
    server.initialize({"model_name": "triton", "model_version": "1"})
    server.net = lambda x: np.tile([0.1, 0.9], (len(x), 1))
    request = types.SimpleNamespace(tensor=types.SimpleNamespace(
        as_numpy=lambda: np.arange(6.0).reshape(3, 2)), request_id=lambda: "req-9")
    server.execute([request])
    _flush()
    poll(lambda: len(agent_socket.lines) == 3, what="one record per row")
    ids = [line["request_id"] for line in agent_socket.lines]
    assert len(set(ids)) == 3, ids


def test_the_docs_show_the_example_plugin_as_it_is() -> None:
    (block,) = [b for b in blocks("python") if b.text.startswith(
        "# src/inferwatch_model_files/__init__.py")]
    source = EXAMPLE_PLUGIN / "src" / "inferwatch_model_files" / "__init__.py"
    assert block.text.split("\n", 1)[1] == source.read_text()


def _flush() -> None:
    import agent.client  # noqa: PLC0415

    agent.client._client().flush(3.0)
