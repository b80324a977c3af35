"""Detector workers off the event loop, fed through a bounded, fair queue that sheds load visibly.

Two back ends share one front end (``_ScoringBase``: the queue, shedding, result delivery):

* ``ScoringService`` (default, ``[detector] mode = "local"``): a ``ProcessPoolExecutor`` (spawned
  processes, OMP_NUM_THREADS=1) loads the detector once per worker in its initializer.
* ``RemoteScoringService`` (``mode = "redis"``): chunks go to a Redis Stream consumed by any number of
  ``callguard worker`` processes on any machines (``plugin.worker``); results come back on this plugin's
  own results stream.

The queue (``FairQueue``) holds one FIFO per leg and serves legs round-robin, so a leg that produces many
chunks never starves the others. ``submit`` never blocks: when the queue is full the OLDEST queued chunk
of the submitting leg is dropped (a stale chunk goes before a fresh one); a leg with nothing queued takes
the oldest chunk of the leg holding the most. Every shed chunk is counted (``metrics['chunks_shed']``)
and logged by a rate-limited line (at most one per ``SHED_LOG_INTERVAL_S``).

Results, including detection errors, go to ``on_result``; an error carries ``score=None`` and is never
treated as evidence of a spoof. A local worker process that dies (crash, OOM kill) takes its in-flight
chunks with it: the pool is replaced and each such chunk is scored again once; a chunk that was in flight
when a worker died twice is reported as skipped (``skipped=True``, ``error`` says so, metric
``chunks_skipped``) instead of being retried forever.

Hot reload (issue #9): ``ScoringService.reload()`` starts a second pool on the same model directory, waits
until every one of its workers has loaded the detector and answered, and only then swaps: chunks taken from
the queue afterwards go to the new pool, chunks already in flight finish on the old one, which is then shut
down off the event loop. Nothing is dropped or scored twice; a pool that fails to load is thrown away and
the old one goes on serving (``ReloadError``, metric ``detector_reload_failures``). Every result carries
the ``DetectorInfo`` of the worker that scored it (``ScoreResult.detector``), so messages name the version
that really scored each chunk; ``on_reload(old, new)`` tells the owner (the guard refreshes its thresholds).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import logging
import multiprocessing
import os
import secrets
import socket
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from detector.chunking import SpeechChunk
from detector.threads import limit_native_threads
from plugin import metrics

if TYPE_CHECKING:
    from plugin.config import Config

log = logging.getLogger(__name__)

SHED_LOG_INTERVAL_S = 5.0
MAX_ATTEMPTS = 2  # a chunk whose worker died is scored once more, then skipped
RELOAD_TIMEOUT_S = 120.0  # a new pool must have loaded its detector in every worker by then
RETIRE_TIMEOUT_S = 30.0  # an old pool's in-flight chunks get this long before it is left to die


class ReloadError(RuntimeError):
    """A new detector could not be loaded (or checked); the one loaded before keeps serving."""


@dataclass(frozen=True)
class DetectorInfo:
    name: str
    version: str
    warn: float
    hangup: float
    eer: float
    hangup_window: int | None = None  # chunks the hang-up threshold was calibrated on (None: the policy's window)


@dataclass
class ChunkJob:
    leg: str  # leg key (one per tapped channel)
    chunk: SpeechChunk
    enqueued_at: float = field(default_factory=time.monotonic)
    meta: Any = None
    attempts: int = 0  # times handed to a worker


@dataclass
class ScoreResult:
    job: ChunkJob
    score: float | None
    error: str | None
    queued_s: float
    scoring_s: float
    skipped: bool = False  # never scored: its worker died on it (twice), or no worker answered in time
    worker: str | None = None  # remote mode: the consumer that scored it
    detector: DetectorInfo | None = None  # the detector that scored it (None: not known, e.g. an old worker)


# ------------------------------------------------------------------------------ worker process side
_DETECTOR: Any = None
_LOAD_ERROR: str | None = None
_INFO: DetectorInfo | None = None  # detector_info(_DETECTOR), computed once


def _die_with_parent() -> None:
    """Linux: end this worker when the service process dies, even by SIGKILL (no orphaned workers)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _init_worker(loader: str, name: str, models_dir: str) -> None:
    global _DETECTOR, _LOAD_ERROR, _INFO
    limit_native_threads()  # numpy is already imported here (this module's own import): env vars alone are late
    _die_with_parent()
    _DETECTOR, _LOAD_ERROR, _INFO = None, None, None
    try:
        _DETECTOR = resolve_loader(loader)(name, models_dir or None)
    except Exception as exc:  # reported by _worker_info, not by a broken pool
        _LOAD_ERROR = f"{exc.__class__.__name__}: {exc}"


