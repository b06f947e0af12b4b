"""The real agent as a subprocess: scraping, containment of bad plugins, signals."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import http_get, poll, value

pytestmark = pytest.mark.integration

FAST = 'interval = "100ms"\ntimeout = "50ms"\n'
PLUGINS = ("-p", "iwtest.common:ticker", "-p", "iwtest.common:raiser", "-p", "iwtest.common:hanger")


def test_serves_host_metrics_that_promtool_accepts(write_config: ConfigWriter,
                                                   agent_factory, tmp_path: Path) -> None:
    config, port = write_config('[plugins.host]\ninterval = "1s"\n')
    agent = agent_factory(config, port)
    metrics = poll(lambda: (m := agent.scrape()) and
                   value(m, "inferwatch_host_memory_total_bytes") and m, what="host metrics")
    assert value(metrics, "inferwatch_plugin_up", plugin="host", component="memory") == 1
    assert value(metrics, "inferwatch_build_info", version="0.1.0",
                 python_version=__import__("platform").python_version()) == 1
    mem_total_kib = int(Path("/proc/meminfo").read_text().split()[1])
    assert value(metrics, "inferwatch_host_memory_total_bytes") == mem_total_kib * 1024
    text = http_get(f"{agent.url}/metrics").encode()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout + check.stderr == b""


def test_raising_and_hanging_plugins_leave_neighbours_alone(
        write_config: ConfigWriter, agent_factory, tmp_path: Path) -> None:
    marker = tmp_path / "hang"
    marker.touch()
    config, port = write_config(
        f"[plugins.host]\nenabled = false\n[plugins.ticker]\n{FAST}"
        f"[plugins.raiser]\n{FAST}[plugins.hanger]\n{FAST}marker = \"{marker}\"\n"
    )
    agent = agent_factory(config, port, *PLUGINS)

    def hung_and_failing():
        m = agent.scrape()
        return (
            (value(m, "inferwatch_plugin_errors_total", plugin="hanger", component="ticker",
                   reason="timeout") or 0) >= 1
            and (value(m, "inferwatch_plugin_errors_total", plugin="raiser",
                       component="ticker", reason="exception") or 0) >= 2
            and m
        )

    m = poll(hung_and_failing, 15, what="raiser and hanger failures")
    assert value(m, "inferwatch_plugin_up", plugin="hanger", component="ticker") == 0
    assert value(m, "inferwatch_plugin_up", plugin="raiser", component="ticker") == 0
    assert value(m, "inferwatch_test_hanger_ticks_total") is None  # no stale series
    assert (value(m, "inferwatch_plugin_restarts_total", plugin="raiser",
                  component="ticker") or 0) >= 1

    # The neighbour keeps its 100 ms cadence while the others fail and hang.
    before = value(agent.scrape(), "inferwatch_test_ticker_ticks_total") or 0
    began = time.monotonic()
    after = poll(lambda: (v := value(agent.scrape(), "inferwatch_test_ticker_ticks_total") or 0)
                 >= before + 10 and v, 5, what="ticker progress")
    elapsed = time.monotonic() - began
    assert after - before >= 10
    assert elapsed < 3.0, f"10 ticks of 100 ms took {elapsed:.2f}s"

    # Once the hung call returns, the hanger recovers by itself.
    marker.unlink()
    poll(lambda: value(agent.scrape(), "inferwatch_plugin_up", plugin="hanger",
                       component="ticker") == 1, 15, what="hanger recovery")
    skipped = value(agent.scrape(), "inferwatch_collector_skipped_ticks_total",
                    plugin="hanger", component="ticker")
    assert skipped is not None
    assert skipped >= 1
    assert "Traceback" not in agent.log().split('"exception"')[0]  # tracebacks only inside JSON
    assert agent.stop() == 0


def test_sighup_applies_good_config_and_refuses_bad(
        write_config: ConfigWriter, agent_factory, tmp_path: Path) -> None:
    base = f"[plugins.host]\nenabled = false\n[plugins.ticker]\n{FAST}"
    config, port = write_config(base + "[plugins.raiser]\nenabled = false\n")
    agent = agent_factory(config, port, *PLUGINS)
    ticks = lambda: value(agent.scrape(), "inferwatch_test_ticker_ticks_total") or 0  # noqa: E731
    poll(lambda: ticks() >= 5, what="ticker running")

    config.write_text(config.read_text() + "[plugins.ticker.extra]\nbogus = 1\n")
    agent.signal(signal.SIGHUP)
    poll(lambda: "reload refused" in agent.log(), what="bad reload refused")
    assert "plugins.ticker.extra: unknown key" in agent.log()
    assert value(agent.scrape(), "inferwatch_config_last_reload_successful") == 0
    still = ticks()
    poll(lambda: ticks() > still + 3, what="ticker still running after a refused reload")

    # Enable the raiser only: the ticker's config is unchanged, so it keeps its state.
    config.write_text(config.read_text().split("[plugins.ticker.extra]")[0]
                      .replace("[plugins.raiser]\nenabled = false\n", f"[plugins.raiser]\n{FAST}"))
    kept = ticks()
    agent.signal(signal.SIGHUP)
    poll(lambda: value(agent.scrape(), "inferwatch_plugin_errors_total", plugin="raiser",
                       component="ticker", reason="exception"), what="raiser started by reload")
    assert value(agent.scrape(), "inferwatch_config_last_reload_successful") == 1
    assert ticks() >= kept, "an unchanged plugin must not be restarted"

    # Change the ticker's interval: it alone restarts, with fresh state.
    config.write_text(config.read_text().replace(
        '[plugins.ticker]\ninterval = "100ms"', '[plugins.ticker]\ninterval = "200ms"'))
    agent.signal(signal.SIGHUP)
    poll(lambda: 0 < ticks() < kept, what="ticker restarted with fresh state")
    assert agent.stop() == 0


def test_sigterm_stops_within_ten_seconds_even_with_a_hung_collector(
        write_config: ConfigWriter, agent_factory, tmp_path: Path) -> None:
    marker = tmp_path / "hang"
    marker.touch()
    config, port = write_config(
        f"[plugins.hanger]\n{FAST}marker = \"{marker}\"\n", )
    agent = agent_factory(config, port, "-p", "iwtest.common:hanger")
    poll(lambda: value(agent.scrape(), "inferwatch_plugin_errors_total", plugin="hanger",
                       component="ticker", reason="timeout"), what="hanger hung")
    began = time.monotonic()
    agent.signal(signal.SIGTERM)
    assert agent.proc.wait(12) == 0
    assert time.monotonic() - began < 10
    assert '"agent stopped"' in agent.log()


def test_port_in_use_is_a_clear_error(write_config: ConfigWriter, agent_factory) -> None:
    config, port = write_config()
    first = agent_factory(config, port)
    second = agent_factory(config, port, wait=False)
    assert second.proc.wait(15) == 69
    assert f"prometheus.listen: cannot listen on 127.0.0.1:{port}" in second.log()
    assert "Traceback" not in second.log()
    assert first.stop() == 0


def test_a_plugin_whose_set_up_fails_is_disabled_alone(write_config: ConfigWriter,
                                                      agent_factory) -> None:
    config, port = write_config(f"[plugins.host]\nenabled = false\n[plugins.ticker]\n{FAST}"
                                "[plugins.broken]\n")
    agent = agent_factory(config, port, "-p", "iwtest.common:ticker",
                          "-p", "iwtest.common:broken")
    poll(lambda: (value(agent.scrape(), "inferwatch_test_ticker_ticks_total") or 0) > 3,
         what="the neighbour runs")
    metrics = agent.scrape()
    assert value(metrics, "inferwatch_plugin_errors_total", plugin="broken", component="",
                 reason="start") == 1
    assert value(metrics, "inferwatch_plugin_up", plugin="broken", component="") == 0
    assert "plugin set-up failed; plugin disabled" in agent.log()
