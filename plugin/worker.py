"""Remote chunk scoring: a worker that consumes the plugin's chunk stream through a Redis consumer group.

Run any number of ``callguard worker --config FILE`` processes, on any machines that reach the Redis of
``[redis]``; each loads the detector of ``[detector]`` once and scores one chunk at a time (one core):

* ``XREADGROUP`` takes the next chunk of the stream ``detector.stream`` for group ``detector.group``;
* the result (``id``, ``score`` or ``error``, ``worker``, ``scoring_s``, ``deliveries``, ``skipped``) is
  ``XADD``-ed to the results stream named in the chunk (``reply``), and only then is the chunk
  ``XACK``-ed and ``XDEL``-eted, in one MULTI/EXEC: a worker that dies before that leaves the chunk
  pending;
* before each read, and at least every ``claim_idle_ms / 2``, ``XAUTOCLAIM`` takes over a chunk that has
  been pending with another consumer for ``claim_idle_ms`` (that worker died or hung). A chunk delivered
  more than ``MAX_DELIVERIES`` times (it killed every worker that tried it) is answered as skipped, not
  scored again;
* a consumer with nothing pending that has not read for ``REAP_IDLE_MS`` (a worker that died after its
  chunks were claimed) is removed from the group and from ``<stream>:workers`` by the next live worker
  (``reap``, at most once a minute), and a worker that stops cleanly removes itself, so the group does not
  fill up with dead consumers as workers come and go.

A chunk can thus be scored twice (its first worker was only slow); the plugin keeps the first result and
ignores the second (``plugin.scoring.RemoteScoringService``). Workers announce the detector they serve
(name, version, thresholds) in the hash ``<stream>:detector``, which the plugin reads at start; each result
names it too (field ``detector``, JSON).

Hot reload (issue #9, ``[detector] reload_interval_s`` > 0): a worker polls ``<models_dir>/versions/current``
like the plugin does. A newly installed model is first loaded once in a throwaway process (a broken model
file can abort the process that loads it), then in a thread of this one while chunks go on being scored;
between two chunks the worker switches to it and announces it again. A model that does not load is logged
and counted (``detector_reload_failures``) and the worker keeps the detector it has.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import secrets
import socket
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from redis.exceptions import ResponseError

from plugin import metrics
from plugin.config import ConfigError, DetectorConfig, RedisConfig, _section, check_reload_interval
from plugin.scoring import (
    check_info,
    decode_pcm16,
    detector_info,
    info_key,
    resolve_loader,
    score_chunk,
    workers_key,
)

log = logging.getLogger(__name__)

MAX_DELIVERIES = 2  # the first delivery and one claim after its worker died
RESULTS_MAXLEN = 10_000
RESULTS_TTL_S = 3600  # results streams of plugins that went away expire
REAP_IDLE_MS = 600_000  # a consumer idle this long with nothing pending is a dead worker
REAP_EVERY_S = 60.0


@dataclass(frozen=True)
class WorkerConfig:
    redis: RedisConfig
    detector: DetectorConfig


def load_worker_config(path: str | Path, env: dict[str, str] | None = None) -> WorkerConfig:
    """The ``[redis]`` and ``[detector]`` sections of a plugin config file (other sections are ignored,
    so the plugin's own file can be used), with ``CALLGUARD_<SECTION>_<KEY>`` overrides."""
    env = dict(os.environ if env is None else env)
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    redis: RedisConfig = _section("redis", raw.get("redis", {}), env)
    det: DetectorConfig = _section("detector", raw.get("detector", {}), env)
    if not redis.url.startswith(("redis://", "rediss://")):
        raise ConfigError("redis.url: expected redis://host[:port] or rediss://host[:port]")
    if not det.stream or not det.group:
        raise ConfigError("detector.stream: stream and group must not be empty")
    if det.claim_idle_ms < 1:
        raise ConfigError(f"detector.claim_idle_ms: must be >= 1, got {det.claim_idle_ms}")
    if ":" not in det.loader:
        raise ConfigError(f"detector.loader: expected 'module:function', got {det.loader!r}")
    check_reload_interval(det.reload_interval_s)
    return WorkerConfig(redis=redis, detector=det)


@dataclass
class HotReload:
    """What a worker needs to follow new model versions: where to look, how often, how to load."""

    models_dir: str
    interval_s: float
    loader: str  # "module:function" (``[detector] loader``)
    name: str  # ``[detector] name``
    installed: Any = None  # the detector.versions.ModelVersion installed when the detector was loaded

    def load(self) -> Any:
        return resolve_loader(self.loader)(self.name, self.models_dir or None)


def _probe(loader: str, name: str, models_dir: str) -> Any:
    """In a throwaway process: load the detector and return its info (a load that aborts kills only it)."""
    return detector_info(resolve_loader(loader)(name, models_dir or None))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ChunkWorker:
    """One consumer of the chunk stream, scoring with ``detector`` in this process."""

    def __init__(self, redis: Any, detector: Any, *, stream: str, group: str, consumer: str | None = None,
                 claim_idle_ms: int = 5000, block_ms: int = 1000, max_deliveries: int = MAX_DELIVERIES,
                 requested: str | None = None, reload: HotReload | None = None,
                 reap_idle_ms: int | None = None) -> None:
        self.redis, self.detector = redis, detector
        self._stamp = self._detector_field(detector)
        self.reload = reload
        self._next: Any = None  # a newly loaded detector, taken between two chunks
        self.reloads = 0
        self.reload_failures = 0
        self.requested = requested or str(detector.name)  # the [detector] name it was loaded as
        self.stream, self.group = stream, group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.claim_idle_ms, self.block_ms, self.max_deliveries = claim_idle_ms, block_ms, max_deliveries
        self._last_claim = float("-inf")
        # never below the claim time: a consumer is only forgotten well after its chunks could be claimed
        self.reap_idle_ms = max(reap_idle_ms or REAP_IDLE_MS, 2 * claim_idle_ms)
        self._last_reap = float("-inf")
        self.reaped = 0
        self.scored = 0
        self.errors = 0
        self.claimed = 0
        self.skipped = 0

    async def setup(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        info = await self.announce()
        await self.redis.hset(workers_key(self.stream), self.consumer, repr(time.time()))
        log.info("worker %s: detector %s %s on stream %r, group %r (claims chunks idle %d ms)", self.consumer,
                 info.name, info.version, self.stream, self.group, self.claim_idle_ms)

    @staticmethod
    def _detector_field(detector: Any) -> str:
        try:
            return json.dumps(asdict(detector_info(detector)))
        except Exception:  # a stand-in without thresholds: results just do not name it
            return ""

    async def announce(self) -> Any:
        """Write the detector this worker serves into ``<stream>:detector`` (the plugin reads it)."""
        info = detector_info(self.detector)
        await self.redis.hset(info_key(self.stream), mapping={
            "name": info.name, "version": info.version, "warn": repr(info.warn), "hangup": repr(info.hangup),
            "eer": repr(info.eer), "hangup_window": str(info.hangup_window or 0), "requested": self.requested})
        return info

    async def watch(self) -> None:
        """Background task: load each newly installed model version (hot reload); ``switch`` takes it."""
        r = self.reload
        if r is None or r.interval_s <= 0:
            return
        versions = await asyncio.to_thread(importlib.import_module, "detector.versions")
        models_dir = r.models_dir or str(importlib.import_module("detector.scoring").DEFAULT_MODELS_DIR)
        async for version in versions.watch_versions(models_dir, r.interval_s, r.installed):
            r.installed = version
            log.info("worker %s: model version %s installed in %s: loading it", self.consumer, version.name,
                     models_dir)
            try:
                await asyncio.to_thread(self._probe_in_process, r)
                detector = await asyncio.to_thread(r.load)
                check_info(detector_info(detector))
            except Exception as exc:
                self.reload_failures += 1
                metrics.inc("detector_reload_failures")
                log.error("worker %s: detector reload failed, %s %s keeps serving: %s: %s", self.consumer,
                          self.detector.name, self.detector.version, exc.__class__.__name__, exc)
                continue
            self._next = detector

    @staticmethod
    def _probe_in_process(r: HotReload) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
            try:
                ex.submit(_probe, r.loader, r.name, r.models_dir).result(timeout=300)
            except BrokenProcessPool:
                raise RuntimeError("the process loading the new model died") from None

    async def switch(self) -> bool:
        """Between two chunks: take a newly loaded detector, if there is one, and announce it."""
        if self._next is None:
            return False
        old, self.detector, self._next = self.detector, self._next, None
        self._stamp = self._detector_field(self.detector)
        self.reloads += 1
        metrics.inc("detector_reloads")
        info = await self.announce()
        log.info("worker %s: detector reloaded: %s %s -> %s %s (warn %.3f, hangup %.3f)", self.consumer, old.name,
                 old.version, info.name, info.version, info.warn, info.hangup)
        return True

    async def step(self) -> int:
        """Claim a dead worker's chunk if one is due, else read and score the next chunk. Returns the number
        of chunks answered."""
        now = time.monotonic()
        if now - self._last_reap >= REAP_EVERY_S:
            self._last_reap = now
            await self.reap()
        if now - self._last_claim >= min(1.0, self.claim_idle_ms / 2000):
            self._last_claim = now
            done = await self.claim()
            if done:
                return done
        reply = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=1,
                                            block=self.block_ms)
        done = 0
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                await self.handle(entry_id, fields, deliveries=1)
                done += 1
        return done

    async def reap(self) -> list[str]:
        """Remove other consumers that hold no pending chunk and have been idle ``reap_idle_ms``."""
        gone = []
        for c in await self.redis.xinfo_consumers(self.stream, self.group):
            name = _s(c["name"])
            if name != self.consumer and int(c["pending"]) == 0 and int(c["idle"]) >= self.reap_idle_ms:
                await self.redis.xgroup_delconsumer(self.stream, self.group, name)
                await self.redis.hdel(workers_key(self.stream), name)
                gone.append(name)
        if gone:
            self.reaped += len(gone)
            metrics.inc("worker_consumers_reaped", len(gone))
            log.info("worker %s: removed %d dead consumer(s) from group %r: %s", self.consumer, len(gone),
                     self.group, ", ".join(gone))
        return gone

    async def leave(self) -> bool:
        """On a clean stop: leave the group and ``<stream>:workers`` unless a chunk is still pending here."""
        mine = [c for c in await self.redis.xinfo_consumers(self.stream, self.group)
                if _s(c["name"]) == self.consumer]
        if mine and int(mine[0]["pending"]):
            return False  # another worker claims it; the reaper removes this consumer afterwards
        await self.redis.xgroup_delconsumer(self.stream, self.group, self.consumer)
        await self.redis.hdel(workers_key(self.stream), self.consumer)
        return True

    async def claim(self) -> int:
        """XAUTOCLAIM one chunk pending longer than ``claim_idle_ms`` with another (dead) consumer."""
        res = await self.redis.xautoclaim(self.stream, self.group, self.consumer, self.claim_idle_ms,
                                          start_id="0-0", count=1)
        claimed = res[1] if len(res) > 1 else []
        done = 0
        for entry_id, fields in claimed:
            if not fields:  # deleted meanwhile (answered by its first worker after all)
                await self.redis.xack(self.stream, self.group, entry_id)
                continue
            pend = await self.redis.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
            deliveries = int(pend[0]["times_delivered"]) if pend else 2
            self.claimed += 1
            metrics.inc("worker_chunks_claimed")
            log.warning("worker %s: claimed chunk %s of leg %s (pending %d+ ms with a dead or stuck worker; "
                        "delivery %d)", self.consumer, _s(fields.get(b"id", b"?")), _s(fields.get(b"leg", b"?")),
                        self.claim_idle_ms, deliveries)
            await self.handle(entry_id, fields, deliveries)
            done += 1
        return done

    async def handle(self, entry_id: Any, fields: dict[bytes, bytes], deliveries: int) -> None:
        started = time.monotonic()
        score: float | None = None
        error = ""
        skipped = False
        if deliveries > self.max_deliveries:
            error = f"chunk delivered {deliveries} times (its workers died on it); chunk skipped"
            skipped = True
            self.skipped += 1
        else:
            try:
                score = score_chunk(self.detector, decode_pcm16(fields[b"pcm16"]))
                self.scored += 1
            except Exception as exc:  # fail open: an error result, never a crash of the worker
                error = f"{exc.__class__.__name__}: {exc}"
                self.errors += 1
                log.warning("worker %s: detector failed on %s: %s", self.consumer, _s(fields.get(b"id", b"?")),
                            error)
        reply = fields.get(b"reply")
        pipe = self.redis.pipeline(transaction=True)
        if reply:
            pipe.xadd(reply, {"id": fields.get(b"id", b""), "score": "" if score is None else repr(score),
                              "error": error, "worker": self.consumer, "deliveries": str(deliveries),
                              "skipped": "1" if skipped else "0", "detector": self._stamp,
                              "scoring_s": f"{time.monotonic() - started:.6f}"},
                      maxlen=RESULTS_MAXLEN, approximate=True)
            pipe.expire(reply, RESULTS_TTL_S)
        pipe.xack(self.stream, self.group, entry_id)
        pipe.xdel(self.stream, entry_id)
        await pipe.execute()

    async def run(self, stop: asyncio.Event) -> None:
        await self.setup()
        watcher = asyncio.create_task(self._watch_forever(), name="model-watch")
        try:
            await self._serve(stop)
        finally:
            watcher.cancel()
            try:
                await watcher
            except (asyncio.CancelledError, Exception):
                pass

    async def _watch_forever(self) -> None:
        while True:
            try:
                await self.watch()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker %s: model version watcher failed; retrying", self.consumer)
                await asyncio.sleep(max(1.0, self.reload.interval_s if self.reload else 1.0))

    async def _serve(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if self._next is not None:
                    await self.switch()
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting, network: retry, never exit on a transient error
                log.warning("worker %s: %s: %s (retrying in 1 s)", self.consumer, exc.__class__.__name__, exc)
                await asyncio.sleep(1.0)
                try:
                    await self.setup()  # a restarted Redis without persistence lost the group
                except Exception:
                    pass
        try:
            left = await self.leave()
        except Exception as exc:  # Redis gone at shutdown: the next live worker's reaper removes us
            left = False
            log.warning("worker %s: could not leave group %r: %s: %s", self.consumer, self.group,
                        exc.__class__.__name__, exc)
        log.info("worker %s stopping: %d scored, %d errors, %d claimed from dead workers, %d skipped%s",
                 self.consumer, self.scored, self.errors, self.claimed, self.skipped,
                 "; left the group" if left else "")


async def run_worker(cfg: WorkerConfig, stop: asyncio.Event | None = None, consumer: str | None = None) -> None:
    """Load the detector and consume the chunk stream until ``stop`` is set (or SIGTERM/SIGINT)."""
    import contextlib
    import signal

    from plugin.redis_conn import RedisTls, make_redis

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    det = cfg.detector
    reload = None
    if det.reload_interval_s > 0 and det.name != "wavlm":  # the version installed before loading: none missed
        from detector.scoring import DEFAULT_MODELS_DIR
        from detector.versions import current_version

        reload = HotReload(det.models_dir, det.reload_interval_s, det.loader, det.name,
                           current_version(det.models_dir or DEFAULT_MODELS_DIR))
    detector = resolve_loader(det.loader)(det.name, det.models_dir or None)
    r = cfg.redis
    client = make_redis(r.url, r.password, RedisTls.from_config(r), decode_responses=False, socket_timeout=None,
                        socket_connect_timeout=2.0)
    worker = ChunkWorker(client, detector, stream=det.stream, group=det.group, consumer=consumer,
                         claim_idle_ms=det.claim_idle_ms, requested=det.name, reload=reload)
    try:
        await worker.run(stop)
    finally:
        await client.aclose()
