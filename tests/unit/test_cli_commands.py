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


class Greeter:
    @hookimpl
    def inferwatch_commands(self, subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        greet = subparsers.add_parser("greet", help="say hello from a -p plugin")
        greet.add_argument("-p", "--plugin", action="append", default=[])
        greet.set_defaults(func=lambda args: print(f"greetings {args.plugin}") or 4)


GREETER = Greeter()


def test_a_command_line_plugin_contributes_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """`-p MODULE` is read before the parser is built, so its commands exist (they did not:
    the parser was built from the installed plugins alone, and `greet` was an invalid choice)."""
    for flag in (["-p", f"{__name__}:GREETER"], [f"--plugin={__name__}:GREETER"],
                 [f"-p{__name__}:GREETER"], [f"-p={__name__}:GREETER"]):
        assert cli.main(["greet", *flag]) == 4
        assert capsys.readouterr().out == f"greetings ['{__name__}:GREETER']\n"


def test_replay_report_and_reference_are_their_plugins_commands() -> None:
    """The core's parser has neither; ingest and drift add them through the hook."""
    core = cli._parser(plugin_commands=False)._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"replay", "report", "reference"}.isdisjoint(core)
    found = discover()
    added = {}
    for plugin in ("ingest", "drift"):
        parser = argparse.ArgumentParser()
        found.call(plugin, "inferwatch_commands", subparsers=parser.add_subparsers())
        added[plugin] = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert added == {"ingest": {"replay", "report"}, "drift": {"reference"}}
