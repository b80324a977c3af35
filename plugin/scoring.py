"""Detector workers off the event loop, fed through a bounded queue that sheds load visibly.

A ``ProcessPoolExecutor`` (spawned processes, OMP_NUM_THREADS=1) loads the detector once per worker in
its initializer. ``submit`` never blocks: when the queue is full the oldest queued chunk of the same leg
(or, failing that, the oldest chunk overall) is dropped, counted in ``metrics['chunks_shed']`` and logged.
Results, including detection errors, go to ``on_result``; an error carries ``score=None`` and is never
treated as evidence of a spoof.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.chunking import SpeechChunk
from plugin import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorInfo:
    name: str
    version: str
    warn: float
    hangup: float
    eer: float


@dataclass
class ChunkJob:
    leg: str  # leg key (one per tapped channel)
    chunk: SpeechChunk
    enqueued_at: float = field(default_factory=time.monotonic)
    meta: Any = None


@dataclass
class ScoreResult:
    job: ChunkJob
    score: float | None
    error: str | None
    queued_s: float
    scoring_s: float


# ------------------------------------------------------------------------------ worker process side
_DETECTOR: Any = None
_LOAD_ERROR: str | None = None


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
    global _DETECTOR, _LOAD_ERROR
    os.environ["OMP_NUM_THREADS"] = "1"
    _die_with_parent()
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
        loc.loader.exec_module(mod)
    else:
        mod = importlib.import_module(module)
    return getattr(mod, func)


def _worker_info() -> DetectorInfo:
    if _DETECTOR is None:
        raise RuntimeError(_LOAD_ERROR or "detector not loaded")
    t = _DETECTOR.thresholds
    return DetectorInfo(name=str(_DETECTOR.name), version=str(_DETECTOR.version), warn=float(t.warn),
                        hangup=float(t.hangup), eer=float(t.eer))


def _score_one(audio: np.ndarray) -> float:
    if _DETECTOR is None:
        raise RuntimeError(_LOAD_ERROR or "detector not loaded")
    scores = np.asarray(_DETECTOR.score([audio]), dtype=np.float64)
    value = float(scores.reshape(-1)[0])
    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"detector returned {value!r}, not a probability")
    return value


# ------------------------------------------------------------------------------ event loop side
class ScoringService:
    def __init__(self, name: str, models_dir: str, *, workers: int = 1, queue_size: int = 16,
                 loader: str = "detector.scoring:load_detector",
                 on_result: Callable[[ScoreResult], Awaitable[None] | None] | None = None,
                 executor: Executor | None = None) -> None:
        self.name, self.models_dir, self.loader = name, models_dir, loader
        self.workers = workers
        self.queue_size = queue_size
        self.on_result = on_result
        self._executor = executor
        self._own_executor = executor is None
        self._queue: deque[ChunkJob] = deque()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.info: DetectorInfo | None = None
        self.shed = 0
        self.scored = 0
        self.errors = 0

    async def start(self, timeout: float = 120.0) -> DetectorInfo:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = self._new_pool()
        self.info = await asyncio.wait_for(loop.run_in_executor(self._executor, _worker_info), timeout)
        self._tasks = [asyncio.create_task(self._run(), name=f"scoring-{i}") for i in range(self.workers)]
        log.info("detector %s %s ready in %d worker(s): warn=%.3f hangup=%.3f", self.info.name,
                 self.info.version, self.workers, self.info.warn, self.info.hangup)
        return self.info

    def _new_pool(self) -> Executor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.loader, self.name, self.models_dir))

    def _restart_pool(self) -> None:
        """A worker died (crash, OOM kill): replace the pool; chunks in flight are reported as errors."""
        if not self._own_executor:
            return
        metrics.inc("detector_pool_restarts")
        log.error("a detector worker process died: restarting the pool")
        old = self._executor
        self._executor = self._new_pool()
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if self._executor is not None and self._own_executor:
            ex, self._executor = self._executor, None
            try:  # wait for the workers to exit, off the event loop
                await asyncio.wait_for(asyncio.to_thread(ex.shutdown, True, cancel_futures=True), 10)
            except (TimeoutError, RuntimeError):
                log.warning("detector workers did not stop within 10 s")

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, job: ChunkJob) -> None:
        """Queue a chunk for scoring; never blocks. Sheds the oldest chunk when full."""
        if len(self._queue) >= self.queue_size:
            victim = next((j for j in self._queue if j.leg == job.leg), self._queue[0])
            self._queue.remove(victim)
            self.shed += 1
            metrics.inc("chunks_shed")
            log.warning("scoring queue full (%d): shed chunk %d of leg %s (%d shed so far)", self.queue_size,
                        victim.chunk.index, victim.leg, self.shed)
        self._queue.append(job)
        self._ready.set()

    def drop_leg(self, leg: str) -> int:
        """Forget queued chunks of a leg that ended."""
        before = len(self._queue)
        self._queue = deque(j for j in self._queue if j.leg != leg)
        return before - len(self._queue)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            job = self._queue.popleft()
            started = time.monotonic()
            score: float | None = None
            error: str | None = None
            try:
                score = await loop.run_in_executor(self._executor, _score_one, job.chunk.audio)
                self.scored += 1
            except asyncio.CancelledError:
                raise
            except BrokenExecutor as exc:
                error = f"{exc.__class__.__name__}: worker process died"
                self.errors += 1
                metrics.inc("detector_errors")
                self._restart_pool()
            except Exception as exc:
                error = f"{exc.__class__.__name__}: {exc}"
                self.errors += 1
                metrics.inc("detector_errors")
                log.warning("detector failed on chunk %d of leg %s: %s", job.chunk.index, job.leg, error)
            result = ScoreResult(job=job, score=score, error=error, queued_s=started - job.enqueued_at,
                                 scoring_s=time.monotonic() - started)
            if self.on_result is not None:
                try:
                    res = self.on_result(result)
                    if asyncio.iscoroutine(res):
                        await res
                except Exception:
                    log.exception("scoring result handler failed")
