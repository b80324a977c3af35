"""Assemble and run the live service (used by `callguard serve` and `callguard lab`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from plugin import redis_conn
from plugin.ari import AriClient
from plugin.asterisk import AsteriskAdapter
from plugin.bus import Bus
from plugin.config import Config, redact_url
from plugin.esl import EslClient
from plugin.freeswitch import EVENTS as FREESWITCH_EVENTS
from plugin.freeswitch import FreeSwitchAdapter
from plugin.guard import Guard
from plugin.http import HttpServer
from plugin.media import MediaEndpoint
from plugin.metrics import ServiceStatus
from plugin.reactions import Reactor
from plugin.redis_conn import RedisTls
from plugin.scoring import make_scoring

log = logging.getLogger(__name__)


class Service:
    STATUS_MAX_AGE_S = 1.0  # /health and /metrics share one Redis PING per second at most

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started_at = time.monotonic()
        self.media = MediaEndpoint()
        self.scoring = make_scoring(config)  # local process pool, or remote workers ([detector] mode = "redis")
        r = config.redis
        self.redis_tls = RedisTls.from_config(r)
        self.bus = Bus(r.url, r.password, r.channel, r.stream, r.stream_maxlen, r.spool_path, r.spool_max_bytes,
                       r.summary_log, tls=self.redis_tls)
        a = config.ari
        self.ari = AriClient(a.url, a.username, a.password, a.app, tls_ca_file=a.tls_ca_file)
        f = config.freeswitch  # [telephony] kind = "freeswitch": the Event Socket instead of ARI
        self.esl = (EslClient(f.host, f.port, f.password, events=FREESWITCH_EVENTS, event_format=f.event_format)
                    if config.telephony.kind == "freeswitch" else None)
        self.http = HttpServer(config.http, self.status) if config.http.enabled else None
        self._redis_state: tuple[float, bool, str | None] = (float("-inf"), False, "not checked yet")
        self._status_lock = asyncio.Lock()
        self.adapter: AsteriskAdapter | FreeSwitchAdapter | None = None
        self.guard: Guard | None = None
        self.reactor: Reactor | None = None

    async def start(self) -> None:
        await self._start_http()  # first, so /health answers (503) while the detector loads
        m = self.config.media
        host, port = await self.media.start(m.bind_host, m.port)
        log.info("media endpoint on udp %s:%d (%s)", host, port, m.format)
        await self.scoring.start()
        r = self.config.redis
        problem = await self._check_redis()
        if problem:
            log.error("Redis at %s: %s; bus messages are spooled to %s until it answers", redact_url(r.url),
                      problem, r.spool_path)
        await self.bus.start()
        self.adapter = self._make_adapter((m.external_host or host, port))
        self.guard = Guard(self.config, self.adapter, self.media, self.scoring, self.bus)
        self.reactor = Reactor(r.url, r.password, r.channel, self.adapter, self.config.policies,
                               tls=self.redis_tls)
        self.bus.on_undelivered = self.reactor.handle  # react locally while Redis is away
        await self.reactor.start()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.reactor.subscribed.wait(), 5)
        await self.adapter.start(self.guard)
        if self.esl is not None:
            log.info("callguard guarding FreeSWITCH calls via the event socket at %s:%d", self.esl.host,
                     self.esl.port)
        else:
            log.info("callguard serving ARI app %r at %s", self.config.ari.app, self.config.ari.url)

    def _make_adapter(self, media_addr: tuple[str, int]) -> AsteriskAdapter | FreeSwitchAdapter:
        if self.esl is None:
            return AsteriskAdapter(self.ari, media_addr, self.config.media.format)
        f = self.config.freeswitch
        return FreeSwitchAdapter(self.esl, media_addr, self.media, unicast_ip=f.unicast_ip,
                                 unicast_ports=(f.unicast_port_min, f.unicast_port_max),
                                 unicast_format=f.unicast_format, tap_context=f.tap_context,
                                 guard_variable=f.guard_variable)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.adapter:
            await self.adapter.close()
        if self.reactor:
            await self.reactor.close()
        await self.scoring.close()
        await self.bus.close()
        self.media.close()

    # ------------------------------------------------------------------ status for /health and /metrics
    async def _start_http(self) -> None:
        """Start the HTTP endpoint; failing to (port taken) is logged, not fatal: guarding calls matters more."""
        if self.http is None:
            return
        try:
            await self.http.start()
        except RuntimeError as exc:
            log.error("%s: /health and /metrics are not served; calls are still guarded (set http.port, or "
                      "http.enabled = false)", exc)

    async def _check_redis(self) -> str | None:
        problem = await redis_conn.check(self.bus.redis, timeout=1.5)
        self._redis_state = (time.monotonic(), problem is None, problem)
        return problem

    async def status(self) -> ServiceStatus:
        """The service's state now; the Redis PING result is reused for ``STATUS_MAX_AGE_S``."""
        async with self._status_lock:
            if time.monotonic() - self._redis_state[0] > self.STATUS_MAX_AGE_S:
                await self._check_redis()
        _, redis_ok, redis_error = self._redis_state
        info = self.scoring.info
        spool = await asyncio.to_thread(len, self.bus.spool)  # reads the spool file: off the event loop
        return ServiceStatus(
            ari_connected=(self.esl or self.ari).connected, redis_connected=redis_ok, redis_error=redis_error,
            detector_up=info is not None, detector_name=info.name if info else None,
            detector_version=info.version if info else None,
            legs_guarded=len(self.guard.legs) if self.guard else 0, chunks_scored=self.scoring.scored,
            chunks_shed=self.scoring.shed, chunks_errored=self.scoring.errors, queue_depth=self.scoring.queued,
            spool_length=spool, uptime_s=time.monotonic() - self.started_at)


async def run_forever(config: Config, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    service = Service(config)
    try:
        await service.start()
        await stop.wait()
        log.info("stopping")
    finally:
        await service.close()
