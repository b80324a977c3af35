"""The plugin's HTTP endpoint, against the real aiohttp server on a free loopback port: /health is open and
says 200/503 from ARI + detector state; /metrics and every other path need the bearer token."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugin import metrics
from plugin.config import ConfigError, HttpConfig, parse_config
from plugin.http import HttpServer
from plugin.metrics import ServiceStatus

TOKEN = "t0k3n-for-the-http-tests-5f1c"
UP = ServiceStatus(ari_connected=True, redis_connected=True, detector_up=True, detector_name="gbm",
                   detector_version="v7", legs_guarded=3, chunks_scored=11, chunks_shed=2, chunks_errored=1,
                   queue_depth=4, spool_length=5, uptime_s=12.5)


def serve(status: ServiceStatus | Callable[[], ServiceStatus], scenario: Callable[[str], Awaitable[Any]],
          token: str = TOKEN, port: int = 0) -> Any:
    """Run ``scenario(base_url)`` against a real HttpServer whose status source returns ``status``."""

    async def source() -> ServiceStatus:
        return status() if callable(status) else status

    async def main() -> Any:
        server = HttpServer(HttpConfig(bind_host="127.0.0.1", port=port, token=token), source)
        host, bound = await server.start()
        try:
            return await scenario(f"http://{host}:{bound}")
        finally:
            await server.close()

    return asyncio.run(main())


async def fetch(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=headers or {}) as r:
        return r.status, await r.text(), r.headers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def _clean_metrics():
    metrics.reset()
    yield
    metrics.reset()


def test_health_is_open_and_reports_the_service_state():
    status, text, headers = serve(UP, lambda base: fetch(base + "/health"))
    assert status == 200
    body = json.loads(text)
    assert body["status"] == "ok"
    assert body["ari"] == {"connected": True}
    assert body["redis"]["connected"] is True
    assert body["detector"] == {"up": True, "name": "gbm", "version": "v7"}
    assert body["legs_guarded"] == 3
    assert body["uptime_s"] == 12.5


@pytest.mark.parametrize("state, code, word", [
    (dict(ari_connected=False), 503, "down"),
    (dict(detector_up=False, detector_name=None), 503, "down"),
    (dict(redis_connected=False, redis_error="authentication failed"), 200, "degraded"),
])
def test_health_is_503_without_ari_or_detector_and_degraded_without_redis(state, code, word):
    s = ServiceStatus(**{**UP.__dict__, **state})
    status, text, _ = serve(s, lambda base: fetch(base + "/health"))
    body = json.loads(text)
    assert (status, body["status"]) == (code, word)
    if "redis_error" in state:
        assert body["redis"]["error"] == "authentication failed"


@pytest.mark.parametrize("headers", [
    {},
    bearer("wrong-token-of-some-length"),
    bearer(TOKEN[:-1]),
    bearer(TOKEN + "x"),
    {"Authorization": TOKEN},
    {"Authorization": f"Basic {TOKEN}"},
])
def test_metrics_refuses_a_missing_or_wrong_token_with_401(headers):
    status, text, resp_headers = serve(UP, lambda base: fetch(base + "/metrics", headers))
    assert status == 401
    assert resp_headers["WWW-Authenticate"].startswith("Bearer")
    assert "callguard_" not in text
    assert metrics.get("http_auth_failures") == 1


def test_metrics_with_the_token_is_prometheus_text_with_the_service_state():
    metrics.inc("media_unknown_source_packets", 7)
    metrics.inc(metrics.VERDICT_PREFIX + "spoof", 2)
    metrics.inc(metrics.VERDICT_PREFIX + "suspicious")
    for s in (0.03, 0.3, 0.3, 3.0):
        metrics.observe_verdict_latency(s)
    status, text, headers = serve(UP, lambda base: fetch(base + "/metrics", bearer(TOKEN)))
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("callguard_legs_guarded", ())] == 3
    assert samples[("callguard_chunks_scored_total", ())] == 11
    assert samples[("callguard_chunks_shed_total", ())] == 2
    assert samples[("callguard_chunks_errored_total", ())] == 1
    assert samples[("callguard_scoring_queue_depth", ())] == 4
    assert samples[("callguard_spool_messages", ())] == 5
    assert samples[("callguard_ari_connected", ())] == 1
    assert samples[("callguard_redis_connected", ())] == 1
    assert samples[("callguard_media_unknown_source_packets_total", ())] == 7
    assert samples[("callguard_verdicts_total", (("verdict", "spoof"),))] == 2
    assert samples[("callguard_verdicts_total", (("verdict", "suspicious"),))] == 1
    assert samples[("callguard_detector_info", (("name", "gbm"), ("version", "v7")))] == 1
    assert samples[("callguard_verdict_latency_seconds_count", ())] == 4
    assert samples[("callguard_verdict_latency_seconds_bucket", (("le", "0.05"),))] == 1
    assert samples[("callguard_verdict_latency_seconds_bucket", (("le", "0.5"),))] == 3
    assert samples[("callguard_verdict_latency_seconds_bucket", (("le", "+Inf"),))] == 4
    assert samples[("callguard_verdict_latency_seconds_sum", ())] == pytest.approx(3.63)


def test_metrics_follow_the_state_between_scrapes():
    state = {"legs": 0}

    def status() -> ServiceStatus:
        return ServiceStatus(**{**UP.__dict__, "legs_guarded": state["legs"], "ari_connected": state["legs"] > 0})

    async def scenario(base: str) -> list[str]:
        out = []
        for legs in (0, 2):
            state["legs"] = legs
            out.append((await fetch(base + "/metrics", bearer(TOKEN)))[1])
        return out

    first, second = serve(status, scenario)
    assert "callguard_legs_guarded 0.0" in first and "callguard_ari_connected 0.0" in first
    assert "callguard_legs_guarded 2.0" in second and "callguard_ari_connected 1.0" in second


def test_without_a_token_metrics_is_403_and_start_up_says_how_to_set_one(caplog):
    caplog.set_level(logging.INFO, logger="plugin.http")

    async def scenario(base: str) -> tuple:
        return (await fetch(base + "/metrics"), await fetch(base + "/metrics", bearer("anything-at-all-here")),
                await fetch(base + "/health"))

    (s1, t1, _), (s2, _, _), (s3, _, _) = serve(UP, scenario, token="")
    assert (s1, s2, s3) == (403, 403, 200)
    assert "CALLGUARD_HTTP_TOKEN" in t1
    hints = [r for r in caplog.records if "CALLGUARD_HTTP_TOKEN" in r.getMessage()]
    assert len(hints) == 1 and hints[0].levelno == logging.WARNING


def test_every_other_path_needs_the_token_too():
    async def scenario(base: str) -> list[int]:
        codes = []
        for path, method in (("/", "GET"), ("/dashboard", "GET"), ("/health", "POST"), ("/metrics", "POST")):
            codes.append((await fetch(base + path, method=method))[0])
        codes.append((await fetch(base + "/dashboard", bearer(TOKEN)))[0])
        codes.append((await fetch(base + "/", bearer(TOKEN)))[0])
        return codes

    assert serve(UP, scenario) == [401, 401, 401, 401, 404, 404]


def test_a_port_in_use_is_one_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(RuntimeError, match=rf"http: cannot listen on 127.0.0.1:{port} \(port in use\)"):
            serve(UP, lambda base: fetch(base + "/health"), port=port)


def test_http_config_defaults_env_token_and_disabling():
    base = {"ari": {"password": "x"}}
    cfg = parse_config(base, env={}, check_port=False).http
    assert (cfg.enabled, cfg.bind_host, cfg.port, cfg.token) == (True, "127.0.0.1", 9310, "")
    cfg = parse_config({**base, "http": {"port": 0}}, env={"CALLGUARD_HTTP_TOKEN": TOKEN,
                                                          "CALLGUARD_HTTP_ENABLED": "false"}, check_port=False).http
    assert (cfg.enabled, cfg.port, cfg.token) == (False, 0, TOKEN)
    assert TOKEN not in repr(cfg)
    with pytest.raises(ConfigError, match="http.enabled: expected true or false"):
        parse_config({**base, "http": {"enabled": "maybe"}}, env={}, check_port=False)
    with pytest.raises(ConfigError, match="http.port: out of range"):
        parse_config({**base, "http": {"port": 70000}}, env={}, check_port=False)


def test_a_short_token_is_refused_without_echoing_it():
    short = "abc123secret"
    with pytest.raises(ConfigError) as err:
        parse_config({"ari": {"password": "x"}, "http": {"token": short}}, env={}, check_port=False)
    assert "http.token: too short" in str(err.value) and short not in str(err.value)


def test_the_service_keeps_going_when_its_http_port_is_taken(caplog):
    from plugin.service import Service

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = parse_config({"ari": {"password": "x"}, "http": {"port": port, "token": TOKEN}}, env={},
                           check_port=False)
        service = Service(cfg)
        asyncio.run(service._start_http())
    assert service.http is not None and service.http.address is None
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"cannot listen on 127.0.0.1:{port} (port in use)" in e and "still guarded" in e for e in errors)