def resolve_loader(spec: str) -> Callable[[str, str | None], Any]:
    """'package.module:function' or '/path/to/file.py:function' -> the function."""
    module, func = spec.rsplit(":", 1)
    if module.endswith(".py"):
        loc = importlib.util.spec_from_file_location(f"callguard_loader_{abs(hash(module))}", module)
        if loc is None or loc.loader is None:
            raise ImportError(f"cannot load {module}")
        mod = importlib.util.module_from_spec(loc)
        sys.modules[loc.name] = mod  # dataclasses and pickling look modules up here
        if str(os.path.dirname(os.path.abspath(module))) not in sys.path:
            sys.path.insert(0, os.path.dirname(os.path.abspath(module)))  # its sibling modules
        loc.loader.exec_module(mod)
    else:
        mod = importlib.import_module(module)
    return getattr(mod, func)


def detector_info(detector: Any) -> DetectorInfo:
    t = detector.thresholds
    window = getattr(t, "hangup_window", None)
    return DetectorInfo(name=str(detector.name), version=str(detector.version), warn=float(t.warn),
                        hangup=float(t.hangup), eer=float(t.eer), hangup_window=int(window) if window else None)


def score_chunk(detector: Any, audio: np.ndarray) -> float:
    """One chunk's score, checked to be a probability."""
    scores = np.asarray(detector.score([audio]), dtype=np.float64)
    value = float(scores.reshape(-1)[0])
    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"detector returned {value!r}, not a probability")
    return value


def _worker_info() -> DetectorInfo:
    if _DETECTOR is None:
        raise RuntimeError(_LOAD_ERROR or "detector not loaded")
    return detector_info(_DETECTOR)


def _worker_pid() -> int:
    return os.getpid()


def _worker_hello(pause: float) -> tuple[int, int, DetectorInfo]:
    """(process id, thread id, detector info) of the worker answering. ``pause`` keeps a worker that is
    ready from answering every hello while another is still loading its detector."""
    info = _worker_info()
    if pause:
        time.sleep(pause)
    return os.getpid(), threading.get_ident(), info


def _score_one(audio: np.ndarray) -> float:
    if _DETECTOR is None:
        raise RuntimeError(_LOAD_ERROR or "detector not loaded")
    return score_chunk(_DETECTOR, audio)


def _score_one_stamped(audio: np.ndarray) -> tuple[float, DetectorInfo | None]:
    """A chunk's score and the info of the detector that computed it (a few dozen bytes more to pickle)."""
    global _INFO
    score = _score_one(audio)
    if _INFO is None and _DETECTOR is not None:
        _INFO = detector_info(_DETECTOR)
    return score, _INFO


def check_info(info: DetectorInfo) -> None:
    """Thresholds the policy can use (0 <= warn <= hangup <= 1), else ValueError."""
    values = (info.warn, info.hangup)
    if not all(isinstance(v, float) and np.isfinite(v) for v in values) or not 0.0 <= info.warn <= info.hangup <= 1.0:
        raise ValueError(f"detector {info.name} {info.version}: thresholds must satisfy 0 <= warn <= hangup <= 1 "
                         f"(got warn={info.warn!r}, hangup={info.hangup!r})")


