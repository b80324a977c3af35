"""Scoring off the event loop: worker processes, a bounded queue that sheds the oldest chunk of the leg."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from detector.chunking import SpeechChunk
from plugin import metrics
from plugin.scoring import ChunkJob, ScoringService, _init_worker

HERE = Path(__file__).resolve().parent


def chunk(i: int, level: float = 0.01) -> SpeechChunk:
    return SpeechChunk(index=i, start_s=2.0 * i, end_s=2.0 * i + 2, audio=np.full(16000, level, np.float32))


def test_worker_process_loads_the_detector_once_and_scores():
    async def main():
        results = []
        svc = ScoringService("gbm", "", workers=1, queue_size=4, loader=f"{HERE / 'fakedet.py'}:load",
                             on_result=results.append)
        info = await svc.start()
        svc.submit(ChunkJob("a", chunk(0, 0.01)))
        svc.submit(ChunkJob("a", chunk(1, 0.4)))
        err = chunk(2)
        err.audio[0] = 0.5  # the fake detector raises on this one
        svc.submit(ChunkJob("a", err))
        for _ in range(200):
            if len(results) == 3:
                break
            await asyncio.sleep(0.02)
        await svc.close()
        return info, results

    info, results = asyncio.run(main())
    assert (info.name, info.warn, info.hangup) == ("fake", 0.6, 0.9)
    assert [r.score for r in results] == [0.05, 0.95, None]
    assert "fake detector failure" in results[2].error


def test_a_missing_model_is_reported_at_start():
    async def main():
        svc = ScoringService("gbm", "/nonexistent-models", loader="detector.scoring:load_detector")
        try:
            await svc.start()
        except RuntimeError as exc:
            return str(exc)
        finally:
            await svc.close()

    assert "no GBM model" in asyncio.run(main())


def _thread_service(queue_size: int, results: list) -> ScoringService:
    ex = ThreadPoolExecutor(1, initializer=_init_worker, initargs=(f"{HERE / 'slowdet.py'}:load", "gbm", ""))
    return ScoringService("gbm", "", workers=1, queue_size=queue_size, executor=ex, on_result=results.append)


def test_full_queue_sheds_the_oldest_chunk_of_the_same_leg_without_blocking():
    async def main():
        results = []
        svc = _thread_service(3, results)
        await svc.start()
        before = metrics.get("chunks_shed")
        for i in range(10):
            svc.submit(ChunkJob("a", chunk(i)))
        for _ in range(100):
            if len(results) == 3:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        await svc.close()
        return results, svc.shed, metrics.get("chunks_shed") - before

    results, shed, counted = asyncio.run(main())
    assert [r.job.chunk.index for r in results] == [7, 8, 9]  # the newest survive
    assert shed == counted == 7


def test_shedding_hits_the_leg_that_overflows_not_the_others():
    async def main():
        results = []
        svc = _thread_service(3, results)
        await svc.start()
        svc.submit(ChunkJob("a", chunk(0)))
        svc.submit(ChunkJob("b", chunk(0)))
        svc.submit(ChunkJob("a", chunk(1)))
        svc.submit(ChunkJob("b", chunk(1)))  # full: b's oldest goes, a keeps both
        for _ in range(100):
            if len(results) == 3:
                break
            await asyncio.sleep(0.02)
        await svc.close()
        return sorted((r.job.leg, r.job.chunk.index) for r in results)

    assert asyncio.run(main()) == [("a", 0), ("a", 1), ("b", 1)]


def test_a_dead_idle_worker_is_replaced_and_the_next_chunk_is_scored():
    import os
    import signal

    async def main():
        results = []
        svc = ScoringService("gbm", "", workers=1, queue_size=4, loader=f"{HERE / 'fakedet.py'}:load",
                             on_result=results.append)
        await svc.start()
        # kill the worker process behind the service's back
        for pid in svc.worker_pids():
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.3)
        svc.submit(ChunkJob("a", chunk(0)))
        svc.submit(ChunkJob("a", chunk(1, 0.4)))
        for _ in range(500):
            if len(results) == 2:
                break
            await asyncio.sleep(0.02)
        await svc.close()
        return results, svc

    results, svc = asyncio.run(main())
    # the chunk that found the pool broken is scored again in the new pool, not lost
    assert [r.score for r in results] == [0.05, 0.95]
    assert svc.pool_restarts == 1 and not results[0].skipped
