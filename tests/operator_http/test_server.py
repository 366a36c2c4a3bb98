"""The operator endpoints through real HTTP: /healthz, /readyz transitions, routes, mounts."""

from __future__ import annotations

import socket

import httpx
import pytest
from aiohttp import web

from core.errors import ConfigError, StorageError
from core.generation.scripted import ScriptedGenerator
from core.http.health import Health, generator_check, store_check
from core.http.metrics import Metrics
from core.http.server import HttpServer
from core.http.settings import HttpSettings


class PingStore:
    """The one Store method the readiness check reads; ``down`` makes it fail as a lost database does."""

    def __init__(self) -> None:
        self.down = False

    async def get_setting(self, scope: str, name: str) -> str | None:
        if self.down:
            raise StorageError("database unreachable: connection refused")
        return None


@pytest.fixture
async def server():
    metrics = Metrics()
    async with HttpServer(HttpSettings(enabled=True, port=0), metrics, Health(metrics, timeout_s=0.5)) as running:
        yield running


def url(server: HttpServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def get(server: HttpServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url(server, path))


async def test_healthz_answers_while_the_process_is_still_starting(server):
    live, ready = await get(server, "/healthz"), await get(server, "/readyz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 503
    assert ready.json() == {"status": "unready", "reasons": {"process": "starting"}}


async def test_readyz_follows_store_generator_and_adapter(server):
    health = server.health
    store = PingStore()
    generator = ScriptedGenerator(["hi"])
    health.add_check("store", store_check(store))
    health.add_check("generator", generator_check(generator))
    health.report("telegram", "not connected yet")
    health.started()

    response = await get(server, "/readyz")
    assert response.status_code == 503
    assert response.json()["reasons"] == {"telegram": "not connected yet"}

    health.report("telegram", None)
    response = await get(server, "/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})

    store.down = True
    response = await get(server, "/readyz")
    assert response.status_code == 503
    assert response.json()["reasons"] == {"store": "StorageError: database unreachable: connection refused"}
    store.down = False
    assert (await get(server, "/readyz")).status_code == 200

    metrics_text = (await get(server, "/metrics")).text
    assert 'personabot_adapter_connected{platform="telegram"} 1.0' in metrics_text


async def test_an_unhealthy_generator_or_a_hanging_check_is_named_with_its_reason(server):
    class Down(ScriptedGenerator):
        async def health(self):
            return {"backend": "openai", "ok": False, "error": "ConnectError: connection refused"}

    async def hangs() -> str | None:
        import asyncio

        await asyncio.Event().wait()
        return None

    server.health.add_check("generator", generator_check(Down(["x"])))
    server.health.add_check("slow", hangs)
    server.health.started()
    response = await get(server, "/readyz")
    assert response.status_code == 503
    assert response.json()["reasons"] == {
        "generator": "ConnectError: connection refused",
        "slow": "no answer within 0.5 s",
    }


async def test_routes_added_after_start_are_served_and_removed(server):
    async def hook(request: web.Request) -> web.Response:
        return web.Response(text=f"got {await request.text()}")

    server.add_route("POST", "/telegram", hook)
    async with httpx.AsyncClient() as client:
        answered = await client.post(url(server, "/telegram"), content="update")
        wrong_method = await client.get(url(server, "/telegram"))
        server.remove_route("POST", "/telegram")
        gone = await client.post(url(server, "/telegram"), content="update")
    assert (answered.status_code, answered.text) == (200, "got update")
    assert wrong_method.status_code == 405
    assert gone.status_code == 404
    with pytest.raises(ValueError):
        server.add_route("GET", "/metrics", hook)


async def test_a_sub_application_mounted_before_start_serves_under_its_prefix():
    console = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="console 控制台")

    console.router.add_get("/", page)
    metrics = Metrics()
    server = HttpServer(HttpSettings(enabled=True, port=0), metrics, Health(metrics))
    server.mount("/console", console)
    async with server:
        response = await get(server, "/console/")
        assert (response.status_code, response.text) == (200, "console 控制台")
        assert (await get(server, "/healthz")).status_code == 200
        with pytest.raises(RuntimeError):
            server.mount("/late", web.Application())


async def test_a_port_in_use_is_a_config_error_naming_the_field():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        metrics = Metrics()
        server = HttpServer(HttpSettings(enabled=True, port=port), metrics, Health(metrics))
        with pytest.raises(ConfigError, match="http.port"):
            await server.start()