# ------------------------------------------------------------------------------ the fair queue
class FairQueue:
    """Per-leg FIFO queues served round-robin, at most ``size`` chunks in all.

    ``push`` returns the chunk shed to make room (or None): the oldest of the pushing leg when it has
    any queued, else the oldest of the leg with the most queued (ties: the one whose oldest is oldest).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._legs: OrderedDict[str, deque[ChunkJob]] = OrderedDict()  # rotation order
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def depth(self, leg: str) -> int:
        q = self._legs.get(leg)
        return len(q) if q else 0

    def push(self, job: ChunkJob) -> ChunkJob | None:
        victim = None
        if self._n >= self.size:
            own = self._legs.get(job.leg)
            if own:
                victim = own.popleft()
                if not own:
                    del self._legs[job.leg]
            else:
                leg, q = max(self._legs.items(), key=lambda kv: (len(kv[1]), -kv[1][0].enqueued_at))
                victim = q.popleft()
                if not q:
                    del self._legs[leg]
            self._n -= 1
        self._legs.setdefault(job.leg, deque()).append(job)
        self._n += 1
        return victim

    def push_front(self, job: ChunkJob) -> None:
        """Put a chunk back at the head of its leg and its leg at the head of the rotation (a retry)."""
        self._legs.setdefault(job.leg, deque()).appendleft(job)
        self._legs.move_to_end(job.leg, last=False)
        self._n += 1

    def pop(self) -> ChunkJob | None:
        if not self._legs:
            return None
        leg, q = next(iter(self._legs.items()))
        job = q.popleft()
        if q:
            self._legs.move_to_end(leg)
        else:
            del self._legs[leg]
        self._n -= 1
        return job

    def drop_leg(self, leg: str) -> int:
        q = self._legs.pop(leg, None)
        n = len(q) if q else 0
        self._n -= n
        return n


class ShedLog:
    """Counts shed chunks; logs the first at once, then at most one summary line per ``interval``."""

    def __init__(self, interval: float = SHED_LOG_INTERVAL_S) -> None:
        self.interval = interval
        self.total = 0
        self._since_log = 0
        self._last_log = float("-inf")

    def shed(self, victim: ChunkJob, why: str) -> None:
        self.total += 1
        self._since_log += 1
        metrics.inc("chunks_shed")
        now = time.monotonic()
        if now - self._last_log >= self.interval:
            log.warning("scoring overloaded (%s): shed %d chunk(s) since the last report, latest chunk %d of "
                        "leg %s (oldest queued of its leg); %d shed in all", why, self._since_log,
                        victim.chunk.index, victim.leg, self.total)
            self._since_log = 0
            self._last_log = now


# ------------------------------------------------------------------------------ event loop side
class _ScoringBase:
    """The front end shared by the local and remote back ends: fair queue, shedding, counters, results."""

    def __init__(self, queue_size: int,
                 on_result: Callable[[ScoreResult], Awaitable[None] | None] | None = None) -> None:
        self.queue_size = queue_size
        self.on_result = on_result
        self._queue = FairQueue(queue_size)
        self._ready = asyncio.Event()
        self._shed_log = ShedLog()
        self._tasks: list[asyncio.Task[None]] = []
        self.info: DetectorInfo | None = None
        # called on the event loop as (old, new) when another detector takes over (a hot reload)
        self.on_reload: Callable[[DetectorInfo, DetectorInfo], None] | None = None
        self.scored = 0
        self.errors = 0
        self.skipped = 0
        self.rescored = 0
        self.reloads = 0
        self.reload_failures = 0

    @property
    def shed(self) -> int:
        return self._shed_log.total

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return 0

    def submit(self, job: ChunkJob) -> None:
        """Queue a chunk for scoring; never blocks. Sheds the oldest chunk of the leg when full."""
        victim = self._queue.push(job)
        if victim is not None:
            self._shed_log.shed(victim, f"queue of {self.queue_size} full")
        self._ready.set()

    def drop_leg(self, leg: str) -> int:
        """Forget queued chunks of a leg that ended."""
        return self._queue.drop_leg(leg)

    async def _next_job(self) -> ChunkJob:
        while True:
            job = self._queue.pop()
            if job is not None:
                return job
            self._ready.clear()
            await self._ready.wait()

    async def _deliver(self, result: ScoreResult) -> None:
        if result.score is not None:
            self.scored += 1
        else:
            self.errors += 1
        if self.on_result is None:
            return
        try:
            res = self.on_result(result)
            if asyncio.iscoroutine(res):
                await res
        except Exception:
            log.exception("scoring result handler failed")

    def _adopt(self, new: DetectorInfo) -> None:
        """``new`` is the detector from now on: count it and tell ``on_reload`` (which must not raise)."""
        old, self.info = self.info, new
        self.reloads += 1
        metrics.inc("detector_reloads")
        if self.on_reload is None or old is None:
            return
        try:
            self.on_reload(old, new)
        except Exception:
            log.exception("detector reload handler failed")

    def _reload_failed(self, reason: str) -> ReloadError:
        self.reload_failures += 1
        metrics.inc("detector_reload_failures")
        cur = self.info
        log.error("detector reload failed, %s %s keeps serving: %s", cur.name if cur else "?",
                  cur.version if cur else "?", reason)
        return ReloadError(reason)

    async def _cancel_tasks(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []


class ScoringService(_ScoringBase):
    """Local back end: a pool of detector processes on this machine."""

    def __init__(self, name: str, models_dir: str, *, workers: int = 1, queue_size: int = 16,
                 loader: str = "detector.scoring:load_detector",
                 on_result: Callable[[ScoreResult], Awaitable[None] | None] | None = None,
                 executor: Executor | None = None) -> None:
        super().__init__(queue_size, on_result)
        self.name, self.models_dir, self.loader = name, models_dir, loader
        self.workers = workers
        self._executor = executor
        self._own_executor = executor is None
        self.pool_restarts = 0
        self._reload_lock = asyncio.Lock()
        self._closed = False

    async def start(self, timeout: float = 120.0) -> DetectorInfo:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = self._new_pool()
        if self._own_executor:
            self.info = await self._handshake(self._executor, timeout)
        else:  # a caller's executor (tests): one call per worker
            infos = await asyncio.wait_for(asyncio.gather(*(loop.run_in_executor(self._executor, _worker_info)
                                                            for _ in range(self.workers))), timeout)
            self.info = infos[0]
        self._tasks = [asyncio.create_task(self._run(), name=f"scoring-{i}") for i in range(self.workers)]
        log.info("detector %s %s ready in %d worker(s): warn=%.3f hangup=%.3f", self.info.name,
                 self.info.version, self.workers, self.info.warn, self.info.hangup)
        return self.info

    async def _handshake(self, pool: Executor, timeout: float) -> DetectorInfo:
        """Wait until every worker of ``pool`` has loaded its detector and answered; their common info.

        The pool starts (and loads the detector in) every process now, not lazily on the first busy moment,
        when a model load would stall scoring for a second or more. A worker that failed to load raises
        here (its load error), one that died raises ``BrokenExecutor``, a slow one ``TimeoutError``."""
        loop = asyncio.get_running_loop()
        seen: dict[tuple[int, int], DetectorInfo] = {}

        async def rounds() -> None:
            pause = 0.0
            while len(seen) < self.workers:
                answers = await asyncio.gather(*(loop.run_in_executor(pool, _worker_hello, pause)
                                                 for _ in range(self.workers)))
                for pid, tid, info in answers:
                    seen[(pid, tid)] = info
                pause = 0.05

        await asyncio.wait_for(rounds(), timeout)
        infos = set(seen.values())
        if len(infos) > 1:
            raise RuntimeError("the workers loaded different detectors (the model changed while they loaded): "
                               + ", ".join(sorted(f"{i.name} {i.version}" for i in infos)))
        return infos.pop()

    async def reload(self, timeout: float = RELOAD_TIMEOUT_S) -> DetectorInfo:
        """Load the detector again (the model files in ``models_dir`` changed) in a new pool and switch to it
        without dropping a chunk. Returns the new info; raises ``ReloadError`` (logged, counted) when the new
        pool does not load, in which case the old pool goes on serving untouched."""
        if self.info is None:
            raise RuntimeError("scoring not started")
        if not self._own_executor:
            raise ReloadError("cannot reload a detector whose executor the caller supplied")
        async with self._reload_lock:
            started = time.monotonic()
            old_info = self.info
            new = self._new_pool()
            try:
                info = await self._handshake(new, timeout)
                check_info(info)
            except asyncio.CancelledError:
                await self._retire(new, wait=False)
                raise
            except Exception as exc:
                await self._retire(new, wait=False)
                reason = (f"no answer from the new detector workers within {timeout:g} s"
                          if isinstance(exc, TimeoutError) else
                          "a new detector worker died while loading the model" if isinstance(exc, BrokenExecutor)
                          else f"{exc.__class__.__name__}: {exc}")
                raise self._reload_failed(reason) from exc
            if self._closed:  # closed while the new pool loaded
                await self._retire(new, wait=False)
                raise ReloadError("scoring was closed during the reload")
            # the swap: no await from here to the end of _adopt, so every chunk popped later goes to `new`
            old, self._executor = self._executor, new
            self._adopt(info)
            log.info("new detector pool (%s %s, %d worker(s)) took over after %.0f ms of loading; it replaces %s "
                     "(chunks in flight finish there)", info.name, info.version, self.workers,
                     (time.monotonic() - started) * 1000, old_info.version)
            if old is not None:
                await self._retire(old, wait=True)
            return info

    async def _retire(self, pool: Executor, *, wait: bool) -> None:
        """Shut a pool down off the event loop. ``wait``: let its in-flight chunks finish first (they are
        delivered as usual); else cancel what it has and end its processes (a pool that failed to load)."""

        def stop() -> None:
            if wait:
                pool.shutdown(wait=True)
                return
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:  # a worker may hang in its loader: do not wait for it
                with contextlib.suppress(Exception):
                    p.terminate()
            for p in procs:
                with contextlib.suppress(Exception):
                    p.join(5)

        try:
            await asyncio.wait_for(asyncio.shield(asyncio.to_thread(stop)), RETIRE_TIMEOUT_S)
        except TimeoutError:
            log.warning("old detector workers did not stop within %.0f s", RETIRE_TIMEOUT_S)

    def worker_pids(self) -> list[int]:
        """Process ids of the pool's live worker processes (benchmarks and crash tests)."""
        procs = getattr(self._executor, "_processes", None) or {}
        return [p.pid for p in procs.values() if p.is_alive()] if isinstance(procs, dict) else []

    def _new_pool(self) -> Executor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.loader, self.name, self.models_dir))

    def _restart_pool(self, broken: Executor | None) -> None:
        """A worker died (crash, OOM kill): replace the pool, once per broken pool (several in-flight chunks
        report the same death). A pool already swapped out by a reload is not replaced: its chunks are
        scored again on the current one."""
        if not self._own_executor or broken is not self._executor:
            return
        self.pool_restarts += 1
        metrics.inc("detector_pool_restarts")
        log.error("a detector worker process died: restarting the pool (restart %d)", self.pool_restarts)
        self._executor = self._new_pool()
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        self._closed = True
        await self._cancel_tasks()
        if self._executor is not None and self._own_executor:
            ex, self._executor = self._executor, None
            try:  # wait for the workers to exit, off the event loop
                await asyncio.wait_for(asyncio.to_thread(ex.shutdown, True, cancel_futures=True), 10)
            except (TimeoutError, RuntimeError):
                log.warning("detector workers did not stop within 10 s")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._next_job()
            started = time.monotonic()
            score: float | None = None
            error: str | None = None
            skipped = False
            executor, info = self._executor, self.info  # read together: a reload swaps both at once
            job.attempts += 1
            try:
                score, stamped = await loop.run_in_executor(executor, _score_one_stamped, job.chunk.audio)
                info = stamped or info
            except asyncio.CancelledError:
                raise
            except BrokenExecutor:
                self._restart_pool(executor)
                if job.attempts < MAX_ATTEMPTS:
                    self.rescored += 1
                    metrics.inc("chunks_rescored")
                    log.warning("chunk %d of leg %s was in flight when its worker died: scoring it again",
                                job.chunk.index, job.leg)
                    self._queue.push_front(job)
                    self._ready.set()
                    continue
                error = f"worker process died on this chunk {job.attempts} times; chunk skipped"
                skipped = True
                self.skipped += 1
                metrics.inc("chunks_skipped")
                metrics.inc("detector_errors")
                log.error("chunk %d of leg %s skipped: %s", job.chunk.index, job.leg, error)
            except Exception as exc:
                error = f"{exc.__class__.__name__}: {exc}"
                metrics.inc("detector_errors")
                log.warning("detector failed on chunk %d of leg %s: %s", job.chunk.index, job.leg, error)
            await self._deliver(ScoreResult(job=job, score=score, error=error, queued_s=started - job.enqueued_at,
                                            scoring_s=time.monotonic() - started, skipped=skipped, detector=info))


