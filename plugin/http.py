"""The plugin's HTTP endpoint: ``GET /health`` (no auth) and ``GET /metrics`` (bearer token).

- ``/health`` answers JSON about ARI, Redis, the detector and the guarded legs; 200 when ARI is connected
  and the detector is loaded (Redis down only degrades: messages are spooled), 503 otherwise.
- Every other path, ``/metrics`` included, needs ``Authorization: Bearer <http.token>``: 401 without or
  with a wrong token, 403 for everyone while no token is configured. Tokens are compared in constant
  time; they are never logged (there is no access log: health checks would flood it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from plugin import metrics
from plugin.config import HttpConfig
from plugin.metrics import ServiceStatus

log = logging.getLogger(__name__)

StatusSource = Callable[[], Awaitable[ServiceStatus]]
OPEN_PATHS = frozenset({"/health"})
NO_TOKEN_HINT = "set http.token in the config file or CALLGUARD_HTTP_TOKEN (e.g. `openssl rand -hex 32`)"


def _digest(value: str) -> bytes:
    # hashing first makes the comparison independent of the token's length as well as its content
    return hashlib.sha256(value.encode()).digest()


def health_body(s: ServiceStatus) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body for /health."""
    up = s.ari_connected and s.detector_up
    body = {
        "status": ("ok" if s.redis_connected else "degraded") if up else "down",
        "ari": {"connected": s.ari_connected},
        "redis": {"connected": s.redis_connected, "error": s.redis_error},
        "detector": {"up": s.detector_up, "name": s.detector_name, "version": s.detector_version},
        "legs_guarded": s.legs_guarded,
        "uptime_s": round(s.uptime_s, 3),
    }
    return (200 if up else 503), body


class HttpServer:
    def __init__(self, config: HttpConfig, status: StatusSource) -> None:
        self.config = config
        self._status = status
        self._token_digest = _digest(config.token) if config.token else None
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> tuple[str, int]:
        """Listen on ``bind_host:port`` (port 0: any free port); returns the address actually bound."""
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.bind_host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            reason = "port in use" if exc.errno == 98 else exc.strerror
            raise RuntimeError(f"http: cannot listen on {self.config.bind_host}:{self.config.port} "
                               f"({reason})") from None
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.address = (str(host), int(port))
        log.info("http endpoint on http://%s:%d (/health open, /metrics with bearer token)", *self.address)
        if self._token_digest is None:
            log.warning("http: no token configured, /metrics answers 403: %s", NO_TOKEN_HINT)
        return self.address

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ auth
    def authorized(self, header: str | None) -> bool:
        if self._token_digest is None or not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(_digest(value.strip()), self._token_digest)

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path in OPEN_PATHS and request.method in ("GET", "HEAD"):
            return await handler(request)
        if self._token_digest is None:
            return web.json_response({"error": f"forbidden: no token configured; {NO_TOKEN_HINT}"}, status=403)
        if not self.authorized(request.headers.get("Authorization")):
            metrics.inc("http_auth_failures")
            log.debug("http: %s %s refused (missing or wrong token) from %s", request.method, request.path,
                      request.remote)
            return web.json_response({"error": "unauthorized: Authorization: Bearer <token> required"},
                                     status=401, headers={"WWW-Authenticate": 'Bearer realm="callguard"'})
        return await handler(request)

    # ------------------------------------------------------------------ handlers
    async def _health(self, request: web.Request) -> web.Response:
        code, body = health_body(await self._status())
        return web.json_response(body, status=code, headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        text = metrics.render(await self._status())
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
