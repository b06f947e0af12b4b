"""Commands from plugins (`inferwatch_commands`): added to the CLI, a broken one contained,
and not loaded at all for the built-in commands (loading every plugin costs about a second)."""

from __future__ import annotations

import argparse

import pytest

from agent import cli, hookimpl
from agent.loader import Plugins, discover


class Hello:
    @hookimpl
    def inferwatch_commands(self, subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        hello = subparsers.add_parser("hello", help="say hello")
        hello.add_argument("--code", type=int, default=0)
        hello.set_defaults(func=lambda args: print("hello") or args.code)


class Broken:
    @hookimpl
    def inferwatch_commands(self, subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        raise RuntimeError("commands broke on purpose")


@pytest.fixture
def found(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def fake_discover(*args: object, **kwargs: object) -> Plugins:
        calls.append(1)
        plugins = discover()
        plugins.manager.register(Broken(), name="broken")
        plugins.manager.register(Hello(), name="hello")
        return plugins

    monkeypatch.setattr(cli, "discover", fake_discover)
    return calls


def test_a_plugin_command_runs_and_a_broken_one_is_reported(
        found: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["hello", "--code", "3"]) == 3
    out, err = capsys.readouterr()
    assert out == "hello\n"
    assert err == ("inferwatch: warning: plugin broken: commands: commands broke on "
                   "purpose\n")


def test_built_in_commands_do_not_load_plugins(found: list[int]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["check", "--help"])
    assert found == []
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert found == [1]  # the help lists the plugins' commands too
