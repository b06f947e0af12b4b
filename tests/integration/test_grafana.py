"""The Grafana dashboards against a real Prometheus scraping a real agent with traffic.

Every panel's, annotation's and variable's PromQL (template variables substituted as
Grafana's "All" would) must parse and return data, and every metric it names must be in the
agent's exposition: a metric renamed in the code fails here, not on a user's screen.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, free_port, http_get, poll
from tests.integration.live import LiveAgent

pytestmark = pytest.mark.integration

GRAFANA = ROOT / "contrib" / "grafana"
BOARDS = sorted(GRAFANA.glob("*.json"))
# What Grafana puts in place of its variables: "All" (allValue) and its built-in intervals.
SUBSTITUTIONS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "10m",
                 "$host": ".*", "$model_version": ".*", "$model": ".*", "$gpu": ".*"}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target, annotation and variable of a dashboard."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for note in board["annotations"]["list"]:
        if "expr" in note:
            yield f"annotation {note['name']!r}", note["expr"]
    for variable in board["templating"]["list"]:
        match = LABEL_VALUES.match(variable["query"]["query"])
        assert match, f"variable {variable['name']} is not a label_values() query"
        yield f"variable {variable['name']!r}", match["selector"]


def _substitute(expr: str) -> str:
    for name, value in SUBSTITUTIONS.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def _query(url: str, promql: str) -> list[Any]:
    try:
        body = json.loads(http_get(f"{url}/api/v1/query?query={urllib.parse.quote(promql)}"))
    except urllib.error.HTTPError as exc:  # 400: the expression does not parse
        raise AssertionError(f"Prometheus refused {promql}: {exc.read().decode()}") from None
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveAgent, str]]:
    folder = tmp_path_factory.mktemp("grafana")
    agent = LiveAgent(folder)
    port = free_port()
    config = folder / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 800ms\n"
                      "scrape_configs:\n  - job_name: inferwatch\n    static_configs:\n"
                      f"      - targets: ['{agent.target}']\n")
    with (folder / "prometheus.log").open("wb") as log:
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: http_get(f"{url}/-/ready"), 20, what="prometheus ready")
        yield agent, url
    finally:
        prometheus.terminate()
        prometheus.wait(10)
        agent.stop()


def test_the_committed_dashboards_are_what_the_generator_writes() -> None:
    names = {"inferwatch-host.json", "inferwatch-models.json", "inferwatch-agent.json"}
    assert {p.name for p in BOARDS} == names
    check = subprocess.run([sys.executable, str(GRAFANA / "build.py"), "--check"],
                           capture_output=True, text=True, timeout=30, check=False)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_dashboard_is_importable(path: Path) -> None:
    board = _load(path)
    assert board["schemaVersion"] >= 39
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert panel["targets"], panel["title"]
    variables = {v["name"] for v in board["templating"]["list"]}
    assert "host" in variables
    if "models" in path.stem:
        assert {"model", "model_version"} <= variables


@pytest.mark.timeout(150)
def test_every_query_returns_data_from_a_live_agent(live: tuple[LiveAgent, str]) -> None:
    agent, url = live
    poll(lambda: _query(url, "inferwatch_model_window_samples"), 30, 0.5, "model metrics")
    agent.traffic.drift = True  # the drift panels need drift; the reference is taken by now
    # A second XID, so the annotation (a change within the interval) has something to mark.
    scenario = json.loads(agent.scenario.read_text())
    scenario["xids"].append({"gpu": 1, "xid": 48, "seq": 2})
    agent.scenario.write_text(json.dumps(scenario))
    queries = {(f"{path.stem}: {where}", _substitute(expr))
               for path in BOARDS for where, expr in _queries(_load(path))}
    missing = set(queries)

    def answered() -> bool:
        missing.difference_update({q for q in missing if _query(url, q[1])})
        return not missing

    try:
        poll(answered, 90, 1.0, "every dashboard query to return data")
    except AssertionError:
        pytest.fail("no data for:\n" + "\n".join(f"{w}: {q}" for w, q in sorted(missing)))


def _exported(exposition: str) -> set[str]:
    """Family and sample names, the way a scrape names them."""
    families = set(re.findall(r"^# TYPE (\S+) (\w+)", exposition, re.MULTILINE))
    known = {name for name, _ in families}
    return known | {f"{name}{suffix}" for name, kind in families
                    if kind in ("summary", "histogram") for suffix in ("_sum", "_count", "_bucket")}


@pytest.mark.timeout(150)
def test_every_metric_a_dashboard_names_is_exported(live: tuple[LiveAgent, str]) -> None:
    agent, _ = live
    named = {name for path in BOARDS for _, expr in _queries(_load(path))
             for name in re.findall(r"\binferwatch_[a-z0-9_]+", expr)}
    assert named, "the dashboards name no metric"
    agent.traffic.drift = True  # drift series exist once drift has been measured
    unknown = set(named)

    def exported() -> bool:
        unknown.intersection_update(named - _exported(agent.exposition()))
        return not unknown

    try:
        poll(exported, 90, 1.0, "every metric the dashboards name")
    except AssertionError:
        pytest.fail(f"not exported by the agent: {sorted(unknown)}")


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_all_keeps_series_without_the_label(path: Path) -> None:
    """An unversioned model's series have no model_version label; Prometheus matches an
    absent label as "", and its regexes are anchored: "All" must match the empty string
    (".+" left every unversioned model off the models dashboard)."""
    for variable in _load(path)["templating"]["list"]:
        assert re.fullmatch(variable["allValue"], ""), variable["name"]
        assert SUBSTITUTIONS[f"${variable['name']}"] == variable["allValue"]