# ------------------------------------------------------------------------------ remote (Redis Streams)
def encode_pcm16(audio: np.ndarray) -> bytes:
    """Chunk audio (float32, int16 / 32768 on the live path) as little-endian int16: exact, half the size."""
    return np.clip(np.rint(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype("<i2").tobytes()


def decode_pcm16(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


def info_key(stream: str) -> str:
    """Hash where workers announce the detector they serve (name, version, thresholds)."""
    return f"{stream}:detector"


def workers_key(stream: str) -> str:
    """Hash of the workers that have loaded their detector and read the stream: consumer -> time it joined."""
    return f"{stream}:workers"


@dataclass
class _InFlight:
    job: ChunkJob
    sent_at: float  # monotonic
    started: float  # monotonic, when popped from the queue
    result: ScoreResult | None = None
    entry: bytes | str | None = None  # its id in the chunk stream


class RemoteScoringService(_ScoringBase):
    """Remote back end: chunks to a Redis Stream, scored by ``callguard worker`` processes anywhere.

    At most ``max_pending`` chunks of this plugin are in the stream unanswered; the rest wait in the fair
    queue, which sheds oldest-first per leg when it is full (back-pressure). Each chunk carries a unique id
    and the name of this plugin's results stream; a result for an unknown id (a chunk scored twice after
    a worker was presumed dead, or one that timed out) is counted and ignored, so results are delivered at
    most once. Results of one leg are delivered in the order its chunks were sent; a chunk without a
    result after ``result_timeout_s`` is reported as skipped.
    """

    def __init__(self, name: str, *, redis_url: str, password: str = "", tls: Any = None,
                 stream: str = "callguard:chunks", results_prefix: str = "callguard:results",
                 queue_size: int = 16, max_pending: int = 64, result_timeout_s: float = 15.0,
                 stream_maxlen: int = 10_000,
                 on_result: Callable[[ScoreResult], Awaitable[None] | None] | None = None) -> None:
        super().__init__(queue_size, on_result)
        from plugin.redis_conn import make_redis

        self.name = name
        self.stream, self.max_pending, self.result_timeout_s = stream, max_pending, result_timeout_s
        self.stream_maxlen = stream_maxlen
        self.producer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.results = f"{results_prefix}:{self.producer}"
        self.redis = make_redis(redis_url, password, tls, decode_responses=False, socket_timeout=5.0,
                                socket_connect_timeout=2.0)
        self._reader = make_redis(redis_url, password, tls, decode_responses=False, socket_timeout=None,
                                  socket_connect_timeout=2.0)
        self._seq = 0
        self._inflight: dict[str, _InFlight] = {}
        self._order: dict[str, deque[str]] = {}  # leg -> ids in send order
        self._room = asyncio.Event()
        self._bg: set[asyncio.Task[None]] = set()
        self.duplicate_results = 0
        self.timeouts = 0
        self._stamps: dict[bytes, DetectorInfo | None] = {}  # results' "detector" field -> parsed, per version
        self._info_checked = float("-inf")  # last re-read of <stream>:detector (a result named another version)

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @staticmethod
    def _parse_announcement(raw: dict[bytes, bytes]) -> tuple[DetectorInfo, str]:
        """``<stream>:detector`` -> (the detector the workers serve, the [detector] name they were started as)."""
        d = {k.decode(): v.decode() for k, v in raw.items()}
        info = DetectorInfo(name=d["name"], version=d["version"], warn=float(d["warn"]), hangup=float(d["hangup"]),
                            eer=float(d["eer"]), hangup_window=int(d.get("hangup_window") or 0) or None)
        return info, d.get("requested", info.name)

    async def start(self, timeout: float = 120.0) -> DetectorInfo:
        deadline = time.monotonic() + timeout
        warned = False
        while True:
            raw = await self.redis.hgetall(info_key(self.stream))
            if raw:
                self.info, served = self._parse_announcement(raw)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no scoring worker announced a detector on {self.stream!r} within "
                                   f"{timeout:.0f} s (start `callguard worker`)")
            if not warned:
                log.warning("waiting for a scoring worker on Redis stream %r", self.stream)
                warned = True
            await asyncio.sleep(0.2)
        if served != self.name:  # the [detector] name the workers were started with
            raise RuntimeError(f"workers on {self.stream!r} serve detector {served!r}, configured {self.name!r}")
        self._room.set()
        self._tasks = [asyncio.create_task(self._pump(), name="scoring-pump"),
                       asyncio.create_task(self._read_results(), name="scoring-results"),
                       asyncio.create_task(self._expire(), name="scoring-expire")]
        log.info("detector %s %s served by remote workers on stream %r (results on %r, at most %d pending)",
                 self.info.name, self.info.version, self.stream, self.results, self.max_pending)
        return self.info

    async def close(self) -> None:
        await self._cancel_tasks()
        with contextlib.suppress(Exception):
            await self.redis.delete(self.results)
        for client in (self.redis, self._reader):
            with contextlib.suppress(Exception):
                await client.aclose()

    def drop_leg(self, leg: str) -> int:
        n = super().drop_leg(leg)
        gone = [self._inflight.pop(cid, None) for cid in self._order.pop(leg, ())]
        self._forget([e for e in gone if e is not None])
        self._room.set()
        return n

    def _forget(self, entries: list[_InFlight]) -> None:
        """Delete unanswered chunks from the stream (their leg ended, or they timed out): no worker scores
        them later, and a long worker outage cannot pile chunks up in Redis."""
        # a chunk a worker answered was deleted by that worker already
        ids = [e.entry for e in entries if e.entry is not None and (e.result is None or e.result.worker is None)]
        if not ids:
            return

        async def xdel() -> None:
            with contextlib.suppress(Exception):
                await self.redis.xdel(self.stream, *ids)

        task = asyncio.get_running_loop().create_task(xdel())
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _pump(self) -> None:
        """Queue -> chunk stream, keeping at most ``max_pending`` of this plugin's chunks unanswered."""
        while True:
            while len(self._inflight) >= self.max_pending:  # back-pressure: chunks wait (and shed) here
                self._room.clear()
                await self._room.wait()
            job = await self._next_job()
            batch = [job]
            while len(self._inflight) + len(batch) < self.max_pending:
                nxt = self._queue.pop()
                if nxt is None:
                    break
                batch.append(nxt)
            now = time.monotonic()
            pipe = self.redis.pipeline(transaction=False)
            ids = []
            for j in batch:
                self._seq += 1
                cid = f"{self.producer}/{self._seq}"
                j.attempts += 1
                ids.append(cid)
                self._inflight[cid] = _InFlight(job=j, sent_at=now, started=now)
                self._order.setdefault(j.leg, deque()).append(cid)
                pipe.xadd(self.stream, {
                    "id": cid, "reply": self.results, "leg": j.leg, "index": str(j.chunk.index),
                    "start_s": repr(j.chunk.start_s), "end_s": repr(j.chunk.end_s), "rate": str(j.chunk.rate),
                    "pcm16": encode_pcm16(j.chunk.audio)}, maxlen=self.stream_maxlen, approximate=True)
            try:
                entries = await pipe.execute()
                for cid, entry in zip(ids, entries, strict=False):
                    if cid in self._inflight:
                        self._inflight[cid].entry = entry
            except Exception as exc:  # Redis down: these chunks fail open as errors
                log.warning("cannot send %d chunk(s) to the scoring stream: %s", len(batch), exc)
                metrics.inc("detector_errors", len(batch))
                for cid in ids:
                    ent = self._inflight.get(cid)
                    if ent is not None:
                        ent.result = ScoreResult(job=ent.job, score=None, error=f"Redis: {exc.__class__.__name__}",
                                                 queued_s=ent.started - ent.job.enqueued_at, scoring_s=0.0,
                                                 skipped=True)
                await self._flush_legs({self._inflight[c].job.leg for c in ids if c in self._inflight})
                await asyncio.sleep(0.5)

    async def _read_results(self) -> None:
        last = b"0-0"
        while True:
            try:
                reply = await self._reader.xread({self.results: last}, count=256, block=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading results stream %s failed: %s", self.results, exc)
                await asyncio.sleep(0.5)
                continue
            if not reply:
                continue
            entries = reply[0][1]
            legs: set[str] = set()
            for entry_id, fields in entries:
                last = entry_id
                leg = self._take_result(fields)
                if leg is not None:
                    legs.add(leg)
            with contextlib.suppress(Exception):
                await self.redis.xdel(self.results, *[e[0] for e in entries])
            await self._flush_legs(legs)

    def _take_result(self, fields: dict[bytes, bytes]) -> str | None:
        cid = fields.get(b"id", b"").decode()
        ent = self._inflight.get(cid)
        if ent is None or ent.result is not None:
            self.duplicate_results += 1
            metrics.inc("remote_results_ignored")
            return None
        raw_score = fields.get(b"score", b"").decode()
        error = fields.get(b"error", b"").decode() or None
        score = float(raw_score) if raw_score else None
        if score is not None and not 0.0 <= score <= 1.0:
            score, error = None, f"worker returned {raw_score!r}, not a probability"
        if error:
            metrics.inc("detector_errors")
        skipped = fields.get(b"skipped", b"") == b"1"
        if skipped:
            self.skipped += 1
            metrics.inc("chunks_skipped")
        stamp = self._stamp(fields.get(b"detector", b""))
        ent.result = ScoreResult(job=ent.job, score=score, error=error, queued_s=ent.started - ent.job.enqueued_at,
                                 scoring_s=time.monotonic() - ent.sent_at, skipped=skipped,
                                 worker=fields.get(b"worker", b"").decode() or None, detector=stamp)
        if stamp is not None and self.info is not None and stamp.version != self.info.version:
            self._check_announcement()
        return ent.job.leg

    def _stamp(self, raw: bytes) -> DetectorInfo | None:
        """The detector a result names (workers add it since hot reload; older ones do not)."""
        if not raw:
            return None
        if raw not in self._stamps:
            try:
                d = json.loads(raw)
                info = DetectorInfo(name=str(d["name"]), version=str(d["version"]), warn=float(d["warn"]),
                                    hangup=float(d["hangup"]), eer=float(d["eer"]),
                                    hangup_window=int(d.get("hangup_window") or 0) or None)
            except (ValueError, KeyError, TypeError):
                info = None
            if len(self._stamps) > 64:  # a handful of versions in practice; never unbounded
                self._stamps.clear()
            self._stamps[raw] = info
        return self._stamps[raw]

    def _check_announcement(self, min_interval: float = 1.0) -> None:
        """A result came from another detector version than ours: the workers may have reloaded. Re-read
        ``<stream>:detector`` (at most once per ``min_interval``) and take it when it changed."""
        now = time.monotonic()
        if now - self._info_checked < min_interval:
            return
        self._info_checked = now

        async def check() -> None:
            try:
                raw = await self.redis.hgetall(info_key(self.stream))
                if not raw:
                    return
                info, served = self._parse_announcement(raw)
                if info == self.info or served != self.name:
                    return
                check_info(info)
            except Exception as exc:  # fail open: keep the thresholds we have
                log.warning("cannot take the workers' new detector from %s: %s: %s", info_key(self.stream),
                            exc.__class__.__name__, exc)
                return
            old = self.info
            self._adopt(info)
            log.info("remote workers on %r now serve detector %s %s (was %s %s)", self.stream, info.name,
                     info.version, old.name if old else "?", old.version if old else "?")

        task = asyncio.get_running_loop().create_task(check())
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _flush_legs(self, legs: set[str]) -> None:
        """Deliver each leg's results in send order, as far as they are complete."""
        for leg in legs:
            order = self._order.get(leg)
            while order:
                cid = order[0]
                ent = self._inflight.get(cid)
                if ent is None:  # dropped
                    order.popleft()
                    continue
                if ent.result is None:
                    break
                order.popleft()
                del self._inflight[cid]
                await self._deliver(ent.result)
            if order is not None and not order:
                self._order.pop(leg, None)
        self._room.set()

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.result_timeout_s / 4))
            now = time.monotonic()
            legs = set()
            expired: list[_InFlight] = []
            for ent in list(self._inflight.values()):
                if ent.result is None and now - ent.sent_at > self.result_timeout_s:
                    self.timeouts += 1
                    self.skipped += 1
                    metrics.inc("chunks_skipped")
                    metrics.inc("remote_timeouts")
                    log.warning("chunk %d of leg %s: no worker result within %.0f s; chunk skipped",
                                ent.job.chunk.index, ent.job.leg, self.result_timeout_s)
                    ent.result = ScoreResult(job=ent.job, score=None,
                                             error=f"no worker result within {self.result_timeout_s:g} s; "
                                                   "chunk skipped", queued_s=ent.started - ent.job.enqueued_at,
                                             scoring_s=now - ent.sent_at, skipped=True)
                    legs.add(ent.job.leg)
                    expired.append(ent)
            self._forget(expired)
            if legs:
                await self._flush_legs(legs)


def make_scoring(config: Config) -> _ScoringBase:
    """The scoring back end ``config.detector.mode`` asks for: local processes or remote workers."""
    det = config.detector
    if getattr(det, "mode", "local") == "redis":
        from plugin.redis_conn import RedisTls

        r = config.redis
        return RemoteScoringService(det.name, redis_url=r.url, password=r.password, tls=RedisTls.from_config(r),
                                    stream=det.stream, results_prefix=det.results_prefix,
                                    queue_size=det.queue_size, max_pending=det.max_pending,
                                    result_timeout_s=det.result_timeout_ms / 1000)
    return ScoringService(det.name, det.models_dir, workers=det.workers, queue_size=det.queue_size,
                          loader=det.loader)
