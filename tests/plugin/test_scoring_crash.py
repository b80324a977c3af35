"""Issue #8: a local scoring process killed (really: os.kill) mid-chunk; its chunk is scored again or
marked skipped, the pool is replaced and the leg goes on being scored."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import numpy as np

from detector.chunking import SpeechChunk
from plugin import metrics
from plugin.scoring import ChunkJob, ScoringService

HERE = Path(__file__).resolve().parent


def chunk(i: int, level: float = 0.01) -> SpeechChunk:
    return SpeechChunk(index=i, start_s=2.0 * i, end_s=2.0 * i + 2, audio=np.full(16000, level, np.float32))


async def _wait(pred, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def test_a_worker_killed_mid_chunk_has_its_chunk_scored_again_and_the_leg_goes_on(tmp_path, monkeypatch):
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("SLEEPDET_S", "1.5")
    monkeypatch.setenv("SLEEPDET_MARK", str(marks))

    async def main():
        results = []
        svc = ScoringService("gbm", "", workers=1, queue_size=8, loader=f"{HERE / 'sleepdet.py'}:load",
                             on_result=results.append)
        await svc.start()
        restarts = metrics.get("detector_pool_restarts")
        svc.submit(ChunkJob("a", chunk(0, 0.4)))
        await _wait(lambda: any(marks.iterdir()))  # chunk 0 is being scored now
        victim = int(next(marks.iterdir()).name.split("-")[0])
        assert victim in svc.worker_pids()
        os.kill(victim, signal.SIGKILL)
        svc.submit(ChunkJob("a", chunk(1, 0.01)))
        await _wait(lambda: len(results) == 2)
        pids_after = svc.worker_pids()
        await svc.close()
        return results, victim, pids_after, metrics.get("detector_pool_restarts") - restarts, svc

    results, victim, pids_after, restarts, svc = asyncio.run(main())
    assert [(r.job.chunk.index, r.score) for r in results] == [(0, 0.95), (1, 0.05)]  # re-scored, then on
    assert results[0].job.attempts == 2 and not results[0].skipped
    assert restarts == 1 and svc.rescored == 1
    assert victim not in pids_after and pids_after


def test_a_chunk_that_kills_its_worker_every_time_is_skipped_not_retried_forever(monkeypatch):
    monkeypatch.setenv("SLEEPDET_S", "0.01")

    async def main():
        results = []
        svc = ScoringService("gbm", "", workers=1, queue_size=8, loader=f"{HERE / 'sleepdet.py'}:load",
                             on_result=results.append)
        await svc.start()
        skipped = metrics.get("chunks_skipped")
        poison = chunk(0)
        poison.audio[0] = 0.25  # sleepdet's process exits on this chunk
        svc.submit(ChunkJob("a", poison))
        svc.submit(ChunkJob("a", chunk(1, 0.4)))
        await _wait(lambda: len(results) == 2)
        await svc.close()
        return results, metrics.get("chunks_skipped") - skipped, svc

    results, skipped, svc = asyncio.run(main())
    assert results[0].job.chunk.index == 0 and results[0].score is None and results[0].skipped
    assert "skipped" in results[0].error and results[0].job.attempts == 2
    assert results[1].score == 0.95  # the leg is still scored after two pool restarts
    assert skipped == 1 and svc.pool_restarts == 2


def test_every_worker_process_is_started_with_its_detector_at_start():
    async def main():
        svc = ScoringService("gbm", "", workers=2, queue_size=8, loader=f"{HERE / 'fakedet.py'}:load")
        await svc.start()
        pids = svc.worker_pids()
        await svc.close()
        return pids

    assert len(asyncio.run(main())) == 2
