"""Secrets (ARI password, Redis password, HTTP token) never show up in logs, error messages or reprs.

The service's real start-up path runs at DEBUG log level against a real redis-server with requirepass and a
stand-in ARI server (it only checks Basic auth and holds the events websocket open: it proves nothing about
Asterisk, only that the password went over the wire and nowhere else). Once with the right secrets, once
with wrong ones, so the error paths are exercised too.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from plugin.config import ConfigError, parse_config
from plugin.lab import Lab, LabPorts, free_port
from plugin.service import Service

REPO = Path(__file__).resolve().parents[2]
STAND_IN = str(REPO / "tests" / "plugin" / "fakedet.py") + ":load"

ARI_SECRET = "AriPw-Zq9vK2mXw7"
REDIS_SECRET = "RedisPw-Lp4nT8sYc3"
HTTP_SECRET = "HttpTok-Vb6jR1uQe5Gh0"
WRONG = {"ari": "AriWrong-Hh3kD9pQ", "redis": "RedisWrong-Mm2cX7vB", "http": "HttpWrong-Tt5gN4wZa8Yy"}


def secret_forms(*secrets: str) -> list[str]:
    """Each secret, plus the Basic-auth encoding of the ARI one (as it travels in the header)."""
    out = list(secrets)
    for s in secrets:
        out.append(base64.b64encode(f"callguard:{s}".encode()).decode())
    return out


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[Lab]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    ports = LabPorts(http=0, sip=0, sip2=0, rtp_start=0, rtp_end=0, redis=free_port(), media=0, sipp_base=0)
    lab = Lab(root=tmp_path / "redis", ports=ports, redis_password=REDIS_SECRET)
    for d in ("run", "lib", "log"):
        (lab.root / d).mkdir(parents=True, exist_ok=True)
    lab.start_redis()
    try:
        yield lab
    finally:
        lab.stop_redis()


class StandInAri:
    """Checks Basic auth; GET answers [], other methods 204; /ari/events is a websocket held open."""

    def __init__(self, password: str) -> None:
        self.expected = "Basic " + base64.b64encode(f"callguard:{password}".encode()).decode()
        self.seen_auth: list[str] = []
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        self.seen_auth.append(auth)
        if auth != self.expected:
            return web.Response(status=401, text='{"message": "Authentication required"}')
        if request.path == "/ari/events":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for _ in ws:
                pass
            return ws
        if request.method == "GET":
            return web.json_response([])
        return web.Response(status=204)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def close(self) -> None:
        if self.runner:
            await self.runner.cleanup()


def make_config(tmp_path: Path, ari_url: str, redis: Lab, ari_pw: str, redis_pw: str) -> Any:
    raw = {
        "ari": {"url": ari_url, "username": "callguard"},
        "redis": {"url": redis.redis_url, "spool_path": str(tmp_path / "spool.jsonl"),
                  "summary_log": str(tmp_path / "summary.jsonl")},
        "media": {"port": 0},
        "detector": {"loader": STAND_IN, "workers": 1},
        "http": {"port": 0},
    }
    env = {"CALLGUARD_ARI_PASSWORD": ari_pw, "CALLGUARD_REDIS_PASSWORD": redis_pw,
           "CALLGUARD_HTTP_TOKEN": HTTP_SECRET}
    return parse_config(raw, env=env)


async def run_service(tmp_path: Path, redis: Lab, ari_pw: str, redis_pw: str) -> dict[str, Any]:
    ari = StandInAri(ARI_SECRET)
    url = await ari.start()
    service = Service(make_config(tmp_path, url, redis, ari_pw, redis_pw))
    out: dict[str, Any] = {"reprs": [repr(service.config), repr(service.config.ari), repr(service.config.redis),
                                     repr(service.config.http), repr(service.bus.redis),
                                     repr(service.reactor), repr(service.ari)]}
    try:
        await service.start()
        assert service.http is not None and service.http.address
        host, port = service.http.address
        base = f"http://{host}:{port}"
        async with aiohttp.ClientSession() as s:
            for token in (HTTP_SECRET, WRONG["http"]):
                async with s.get(base + "/metrics", headers={"Authorization": f"Bearer {token}"}) as r:
                    out.setdefault("metrics_status", []).append(r.status)
                    out.setdefault("bodies", []).append(await r.text())
            async with s.get(base + "/health") as r:
                out["health_status"] = r.status
                out["bodies"].append(await r.text())
        status = await service.status()
        out["status"] = status
        out["reprs"] += [repr(status), repr(service.reactor)]
    finally:
        await service.close()
        await ari.close()
    out["ari_auth_seen"] = ari.seen_auth
    return out


def assert_no_secret(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for s in secrets:
            assert s not in text, f"a secret leaked into: {text[:300]!r}"


def test_start_up_with_the_right_secrets_logs_none_of_them(tmp_path, redis_with_password, caplog):
    caplog.set_level(logging.DEBUG)
    out = asyncio.run(run_service(tmp_path, redis_with_password, ARI_SECRET, REDIS_SECRET))
    # the secrets were really used: ARI got the password, Redis accepted AUTH, the token opened /metrics
    assert any(a.endswith(base64.b64encode(f"callguard:{ARI_SECRET}".encode()).decode())
               for a in out["ari_auth_seen"])
    assert out["status"].redis_connected and out["status"].ari_connected
    assert out["metrics_status"] == [200, 401]
    assert out["health_status"] == 200
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # DEBUG logging really was on
    assert_no_secret([caplog.text, *out["reprs"], *out["bodies"]],
                     secret_forms(ARI_SECRET, REDIS_SECRET, HTTP_SECRET, WRONG["http"]))


@pytest.mark.slow
def test_start_up_with_wrong_secrets_names_the_problem_without_the_secrets(tmp_path, redis_with_password,
                                                                            caplog):
    caplog.set_level(logging.DEBUG)
    out = asyncio.run(run_service(tmp_path, redis_with_password, WRONG["ari"], WRONG["redis"]))
    status = out["status"]
    assert not status.ari_connected and not status.redis_connected
    assert out["health_status"] == 503
    assert "authentication failed: wrong password" in (status.redis_error or "")
    assert any("authentication failed" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert any("401: Asterisk refused ari.username / ari.password" in r.getMessage() for r in caplog.records)
    assert_no_secret([caplog.text, *out["reprs"], *out["bodies"], str(status.redis_error)],
                     secret_forms(ARI_SECRET, REDIS_SECRET, HTTP_SECRET, *WRONG.values()))


@pytest.mark.parametrize("raw, env, key", [
    ({"redis": {"url": f"redis://:{REDIS_SECRET}@127.0.0.1:notaport/0"}}, {}, "redis.url"),
    ({"redis": {"url": f"ftp://:{REDIS_SECRET}@127.0.0.1/0"}}, {}, "redis.url"),
    ({"ari": {"url": f"http://callguard:{ARI_SECRET}@127.0.0.1:8088"}}, {}, "ari.url"),
    ({"http": {"token": HTTP_SECRET[:8]}}, {}, "http.token"),
    ({"http": {"token": f"{HTTP_SECRET} x"}}, {}, "http.token"),
    ({"redis": {"password": ["not", REDIS_SECRET]}}, {}, "redis.password"),
])
def test_config_errors_name_the_key_but_never_the_secret(raw, env, key):
    raw = {"ari": {"password": ARI_SECRET, **raw.get("ari", {})}, **{k: v for k, v in raw.items() if k != "ari"}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, env=env, check_port=False)
    assert str(err.value).startswith(key)
    assert_no_secret([str(err.value), repr(err.value)], [ARI_SECRET, REDIS_SECRET, HTTP_SECRET, HTTP_SECRET[:8]])


def test_reprs_mask_passwords_also_inside_urls():
    cfg = parse_config({"ari": {"password": ARI_SECRET},
                        "redis": {"url": f"rediss://user:{REDIS_SECRET}@127.0.0.1:6380/0"},
                        "http": {"token": HTTP_SECRET}}, env={}, check_port=False)
    text = repr(cfg)
    assert "***" in text and "rediss://***@127.0.0.1:6380/0" in text
    assert_no_secret([text], [ARI_SECRET, REDIS_SECRET, HTTP_SECRET])
