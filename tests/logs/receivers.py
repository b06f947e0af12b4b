"""Receivers for the log outputs: a real rsyslogd, and a Loki stand-in (Loki itself cannot
be installed here) implementing the documented push and query endpoints."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.helpers import free_port, poll


class Rsyslog:
    """rsyslogd in the foreground: imtcp (optionally TLS) on loopback, `%msg%` to a file."""

    def __init__(self, folder: Path, tls: dict[str, Path] | None = None) -> None:
        self.folder, self.port, self.tls = folder, free_port(), tls
        self.out = folder / "out.log"
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> Rsyslog:
        conf = self.folder / "rs.conf"
        driver = ""
        mode = ""
        if self.tls:
            driver = (f'DefaultNetstreamDriver="gtls" '
                      f'DefaultNetstreamDriverCAFile="{self.tls["ca"]}" '
                      f'DefaultNetstreamDriverCertFile="{self.tls["cert"]}" '
                      f'DefaultNetstreamDriverKeyFile="{self.tls["key"]}"')
            mode = ' StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon"'
        conf.write_text(f"""
global(workDirectory="{self.folder}" maxMessageSize="1m"
       parser.escapeControlCharactersOnReceive="off" {driver})
module(load="imtcp"{mode})
input(type="imtcp" port="{self.port}" address="127.0.0.1")
template(name="msgonly" type="string" string="%msg%\\n")
action(type="omfile" file="{self.out}" template="msgonly")
""")
        with (self.folder / "rsyslog.err").open("wb") as err:
            self.proc = subprocess.Popen(
                ["rsyslogd", "-n", "-f", str(conf), "-i", str(self.folder / "pid")],
                stdout=subprocess.DEVNULL, stderr=err)
        poll(self._accepting, what="rsyslog accepting")
        return self

    def _accepting(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError((self.folder / "rsyslog.err").read_text())
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def received(self) -> bytes:
        return self.out.read_bytes() if self.out.exists() else b""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class LokiStandIn:
    """`POST /loki/api/v1/push` (JSON, optionally gzip) and `GET /loki/api/v1/query_range`
    over what was pushed; `fail` answers every push with that status instead."""

    def __init__(self) -> None:
        self.port = free_port()
        self.streams: dict[str, dict[str, Any]] = {}
        self.pushes = 0
        self.encodings: set[str] = set()
        self.fail = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> LokiStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/loki/api/v1/push", self._push)
        app.router.add_get("/loki/api/v1/query_range", self._query)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _push(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.Response(status=self.fail, text="stand-in told to fail")
        self.encodings.add(request.headers.get("Content-Encoding", ""))
        body = await request.read()  # aiohttp undoes Content-Encoding: gzip itself
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        for stream in json.loads(body)["streams"]:
            key = json.dumps(stream["stream"], sort_keys=True)
            entry = self.streams.setdefault(key, {"stream": stream["stream"], "values": []})
            entry["values"].extend(stream["values"])
        self.pushes += 1
        return web.Response(status=204)

    async def _query(self, request: web.Request) -> web.Response:
        """A label-equality selector only: `{a="b", c="d"}`."""
        query = request.query.get("query", "{}").strip("{}")
        want = dict(part.split("=", 1) for part in query.split(",") if part.strip())
        want = {k.strip(): v.strip().strip('"') for k, v in want.items()}
        result = [s for s in self.streams.values()
                  if all(s["stream"].get(k) == v for k, v in want.items())]
        return web.json_response({"status": "success", "data": {
            "resultType": "streams", "result": result}})

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
