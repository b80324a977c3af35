"""Overload: the scoring queue sheds the OLDEST chunk PER LEG, serves legs round-robin, never blocks media."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from detector.chunking import SpeechChunk
from plugin import metrics
from plugin.scoring import ChunkJob, FairQueue, ScoringService, _init_worker

HERE = Path(__file__).resolve().parent


def chunk(i: int, level: float = 0.01) -> SpeechChunk:
    return SpeechChunk(index=i, start_s=2.0 * i, end_s=2.0 * i + 2, audio=np.full(16000, level, np.float32))


def job(leg: str, i: int) -> ChunkJob:
    return ChunkJob(leg, chunk(i))


def drain(q: FairQueue) -> list[tuple[str, int]]:
    out = []
    while (j := q.pop()) is not None:
        out.append((j.leg, j.chunk.index))
    return out


def test_a_full_queue_sheds_the_oldest_chunk_of_the_submitting_leg():
    q = FairQueue(4)
    for i in range(3):
        assert q.push(job("a", i)) is None
    assert q.push(job("b", 0)) is None
    victim = q.push(job("a", 3))
    assert (victim.leg, victim.chunk.index) == ("a", 0)  # a's stale chunk, not b's, not a's fresh one
    assert len(q) == 4
    assert sorted(drain(q)) == [("a", 1), ("a", 2), ("a", 3), ("b", 0)]


def test_a_leg_with_nothing_queued_takes_room_from_the_leg_holding_the_most():
    q = FairQueue(4)
    for i in range(3):
        q.push(job("a", i))
    q.push(job("b", 0))
    victim = q.push(job("c", 0))  # c has nothing queued: the flooding leg a pays, with its oldest
    assert (victim.leg, victim.chunk.index) == ("a", 0)
    assert sorted(drain(q)) == [("a", 1), ("a", 2), ("b", 0), ("c", 0)]


def test_legs_are_served_round_robin_and_each_leg_in_order():
    q = FairQueue(100)
    for i in range(5):
        q.push(job("a", i))
    q.push(job("b", 0))
    q.push(job("b", 1))
    q.push(job("c", 0))
    order = drain(q)
    assert order[:3] == [("a", 0), ("b", 0), ("c", 0)]  # one of each before anyone's second
    assert order[3:5] == [("a", 1), ("b", 1)]
    assert [i for leg, i in order if leg == "a"] == [0, 1, 2, 3, 4]


def test_a_retried_chunk_goes_back_to_the_head():
    q = FairQueue(4)
    q.push(job("a", 0))
    q.push(job("b", 0))
    j = q.pop()
    q.push_front(j)
    assert drain(q) == [("a", 0), ("b", 0)]


def _thread_service(queue_size: int, results: list) -> ScoringService:
    ex = ThreadPoolExecutor(1, initializer=_init_worker, initargs=(f"{HERE / 'slowdet.py'}:load", "gbm", ""))
    return ScoringService("gbm", "", workers=1, queue_size=queue_size, executor=ex, on_result=results.append)


def test_a_flooding_leg_sheds_its_own_oldest_chunks_and_never_starves_the_others(caplog):
    """Leg a produces a chunk every 10 ms, legs b and c one every 200 ms (within their fair share of a
    50 ms-per-chunk detector): b and c get all theirs scored, a keeps its newest, and the shedding is
    counted and logged without one line per chunk."""
    async def main():
        results = []
        svc = _thread_service(6, results)
        await svc.start()
        before = metrics.get("chunks_shed")
        for i in range(30):
            svc.submit(job("a", i))
            if i % 20 == 0:
                svc.submit(job("b", i // 20))
                svc.submit(job("c", i // 20))
            await asyncio.sleep(0.01)
        for _ in range(200):
            if svc.queued == 0 and len(results) >= 5:
                await asyncio.sleep(0.12)
                break
            await asyncio.sleep(0.02)
        await svc.close()
        return results, svc.shed, metrics.get("chunks_shed") - before

    with caplog.at_level(logging.WARNING, logger="plugin.scoring"):
        results, shed, counted = asyncio.run(main())
    got = [(r.job.leg, r.job.chunk.index) for r in results]
    assert [i for leg, i in got if leg == "b"] == [0, 1]  # nothing of b or c shed
    assert [i for leg, i in got if leg == "c"] == [0, 1]
    a_scored = [i for leg, i in got if leg == "a"]
    assert a_scored == sorted(a_scored) and a_scored[-1] == 29  # a's newest survive, in order
    assert shed == counted == 30 + 4 - len(results) > 0
    lines = [r for r in caplog.records if "shed" in r.getMessage()]
    assert 1 <= len(lines) < shed  # rate-limited: not one line per shed chunk


def test_while_a_leg_floods_another_leg_waits_at_most_one_rotation():
    """With legs a (20 queued) and b (1 queued after them), b's chunk is among the next two scored."""
    async def main():
        results = []
        svc = _thread_service(32, results)
        await svc.start()
        for i in range(20):
            svc.submit(job("a", i))
        svc.submit(job("b", 0))
        for _ in range(200):
            if any(r.job.leg == "b" for r in results):
                break
            await asyncio.sleep(0.01)
        await svc.close()
        return [(r.job.leg, r.job.chunk.index) for r in results]

    got = asyncio.run(main())
    assert ("b", 0) in got[:3]


def test_submit_never_waits_for_the_detector(monkeypatch):
    """With the detector stuck on a chunk, 40 submits from the event loop all return (shedding as needed):
    the media path, which submits, never waits for scoring."""
    import plugin.scoring as scoring

    release = threading.Event()
    monkeypatch.setattr(scoring, "_score_one", lambda audio: release.wait(30) and 0.5)

    async def main():
        results = []
        svc = _thread_service(4, results)
        await svc.start()
        svc.submit(job("a", 0))
        await asyncio.sleep(0.1)  # chunk 0 is with the stuck detector now
        for i in range(1, 41):
            svc.submit(job("a" if i % 2 else "b", i))
        state = (len(results), svc.queued, svc.shed)
        release.set()
        await _until(lambda: len(results) == 5)
        await svc.close()
        return state, results

    async def _until(pred):
        for _ in range(500):
            if pred():
                return
            await asyncio.sleep(0.01)

    (done_while_stuck, queued, shed), results = asyncio.run(main())
    assert done_while_stuck == 0 and queued == 4 and shed == 36
    assert sorted((r.job.leg, r.job.chunk.index) for r in results[1:]) == [("a", 37), ("a", 39), ("b", 38),
                                                                           ("b", 40)]
