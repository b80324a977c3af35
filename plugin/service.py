"""Assemble and run the live service (used by `callguard serve` and `callguard lab`)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import time
from typing import Any

from plugin import redis_conn
from plugin.ari import AriClient
from plugin.asterisk import AsteriskAdapter
from plugin.bus import Bus
from plugin.config import Config, redact_url
from plugin.dashboard import Dashboard
from plugin.esl import EslClient
from plugin.freeswitch import EVENTS as FREESWITCH_EVENTS
from plugin.freeswitch import FreeSwitchAdapter
from plugin.guard import Guard
from plugin.http import HttpServer
from plugin.media import MediaEndpoint
from plugin.metrics import ServiceStatus
from plugin.reactions import Reactor
from plugin.redis_conn import RedisTls
from plugin.scoring import ReloadError, ScoringService, make_scoring

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
        # the admin dashboard (issue #9) is served with the HTTP endpoint whenever a token protects it
        self.dashboard = Dashboard(
            legs=lambda: self.guard.legs if self.guard is not None else None,  # the guard is made in start()
            detector=lambda: self.scoring.info,
            review_dir=getattr(config.capture, "dir", None),
            models_dir=self._models_dir(),
        ) if config.http.enabled and config.http.token else None
        if self.dashboard is not None:
            self.bus.listeners.append(self.dashboard.feed)  # the verdict feed
        self.http = HttpServer(config.http, self.status, dashboard=self.dashboard) if config.http.enabled else None
        self._redis_state: tuple[float, bool, str | None] = (float("-inf"), False, "not checked yet")
        self._status_lock = asyncio.Lock()
        self.adapter: AsteriskAdapter | FreeSwitchAdapter | None = None
        self.guard: Guard | None = None
        self.reactor: Reactor | None = None
        self._model_watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._start_http()  # first, so /health answers (503) while the detector loads
        m = self.config.media
        host, port = await self.media.start(m.bind_host, m.port)
        log.info("media endpoint on udp %s:%d (%s)", host, port, m.format)
        versions, installed = await self._installed_version()  # before loading: a promotion meanwhile is seen
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
        if versions is not None:
            self._model_watch = asyncio.create_task(self._watch_models(versions, installed), name="model-watch")
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
        if self._model_watch is not None:
            self._model_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._model_watch
            self._model_watch = None
        if self.http is not None:
            await self.http.close()
        if self.adapter:
            await self.adapter.close()
        if self.reactor:
            await self.reactor.close()
        await self.scoring.close()
        if self.guard is not None:  # the review store's writer thread: what is queued is written (<= 5 s)
            await asyncio.to_thread(self.guard.capture.close)
        await self.bus.close()
        self.media.close()

    # ------------------------------------------------------------------ hot reload of the detector (issue #9)
    def _models_dir(self) -> str:
        from detector.scoring import DEFAULT_MODELS_DIR

        return self.config.detector.models_dir or str(DEFAULT_MODELS_DIR)

    async def _installed_version(self) -> tuple[Any, Any]:
        """(the ``detector.versions`` module, the version installed now), or (None, None) when hot reload is
        off: ``[detector] reload_interval_s = 0``, remote scoring (the workers reload themselves) or the
        wavlm detector (its model is not versioned)."""
        det = self.config.detector
        if det.reload_interval_s <= 0 or not isinstance(self.scoring, ScoringService) or det.name == "wavlm":
            return None, None
        try:  # imports the feature code (about a second): off the event loop
            versions = await asyncio.to_thread(importlib.import_module, "detector.versions")
            return versions, await asyncio.to_thread(versions.current_version, self._models_dir())
        except Exception as exc:  # fail open: no hot reload, scoring goes on
            log.error("hot reload of the detector is off: %s: %s", exc.__class__.__name__, exc)
            return None, None

    async def _watch_models(self, versions: Any, last: Any) -> None:
        """Poll ``<models_dir>/versions/current``; on each change load the new model in new workers and
        switch to it (``ScoringService.reload``; the guard refreshes the thresholds of live legs)."""
        det = self.config.detector
        models_dir = self._models_dir()
        log.info("watching %s for new model versions every %g s (installed: %s)", models_dir,
                 det.reload_interval_s, last.name if last else "none")
        while True:
            try:
                async for version in versions.watch_versions(models_dir, det.reload_interval_s, last):
                    last = version
                    if await asyncio.to_thread(_holds_running_model, version.path, self.scoring.info):
                        # e.g. the first `retrain` snapshots the model in place as the first version
                        log.info("model version %s installed in %s holds the model already running: no reload",
                                 version.name, models_dir)
                        continue
                    log.info("model version %s installed in %s: reloading the detector", version.name, models_dir)
                    try:
                        await self.scoring.reload()
                    except ReloadError:
                        pass  # logged and counted by reload(); the detector loaded before keeps serving
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the watcher die silently
                log.exception("model version watcher failed; retrying")
                await asyncio.sleep(det.reload_interval_s)

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


def _holds_running_model(version_dir: Any, info: Any) -> bool:
    """True when a version's GBM calibration names the model version the service is already scoring with."""
    import json

    try:
        cal = json.loads((version_dir / "gbm.calibration.json").read_text())
    except (OSError, ValueError):
        return False
    return info is not None and info.name == "gbm" and cal.get("version") == info.version


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
