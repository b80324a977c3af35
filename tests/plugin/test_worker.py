"""Scale-out on Redis Streams, against a real private redis-server: chunks scored by `callguard worker`
processes, a worker killed mid-chunk (SIGKILL) has its chunk claimed and scored by another, results are
delivered once and in order per leg, and the plugin sheds oldest-first when too many chunks are pending."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from detector.chunking import SpeechChunk
from plugin.redis_conn import make_redis
from plugin.scoring import ChunkJob, RemoteScoringService, encode_pcm16, info_key
from plugin.worker import ChunkWorker, load_worker_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def chunk(i: int, level: float = 0.01) -> SpeechChunk:
    return SpeechChunk(index=i, start_s=2.0 * i, end_s=2.0 * i + 2, audio=np.full(16000, level, np.float32))


async def _wait(pred, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def _config(tmp_path: Path, lab, claim_idle_ms: int = 500) -> Path:
    cfg = tmp_path / "worker.toml"
    cfg.write_text(f'[redis]\nurl = "{lab.redis_url}"\n\n[detector]\nmode = "redis"\n'
                   f'loader = "{HERE / "sleepdet.py"}:load"\nstream = "t:chunks"\nclaim_idle_ms = {claim_idle_ms}\n')
    return cfg


class Workers:
    def __init__(self, cfg: Path, lab, env: dict[str, str]) -> None:
        self.cfg, self.env = cfg, {**os.environ, "CALLGUARD_REDIS_PASSWORD": lab.redis_password, **env}
        self.procs: list[subprocess.Popen] = []

    def start(self, consumer: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "plugin.cli", "worker", "--config", str(self.cfg),
                              "--consumer", consumer], cwd=ROOT, env=self.env)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def workers(tmp_path, private_redis):
    made: list[Workers] = []

    def make(env: dict[str, str], claim_idle_ms: int = 500) -> Workers:
        w = Workers(_config(tmp_path, private_redis, claim_idle_ms), private_redis, env)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


def _remote(lab, results: list, **kw) -> RemoteScoringService:
    return RemoteScoringService("gbm", redis_url=lab.redis_url, password=lab.redis_password, stream="t:chunks",
                                on_result=results.append, **kw)


def test_worker_config_reads_only_redis_and_detector(tmp_path, private_redis):
    cfg = load_worker_config(_config(tmp_path, private_redis, 750), env={})
    assert cfg.detector.stream == "t:chunks" and cfg.detector.claim_idle_ms == 750
    assert cfg.redis.url == private_redis.redis_url


def test_chunks_are_scored_by_a_worker_process_and_come_back_in_order(workers, private_redis):
    w = workers({"SLEEPDET_S": "0.02"})
    w.start("w1")

    async def main():
        results = []
        svc = _remote(private_redis, results)
        info = await svc.start(timeout=60)
        for i in range(4):
            svc.submit(ChunkJob("a", chunk(i, 0.4 if i % 2 else 0.01)))
            svc.submit(ChunkJob("b", chunk(i, 0.01)))
        await _wait(lambda: len(results) == 8)
        await svc.close()
        return info, results

    info, results = asyncio.run(main())
    assert info.name == "fake" and info.warn == 0.6
    assert [(r.job.chunk.index, r.score) for r in results if r.job.leg == "a"] == \
        [(0, 0.05), (1, 0.95), (2, 0.05), (3, 0.95)]
    assert [r.job.chunk.index for r in results if r.job.leg == "b"] == [0, 1, 2, 3]
    assert {r.worker for r in results} == {"w1"}


def test_a_worker_killed_mid_chunk_has_its_chunk_claimed_and_scored_by_another(workers, private_redis,
                                                                             tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    w = workers({"SLEEPDET_S": "1.0", "SLEEPDET_MARK": str(marks)}, claim_idle_ms=500)
    first = w.start("doomed")

    async def main():
        results = []
        svc = _remote(private_redis, results, result_timeout_s=20)
        await svc.start(timeout=60)
        svc.submit(ChunkJob("a", chunk(0, 0.4)))
        await _wait(lambda: any(marks.iterdir()))  # the chunk is being scored by the only worker
        assert next(marks.iterdir()).name.startswith(f"{first.pid}-")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        w.start("rescuer")
        await _wait(lambda: len(results) == 1, timeout=40)
        svc.submit(ChunkJob("a", chunk(1, 0.01)))
        await _wait(lambda: len(results) == 2, timeout=20)
        await asyncio.sleep(0.5)  # nothing else arrives: exactly one result per chunk
        r = make_redis(private_redis.redis_url, private_redis.redis_password)
        pending = await r.xpending("t:chunks", "callguard-workers")
        length = await r.xlen("t:chunks")
        await r.aclose()
        await svc.close()
        return results, pending, length, svc

    results, pending, length, svc = asyncio.run(main())
    assert [(r.job.chunk.index, r.score, r.worker) for r in results] == [(0, 0.95, "rescuer"), (1, 0.05, "rescuer")]
    assert not results[0].skipped and svc.duplicate_results == 0
    assert pending["pending"] == 0 and length == 0  # acknowledged and deleted


def test_results_are_delivered_once_and_in_order_per_leg(private_redis):
    """A stand-in consumer answers chunks 2, 1, 0 (and chunk 1 twice, as after a claim of a slow worker's
    chunk): the plugin delivers 0, 1, 2, each once."""
    async def main():
        results = []
        r = make_redis(private_redis.redis_url, private_redis.redis_password, decode_responses=False)
        await r.hset(info_key("t:chunks"), mapping={"name": "gbm", "version": "x", "warn": "0.5", "hangup": "0.9",
                                                    "eer": "0.3"})
        await r.xgroup_create("t:chunks", "g", id="0", mkstream=True)
        svc = _remote(private_redis, results)
        await svc.start(timeout=10)
        for i in range(3):
            svc.submit(ChunkJob("a", chunk(i)))
        got = []
        while len(got) < 3:
            reply = await r.xreadgroup("g", "stand-in", {"t:chunks": ">"}, count=10, block=2000)
            got += reply[0][1] if reply else []
        answers = [got[2], got[1], got[1], got[0]]
        delivered_early = []
        for n, (_eid, fields) in enumerate(answers):
            idx = int(fields[b"index"])
            await r.xadd(fields[b"reply"], {"id": fields[b"id"], "score": repr(0.1 * (idx + 1)), "error": "",
                                            "worker": "stand-in", "skipped": "0"})
            if n < 3:
                await asyncio.sleep(0.3)
                delivered_early.append(len(results))
        await _wait(lambda: len(results) == 3)
        await asyncio.sleep(0.3)
        await svc.close()
        await r.aclose()
        return results, delivered_early, svc

    results, delivered_early, svc = asyncio.run(main())
    assert delivered_early == [0, 0, 0]  # nothing before chunk 0's result
    assert [(r.job.chunk.index, round(r.score, 3)) for r in results] == [(0, 0.1), (1, 0.2), (2, 0.3)]
    assert svc.duplicate_results == 1


def test_back_pressure_bounds_pending_chunks_and_sheds_oldest_first(private_redis):
    async def main():
        results = []
        r = make_redis(private_redis.redis_url, private_redis.redis_password)
        await r.hset(info_key("t:chunks"), mapping={"name": "gbm", "version": "x", "warn": "0.5", "hangup": "0.9",
                                                    "eer": "0.3"})
        svc = _remote(private_redis, results, max_pending=2, queue_size=3, result_timeout_s=1.0)
        await svc.start(timeout=10)
        for i in range(10):  # nobody consumes the stream
            svc.submit(ChunkJob("a", chunk(i)))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        state = (svc.in_flight, svc.queued, svc.shed, await r.xlen("t:chunks"))
        await _wait(lambda: len(results) >= 2, timeout=10)  # no worker answered: reported skipped
        await asyncio.sleep(0.3)
        xlen_after = await r.xlen("t:chunks")  # timed-out chunks were deleted from the stream
        await svc.close()
        await r.aclose()
        return state, results, xlen_after

    (in_flight, queued, shed, xlen), results, xlen_after = asyncio.run(main())
    assert (in_flight, queued, shed, xlen) == (2, 3, 5, 2)
    assert xlen_after <= 2  # no pile-up in Redis while no worker runs
    assert [r.job.chunk.index for r in results[:2]] == [0, 1]
    assert all(r.skipped and r.score is None and "no worker result" in r.error for r in results)


def test_a_chunk_delivered_too_often_is_answered_skipped_without_scoring(private_redis):
    class Boom:
        name, version = "fake", "t"

        def score(self, chunks):
            raise AssertionError("must not be scored")

    async def main():
        r = make_redis(private_redis.redis_url, private_redis.redis_password, decode_responses=False)
        w = ChunkWorker(r, Boom(), stream="t:chunks", group="g")
        await r.xgroup_create("t:chunks", "g", id="0", mkstream=True)
        eid = await r.xadd("t:chunks", {"id": "p/1", "reply": "t:res", "pcm16": encode_pcm16(chunk(0).audio)})
        await r.xreadgroup("g", "x", {"t:chunks": ">"}, count=1)
        await w.handle(eid, {b"id": b"p/1", b"reply": b"t:res", b"pcm16": b""}, deliveries=3)
        res = await r.xrange("t:res")
        left = await r.xlen("t:chunks")
        await r.aclose()
        return res, left

    res, left = asyncio.run(main())
    fields = res[0][1]
    assert fields[b"skipped"] == b"1" and fields[b"score"] == b"" and b"skipped" in fields[b"error"]
    assert left == 0


def test_dead_consumers_with_nothing_pending_are_removed_and_a_stopping_worker_leaves_the_group(private_redis):
    class Fixed:
        name, version = "fake", "t"
        thresholds = SimpleNamespace(warn=0.6, hangup=0.9, eer=0.5)

        def score(self, chunks):
            return [0.5 for _ in chunks]

    async def consumers(r) -> dict[str, int]:
        return {c["name"].decode(): int(c["pending"]) for c in await r.xinfo_consumers("t:chunks", "g")}

    async def main():
        r = make_redis(private_redis.redis_url, private_redis.redis_password, decode_responses=False)
        await r.xgroup_create("t:chunks", "g", id="0", mkstream=True)
        # "dead": joined and went away with nothing pending; "stuck": went away holding a chunk
        await r.xgroup_createconsumer("t:chunks", "g", "dead")
        await r.xadd("t:chunks", {"id": "p/1", "reply": "t:res", "pcm16": encode_pcm16(chunk(0).audio)})
        await r.xreadgroup("g", "stuck", {"t:chunks": ">"}, count=1)
        for name in ("dead", "stuck"):
            await r.hset("t:chunks:workers", name, "0")
        w = ChunkWorker(r, Fixed(), stream="t:chunks", group="g", consumer="live", claim_idle_ms=100,
                        reap_idle_ms=200, block_ms=50)
        await w.setup()
        await asyncio.sleep(0.3)
        reaped = await w.reap()
        after_reap = await consumers(r)
        stop = asyncio.Event()
        serving = asyncio.create_task(w._serve(stop))
        await _wait(lambda: w.claimed == 1)  # the stuck consumer's chunk is claimed and answered
        await asyncio.sleep(0.3)
        reaped += await w.reap()              # now "stuck" holds nothing and is reaped too
        stop.set()
        await serving
        left = await consumers(r)
        hash_left = await r.hkeys("t:chunks:workers")
        await r.aclose()
        return reaped, after_reap, left, hash_left, w.reaped

    reaped, after_reap, left, hash_left, n = asyncio.run(main())
    assert reaped == ["dead", "stuck"] and n == 2
    assert after_reap == {"stuck": 1}  # a consumer holding a chunk is never removed
    assert left == {} and hash_left == []        # the live worker left on its clean stop


def test_detector_mode_keys_are_validated():
    from plugin.config import ConfigError, parse_config

    base = {"ari": {"password": "x"}, "media": {"port": 0}}
    cfg = parse_config({**base, "detector": {"mode": "redis", "max_pending": 8}}, env={})
    assert (cfg.detector.mode, cfg.detector.max_pending, cfg.detector.stream) == ("redis", 8, "callguard:chunks")
    with pytest.raises(ConfigError, match="detector.mode"):
        parse_config({**base, "detector": {"mode": "cloud"}}, env={})
    with pytest.raises(ConfigError, match="result_timeout_ms"):
        parse_config({**base, "detector": {"mode": "redis", "result_timeout_ms": 1000, "claim_idle_ms": 2000}},
                     env={})
