"""The MLflow client's answers to what a tracking server or the proxy before it may send,
against a real HTTP server: a status decides, whatever the body, and no secret rides along."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from agent.config import Secret
from plugins.mlflow.client import Mlflow, MlflowError, MlflowUnavailableError
from plugins.mlflow.config import MlflowConfig

TOKEN = "tok-5ecret-value-for-the-test"  # looked for in every error


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.Response:
        status, body = int(request.query["status"]), request.query.get("body", "")
        return web.Response(status=status, text=body, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _call(url: str, status: int, body: str) -> dict[str, object]:
    config = MlflowConfig(enabled=True, tracking_uri=url, token=Secret(TOKEN, "env:T"))
    client = Mlflow(config)
    await client.open()
    try:
        return await client.call("GET", "x", params={"status": str(status), "body": body})
    finally:
        await client.close()


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_refusal_with_an_html_page_is_a_refusal(server: str, status: int) -> None:
    with pytest.raises(MlflowError, match=rf"^{status}$"):
        await _call(server, status, "<html><body>Forbidden</body></html>")


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_unavailable_is_retried_and_carries_no_header(server: str, status: int) -> None:
    with pytest.raises(MlflowUnavailableError) as caught:
        await _call(server, status, "<html>Bad Gateway</html>")
    assert str(caught.value) == str(status)
    seen = f"{caught.value!r} {caught.value.__context__!r} {caught.value.__cause__!r}"
    assert TOKEN not in seen
    assert "Authorization" not in seen


async def test_an_empty_success_is_an_empty_answer(server: str) -> None:
    assert await _call(server, 200, "") == {}


async def test_an_error_code_outside_mlflows_is_not_kept(server: str) -> None:
    body = '{"error_code": "' + "x" * 5000 + '"}'
    with pytest.raises(MlflowError, match=r"^400$"):
        await _call(server, 400, body)
    with pytest.raises(MlflowError, match=r"^400 INVALID_PARAMETER_VALUE$"):
        await _call(server, 400, '{"error_code": "INVALID_PARAMETER_VALUE"}')
