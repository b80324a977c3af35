"""The plugin's HTTP endpoint: ``GET /health`` (no auth), ``GET /metrics`` (bearer token) and, when one is
attached, the admin dashboard (``plugin.dashboard``).

- ``/health`` answers JSON about ARI, Redis, the detector and the guarded legs; 200 when ARI is connected
  and the detector is loaded (Redis down only degrades: messages are spooled), 503 otherwise.
- Every other path, ``/metrics`` included, needs ``Authorization: Bearer <http.token>``: 401 without or
  with a wrong token, 403 for everyone while no token is configured. Tokens are compared in constant
  time; they are never logged (there is no access log: health checks would flood it).
- With the dashboard attached, a browser logs in once at ``/dashboard/login`` (open: a form asking for the
  token) and then carries a session cookie (``Sessions``): HttpOnly, SameSite=Strict, its value an expiry
  time and an HMAC keyed by a key derived from the token, never the token itself, so changing the token
  ends every session. The cookie is accepted wherever the bearer header is; a state-changing request
  (anything but GET/HEAD/OPTIONS) made with the cookie must also carry ``X-Callguard-Request: 1`` or a JSON
  body, and an ``Origin`` header, when present, must be this server's (CSRF). An unauthenticated GET of a
  dashboard page is redirected to the login page; API paths answer 401 as before.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from plugin import metrics
from plugin.config import HttpConfig
from plugin.metrics import ServiceStatus

if TYPE_CHECKING:
    from plugin.dashboard import Dashboard

log = logging.getLogger(__name__)

StatusSource = Callable[[], Awaitable[ServiceStatus]]
OPEN_PATHS = frozenset({"/health"})
NO_TOKEN_HINT = "set http.token in the config file or CALLGUARD_HTTP_TOKEN (e.g. `openssl rand -hex 32`)"
LOGIN_PATH = "/dashboard/login"
SESSION_COOKIE = "callguard_session"
CSRF_HEADER = "X-Callguard-Request"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _digest(value: str) -> bytes:
    # hashing first makes the comparison independent of the token's length as well as its content
    return hashlib.sha256(value.encode()).digest()


class Sessions:
    """Stateless dashboard sessions. A session is ``v1.<expiry, unix seconds>.<hex HMAC-SHA256>`` over
    ``v1.<expiry>``, keyed with HMAC(token, a fixed label): it reveals nothing about the token, cannot be
    forged or extended without it, and every session ends when the token changes or at its expiry."""

    VERSION = "v1"

    def __init__(self, token: str, ttl_s: float = 12 * 3600, clock: Callable[[], float] = time.time) -> None:
        if not token:
            raise ValueError("sessions need a token")
        self._key = hmac.new(token.encode(), b"callguard dashboard session key/1", hashlib.sha256).digest()
        self.ttl_s = float(ttl_s)
        self.clock = clock

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        payload = f"{self.VERSION}.{int(self.clock() + self.ttl_s)}"
        return f"{payload}.{self._mac(payload)}"

    def expiry(self, value: str | None) -> int | None:
        """The session's expiry time when ``value`` is a valid, unexpired session; else None."""
        if not value or len(value) > 128:
            return None
        version, _, rest = value.partition(".")
        expires, _, mac = rest.partition(".")
        if version != self.VERSION or not expires.isascii() or not expires.isdigit() or len(expires) > 12:
            return None
        if not hmac.compare_digest(self._mac(f"{version}.{expires}").encode(), mac.encode()):
            return None
        now = self.clock()
        if not now < int(expires) <= now + self.ttl_s + 60:  # expired, or minted with a longer ttl than now set
            return None
        return int(expires)

    def valid(self, value: str | None) -> bool:
        return self.expiry(value) is not None


def same_origin(request: web.Request) -> bool:
    """False when the request's ``Origin`` names another site (or is the opaque ``null``); True when it is
    this server's or absent (then not a cross-site browser request announcing itself; SameSite=Strict
    keeps the session cookie off cross-site requests anyway)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == (request.host or "").lower()


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
    def __init__(self, config: HttpConfig, status: StatusSource, dashboard: Dashboard | None = None,
                 session_ttl_s: float = 12 * 3600) -> None:
        self.config = config
        self._status = status
        self._token_digest = _digest(config.token) if config.token else None
        self.dashboard = dashboard
        self.sessions = Sessions(config.token, session_ttl_s) if config.token and dashboard is not None else None
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        if self.dashboard is not None:
            self.dashboard.attach(app, self)
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
        log.info("http endpoint on http://%s:%d (/health open, /metrics with bearer token%s)", *self.address,
                 ", dashboard at /dashboard" if self.dashboard is not None else "")
        if self._token_digest is None:
            log.warning("http: no token configured, /metrics answers 403: %s", NO_TOKEN_HINT)
        return self.address

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ auth
    def token_ok(self, value: str | None) -> bool:
        """Is ``value`` the configured token? Constant time (digests compared); False without a token."""
        if self._token_digest is None or not value:
            return False
        return hmac.compare_digest(_digest(value), self._token_digest)

    def authorized(self, header: str | None) -> bool:
        if self._token_digest is None or not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return self.token_ok(value.strip())

    def session_ok(self, request: web.Request) -> bool:
        return self.sessions is not None and self.sessions.valid(request.cookies.get(SESSION_COOKIE))

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path in OPEN_PATHS and request.method in ("GET", "HEAD"):
            return await handler(request)
        if self._token_digest is None:
            return web.json_response({"error": f"forbidden: no token configured; {NO_TOKEN_HINT}"}, status=403)
        if self.dashboard is not None and request.path == LOGIN_PATH and request.method in ("GET", "HEAD", "POST"):
            return await handler(request)  # the login form checks the token itself
        if self.authorized(request.headers.get("Authorization")):
            return await handler(request)
        if self.session_ok(request):
            if request.method not in SAFE_METHODS:
                if not same_origin(request):
                    metrics.inc("http_csrf_refused")
                    return web.json_response({"error": "forbidden: cross-origin request"}, status=403)
                if request.headers.get(CSRF_HEADER) != "1" and request.content_type != "application/json":
                    metrics.inc("http_csrf_refused")
                    return web.json_response(
                        {"error": f"forbidden: a {request.method} with the session cookie needs the header "
                                  f"{CSRF_HEADER}: 1 or a JSON body"}, status=403)
            return await handler(request)
        if (self.dashboard is not None and request.method in ("GET", "HEAD")
                and (request.path == "/dashboard" or request.path.startswith("/dashboard/"))):
            raise web.HTTPFound(LOGIN_PATH)  # a browser navigating: send it to the login form
        metrics.inc("http_auth_failures")
        log.debug("http: %s %s refused (missing or wrong token) from %s", request.method, request.path,
                  request.remote)
        return web.json_response({"error": "unauthorized: Authorization: Bearer <token> required"},
                                 status=401, headers={"WWW-Authenticate": 'Bearer realm="callguard"'})

    # ------------------------------------------------------------------ handlers
    async def _health(self, request: web.Request) -> web.Response:
        code, body = health_body(await self._status())
        return web.json_response(body, status=code, headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        text = metrics.render(await self._status())
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
