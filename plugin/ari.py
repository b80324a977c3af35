"""Thin asyncio ARI client: REST calls and the events websocket, with reconnect and event waits.

Rules learnt on Asterisk 16.28 (see docs/plugin.md):
- register a wait for an event *before* the request that triggers it (``expect`` returns a future
  immediately; events may arrive before the HTTP reply);
- subscribe explicitly (``subscribe('channel:ID', 'bridge:ID')``): ``subscribeAll`` is unreliable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

Event = dict[str, Any]
Handler = Callable[[Event], Awaitable[None] | None]


class AriError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"ARI {method} {path} -> {status}: {body[:200]}")
        self.status = status


# What one ARI REST request can raise when Asterisk answers badly or the connection is gone
REQUEST_FAILURES: tuple[type[BaseException], ...] = (AriError, aiohttp.ClientError, OSError, TimeoutError)


class AriClient:
    def __init__(self, url: str, username: str, password: str, app: str, *,
                 timeout: float = 10.0, max_backoff: float = 2.0, connect_timeout: float = 4.0,
                 tls_ca_file: str = "") -> None:
        self.base = url.rstrip("/") + "/ari"  # https:// -> the events websocket is wss://
        # https: verify Asterisk's certificate and host name against tls_ca_file (default: system CAs)
        self._ssl: ssl.SSLContext | None = (ssl.create_default_context(cafile=tls_ca_file or None)
                                            if url.startswith("https://") else None)
        self.app = app
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}  # never logged
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # reconnect delays double from 0.2 s up to max_backoff (with +-20 % jitter): with the default 2 s the
        # events websocket is back at most ~2.4 s + one handshake after Asterisk answers again
        self._max_backoff = max_backoff
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None
        self._ws_task: asyncio.Task[None] | None = None
        self._handlers: list[Handler] = []
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []
        self._connected = asyncio.Event()
        self._on_connect: list[Callable[[], Awaitable[None]]] = []
        self._closing = False
        self._cb_tasks: set[asyncio.Task[None]] = set()
        self.reconnects = 0
        self.lost_at: float | None = None  # time.time() when the events websocket was lost (None: connected)
        self.last_gap_s: float | None = None  # length of the last gap without events, once reconnected

    # ------------------------------------------------------------------ lifecycle
    async def start(self, wait: float | None = 10.0) -> None:
        connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout, connector=connector)
        self._ws_task = asyncio.create_task(self._ws_loop(), name="ari-events")
        if wait:
            await asyncio.wait_for(self._connected.wait(), wait)

    async def close(self) -> None:
        self._closing = True
        if self._ws_task:
            self._ws_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ws_task
        if self._session:
            await self._session.close()
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def on_event(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def on_connect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Called after every (re)connection of the events websocket, e.g. to resynchronise state."""
        self._on_connect.append(callback)

    # ------------------------------------------------------------------ REST
    async def request(self, method: str, path: str, *, ok_missing: bool = False,
                      **params: Any) -> Any:
        """One REST call; ``params`` become the query string (None values are left out)."""
        assert self._session is not None, "start() first"
        query = {k: _qs(v) for k, v in params.items() if v is not None}
        async with self._session.request(method, self.base + path, params=query) as resp:
            text = await resp.text()
            if resp.status == 404 and ok_missing:
                return None
            if resp.status >= 300:
                raise AriError(resp.status, method, path, text)
            if not text:
                return None
            try:
                return json.loads(text)
            except ValueError:
                return text

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, **params)

    async def post(self, path: str, **params: Any) -> Any:
        return await self.request("POST", path, **params)

    async def delete(self, path: str, **params: Any) -> Any:
        return await self.request("DELETE", path, ok_missing=True, **params)

    async def subscribe(self, *sources: str) -> None:
        await self.post(f"/applications/{self.app}/subscription", eventSource=",".join(sources))

    async def unsubscribe(self, *sources: str) -> None:
        with contextlib.suppress(AriError):
            await self.request("DELETE", f"/applications/{self.app}/subscription",
                               eventSource=",".join(sources))

    async def get_var(self, channel_id: str, name: str) -> str | None:
        try:
            res = await self.get(f"/channels/{channel_id}/variable", variable=name)
        except AriError as exc:
            if exc.status == 404:
                return None
            raise
        return res.get("value") if isinstance(res, dict) else None

    # ------------------------------------------------------------------ events
    def expect(self, predicate: Callable[[Event], bool]) -> asyncio.Future[Event]:
        """A future resolved by the first event matching ``predicate``; register before the request."""
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, fut))
        return fut

    async def wait(self, fut: asyncio.Future[Event], timeout: float) -> Event:
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters = [(p, f) for p, f in self._waiters if f is not fut]

    async def _on_text(self, data: str) -> None:
        """One text message from the events websocket: a JSON object is dispatched; anything else (not JSON,
        nested too deep for the parser, an array or a number) is logged and dropped, never raised."""
        try:
            event = json.loads(data)
        except (ValueError, RecursionError):
            log.warning("ARI sent a non-JSON event (%d characters)", len(data))
            return
        if not isinstance(event, dict):
            log.warning("ARI sent a JSON %s instead of an event object", type(event).__name__)
            return
        await self._dispatch(event)

    async def _dispatch(self, event: Event) -> None:
        keep = []
        for pred, fut in self._waiters:
            if fut.done():
                continue
            try:
                hit = pred(event)
            except Exception:  # a bad predicate must not kill the event loop
                hit = False
            if hit:
                fut.set_result(event)
            else:
                keep.append((pred, fut))
        self._waiters = keep
        for handler in list(self._handlers):
            try:
                res = handler(event)
                if asyncio.iscoroutine(res):
                    await res
            except Exception:
                log.exception("ARI event handler failed on %.80s", event.get("type"))

    async def _run_callback(self, cb: Callable[[], Awaitable[None]]) -> None:
        try:
            await cb()
        except Exception:
            log.exception("ARI on-connect callback failed")

    async def _ws_loop(self) -> None:
        assert self._session is not None
        ws_url = self.base.replace("http", "ws", 1) + "/events"
        backoff = 0.2
        attempts = 0
        while not self._closing:
            up_since = None
            try:
                attempts += 1
                # bounded handshake: an Asterisk that accepts TCP but is still booting must not stall us
                ws = await asyncio.wait_for(
                    self._session.ws_connect(ws_url, params={"app": self.app}, heartbeat=20,
                                             timeout=aiohttp.ClientWSTimeout(ws_close=5)),
                    self._connect_timeout)
                async with ws:
                    up_since = time.monotonic()
                    if self.lost_at is not None:
                        self.last_gap_s = time.time() - self.lost_at
                        log.warning("ARI events reconnected after a gap of %.2f s (%d attempt(s)); app %s "
                                    "registered again", self.last_gap_s, attempts, self.app)
                        self.lost_at = None
                    else:
                        log.info("ARI events connected (app %s)", self.app)
                    attempts = 0
                    self._connected.set()
                    for cb in self._on_connect:
                        task = asyncio.create_task(self._run_callback(cb))
                        self._cb_tasks.add(task)
                        task.add_done_callback(self._cb_tasks.discard)
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await self._on_text(msg.data)
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
            except asyncio.CancelledError:
                raise
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                if attempts <= 1 or attempts % 10 == 0:
                    log.warning("ARI events connection failed (%s); retrying in %.1f s", _why(exc), backoff)
            was_up = self._connected.is_set()
            self._connected.clear()
            if self._closing:
                break
            if was_up:
                self.lost_at = time.time()
                log.warning("ARI events connection lost (app %s): reconnecting", self.app)
            if up_since is not None and time.monotonic() - up_since > 5.0:
                backoff = 0.2  # a connection that lived a while: start over with short delays
            self.reconnects += 1
            await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
            backoff = min(backoff * 2, self._max_backoff)

def _why(exc: BaseException) -> str:
    """A failed events connection in a few words (never the credentials)."""
    status = getattr(exc, "status", None)
    if isinstance(exc, aiohttp.WSServerHandshakeError) and status == 401:
        return "401: Asterisk refused ari.username / ari.password"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS: Asterisk's certificate is not trusted (set ari.tls_ca_file)"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed (is ari.url https:// on a TLS port?)"
    return f"{exc.__class__.__name__} {status}" if status else exc.__class__.__name__


def _qs(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
