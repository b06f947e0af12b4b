"""A real Alertmanager (Debian's) on a free loopback port, and the webhook receiver behind it."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.helpers import free_port, parse_metrics, poll


class Receiver:
    """Records every notification Alertmanager posts to it (webhook_configs)."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        lock, notes = threading.Lock(), self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    notes.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._lock = lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, status: str) -> list[dict[str, Any]]:
        """Every alert of that status in every notification, in order."""
        with self._lock:
            return [a for n in self.notifications for a in n["alerts"] if a["status"] == status]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Alertmanager:
    def __init__(self, folder: Path, receiver_port: int, port: int | None = None,
                 web_config: str = "", ca: Path | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        """`web_config`: Alertmanager's --web.config.file (TLS, basic auth); then `ca` and
        `auth` are what the test's own requests use."""
        self.folder, self.port = folder, port or free_port()
        self.web_config, self.ca, self.auth = web_config, ca, auth
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "am.yml"
        # group_interval short, so a resolve is notified quickly; repeat_interval long, so a
        # second firing notification can only come from a changed alert (a new episode).
        self.conf.write_text(f"""
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:{receiver_port}/hook
        send_resolved: true
""")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.port}"

    def get(self, path: str) -> str:
        request = urllib.request.Request(f"{self.url}{path}")  # noqa: S310 - test URLs
        if self.auth:
            token = base64.b64encode(":".join(self.auth).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = ssl.create_default_context(cafile=self.ca) if self.ca else None
        with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310
            return str(response.read().decode())

    def start(self) -> Alertmanager:
        log = (self.folder / "am.log").open("ab")
        web = []
        if self.web_config:
            (self.folder / "web.yml").write_text(self.web_config)
            web = [f"--web.config.file={self.folder / 'web.yml'}"]
        self.proc = subprocess.Popen(
            ["prometheus-alertmanager", f"--config.file={self.conf}",
             f"--storage.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", *web],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        poll(self._ready, 15, what="alertmanager ready")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"alertmanager exited: {(self.folder / 'am.log').read_text()}")
        return self.get("/-/ready") != ""

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (`GET /api/v2/alerts`; a resolved one is no longer listed)."""
        return list(json.loads(self.get("/api/v2/alerts")))

    def received(self, status: str) -> float:
        """Alerts received over the API, by status (Alertmanager's own counter)."""
        metrics = parse_metrics(self.get("/metrics"))
        return sum(v for (name, labels), v in metrics.items()
                   if name == "alertmanager_alerts_received_total"
                   and ("status", status) in labels)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
