"""Assemble and run the live service (used by `callguard serve` and `callguard lab`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from plugin.ari import AriClient
from plugin.asterisk import AsteriskAdapter
from plugin.bus import Bus
from plugin.config import Config
from plugin.guard import Guard
from plugin.media import MediaEndpoint
from plugin.reactions import Reactor
from plugin.scoring import ScoringService

log = logging.getLogger(__name__)


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.media = MediaEndpoint()
        det = config.detector
        self.scoring = ScoringService(det.name, det.models_dir, workers=det.workers, queue_size=det.queue_size,
                                      loader=det.loader)
        r = config.redis
        self.bus = Bus(r.url, r.password, r.channel, r.stream, r.stream_maxlen, r.spool_path, r.spool_max_bytes,
                       r.summary_log)
        a = config.ari
        self.ari = AriClient(a.url, a.username, a.password, a.app)
        self.adapter: AsteriskAdapter | None = None
        self.guard: Guard | None = None
        self.reactor: Reactor | None = None

    async def start(self) -> None:
        m = self.config.media
        host, port = await self.media.start(m.bind_host, m.port)
        log.info("media endpoint on udp %s:%d (%s)", host, port, m.format)
        await self.scoring.start()
        await self.bus.start()
        self.adapter = AsteriskAdapter(self.ari, (m.external_host or host, port), m.format)
        self.guard = Guard(self.config, self.adapter, self.media, self.scoring, self.bus)
        r = self.config.redis
        self.reactor = Reactor(r.url, r.password, r.channel, self.adapter, self.config.policies)
        await self.reactor.start()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.reactor.subscribed.wait(), 5)
        await self.adapter.start(self.guard)
        log.info("callguard serving ARI app %r at %s", self.config.ari.app, self.config.ari.url)

    async def close(self) -> None:
        if self.adapter:
            await self.adapter.close()
        if self.reactor:
            await self.reactor.close()
        await self.scoring.close()
        await self.bus.close()
        self.media.close()


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
