"""A real Prometheus scrapes the real agent; we ask Prometheus what it saw."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import free_port, http_get, poll

pytestmark = pytest.mark.integration


@pytest.fixture
def prometheus(tmp_path: Path):
    procs: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\n"
            f"scrape_configs:\n  - job_name: inferwatch\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        with (tmp_path / "prometheus.log").open("wb") as log:
            procs.append(subprocess.Popen(
                ["prometheus", f"--config.file={config}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log))
        url = f"http://127.0.0.1:{port}"
        poll(lambda: http_get(f"{url}/-/ready"), what="prometheus ready")
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def _query(url: str, promql: str) -> list[dict[str, object]]:
    body = http_get(f"{url}/api/v1/query?query={urllib.parse.quote(promql)}")
    return list(json.loads(body)["data"]["result"])


def test_prometheus_scrapes_the_agent(write_config: ConfigWriter, agent_factory,
                                      prometheus) -> None:
    config, port = write_config('[plugins.host]\ninterval = "1s"\n')
    agent_factory(config, port)
    url = prometheus(f"127.0.0.1:{port}")
    up = poll(lambda: _query(url, 'up{job="inferwatch"}'), 20, 0.2, "up series")
    assert up[0]["value"][1] == "1"  # type: ignore[index]
    memory = poll(lambda: _query(url, "inferwatch_host_memory_total_bytes"), 20, 0.2,
                  "host metric in Prometheus")
    assert float(memory[0]["value"][1]) > 0  # type: ignore[index]
    # Prometheus negotiates OpenMetrics; the scrape must not be reported as failed.
    failed = _query(url, 'scrape_samples_scraped{job="inferwatch"}')
    assert float(failed[0]["value"][1]) > 50  # type: ignore[index]
