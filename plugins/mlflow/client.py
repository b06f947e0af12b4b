"""The few MLflow REST calls the sink needs, over aiohttp (no MLflow client in the agent).

MLflow's Python client pulls in hundreds of MB of dependencies; the REST API is stable and
small: get or create an experiment, find or create a run, log a batch, set a tag.
"""

from __future__ import annotations

import re
import ssl
from typing import Any

import aiohttp

from plugins.mlflow.config import MlflowConfig

# A hash of (model, version, window): finds the run after a restart, and keeps names that
# clients chose out of MLflow's filter language.
RUN_TAG = "inferwatch.stream"
_CODE = re.compile(r"[A-Z_]{1,64}")  # MLflow's error codes; anything else is not kept


class MlflowError(Exception):
    """The server refused a request for a reason that retrying will not change."""


class MlflowUnavailableError(Exception):
    """A 429 or 5xx: retried. Only the status and MLflow's error code, never the request
    (aiohttp's ClientResponseError carries its headers, the Authorization one included)."""


class Mlflow:
    def __init__(self, config: MlflowConfig) -> None:
        self.config = config
        self.root = config.tracking_uri.rstrip("/") + "/api/2.0/mlflow"
        self.session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        if self.config.token is not None:
            return {"Authorization": f"Bearer {self.config.token.reveal()}"}
        return {}

    async def open(self) -> None:
        auth = None
        if self.config.username is not None:
            password = self.config.password.reveal() if self.config.password else ""
            auth = aiohttp.BasicAuth(self.config.username, password)
        ssl_context = ssl.create_default_context(cafile=self.config.ca_file) \
            if self.config.ca_file else None
        self.session = aiohttp.ClientSession(
            auth=auth, headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=float(self.config.request_timeout)),
            connector=aiohttp.TCPConnector(ssl=ssl_context) if ssl_context else None)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """One request; a 4xx other than 429 is an MlflowError, anything else raises to retry."""
        assert self.session is not None  # noqa: S101 - open() comes first
        async with self.session.request(method, f"{self.root}/{path}", **kw) as response:
            try:  # a proxy's or gateway's error page is HTML: its status still decides
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            if response.status < 300:
                return body if isinstance(body, dict) else {}
            code = body.get("error_code", "") if isinstance(body, dict) else ""
            code = code if isinstance(code, str) and _CODE.fullmatch(code) else ""  # a label
            reason = f"{response.status} {code}".strip()
            if 400 <= response.status < 500 and response.status != 429:
                raise MlflowError(reason)
            raise MlflowUnavailableError(reason)

    async def experiment(self, name: str) -> str:
        try:
            found = await self.call("GET", "experiments/get-by-name",
                                    params={"experiment_name": name})
            return str(found["experiment"]["experiment_id"])
        except MlflowError as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(exc):
                raise
        try:
            made = await self.call("POST", "experiments/create", json={"name": name})
            return str(made["experiment_id"])
        except MlflowError as exc:  # another agent created it in between
            if "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
            return await self.experiment(name)

    async def run(self, experiment_id: str, stream: str, name: str, start_ms: int,
                  tags: dict[str, str]) -> str:
        """The run of this stream (a hex digest) in the experiment, created the first time."""
        query = {"experiment_ids": [experiment_id], "max_results": 1,
                 "filter": f"tags.`{RUN_TAG}` = '{stream}'"}
        found = await self.call("POST", "runs/search", json=query)
        if runs := found.get("runs"):
            return str(runs[0]["info"]["run_id"])
        all_tags = [{"key": RUN_TAG, "value": stream},
                    *({"key": k, "value": v} for k, v in tags.items())]
        made = await self.call("POST", "runs/create", json={
            "experiment_id": experiment_id, "run_name": name, "start_time": start_ms,
            "tags": all_tags})
        return str(made["run"]["info"]["run_id"])

    async def log_batch(self, run_id: str, metrics: list[dict[str, object]],
                        tags: list[dict[str, str]]) -> None:
        for i in range(0, max(len(metrics), 1), 1000):  # MLflow takes 1,000 metrics a call
            await self.call("POST", "runs/log-batch", json={
                "run_id": run_id, "metrics": metrics[i:i + 1000], "tags": tags if i == 0 else []})

