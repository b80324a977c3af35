"""`callguard bench workers`: chunk throughput of remote scoring workers (Redis Streams), 1 and 2 side by side.

A private redis-server on a free loopback port; ``callguard worker`` processes (the real command, one
detector each); the plugin's real ``RemoteScoringService`` sends real 2-s speech chunks from
``tests/fixtures/corpus`` as fast as back-pressure allows (``max_pending`` unanswered) and the run measures
chunks scored per second from the first chunk sent to the last result received, per worker count.
"""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.load import CORPUS, ROOT, _cpu_s, start_bus_target


def speech_chunks(n: int) -> list[Any]:
    from detector.audio import load_audio
    from detector.chunking import SpeechChunk

    files = sorted(glob.glob(str(CORPUS / "**" / "*.wav"), recursive=True))
    audio = []
    for f in files:
        a = load_audio(f)[:16000]
        if a.size == 16000:
            audio.append(np.round(a * 32768) / 32768)
    return [SpeechChunk(index=i, start_s=2.0 * i, end_s=2.0 * i + 2, audio=audio[i % len(audio)].astype(np.float32))
            for i in range(n)]


async def _wait_for_workers(target: Any, stream: str, n: int, timeout: float = 120.0) -> None:
    """Until ``n`` workers have loaded their detector and joined the stream: the clock must not count one
    worker's start-up as the others' idle time (with a fast detector, one worker could otherwise take every
    chunk before the second one had started)."""
    import redis.asyncio as aioredis

    from plugin.scoring import workers_key

    client = aioredis.Redis.from_url(target.url, password=target.password or None)
    try:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if await client.hlen(workers_key(stream)) >= n:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{n} workers did not join {stream} within {timeout:.0f} s")
    finally:
        await client.aclose()


async def _throughput(target: Any, detector: str, chunks: list[Any], max_pending: int, stream: str,
                      n_workers: int = 1) -> dict[str, Any]:
    from plugin.scoring import ChunkJob, RemoteScoringService

    results: list[Any] = []
    done = asyncio.Event()

    def on_result(r: Any) -> None:
        results.append(r)
        if len(results) == len(chunks):
            done.set()

    svc = RemoteScoringService(detector, redis_url=target.url, password=target.password, stream=stream,
                               queue_size=len(chunks) + 1, max_pending=max_pending, result_timeout_s=60,
                               on_result=on_result)
    await svc.start(timeout=120)
    await _wait_for_workers(target, stream, n_workers)
    t0 = time.perf_counter()
    for i, c in enumerate(chunks):
        svc.submit(ChunkJob(f"leg-{i % 50}", c))
    await asyncio.wait_for(done.wait(), 600)
    wall = time.perf_counter() - t0
    await svc.close()
    lat = [r.scoring_s for r in results]
    return {"chunks": len(results), "errors": sum(r.score is None for r in results), "wall_s": round(wall, 3),
            "chunks_per_s": round(len(results) / wall, 1),
            "send_to_result_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1),
            "by_worker": {w: sum(r.worker == w for r in results) for w in sorted({str(r.worker) for r in results})}}


def bench_workers(n_chunks: int = 400, detector: str = "gbm", counts: tuple[int, ...] = (1, 2),
                  max_pending: int = 32, models_dir: str | None = None, loader: str | None = None) -> dict[str, Any]:
    chunks = speech_chunks(n_chunks)
    target = start_bus_target()
    if target.kind != "redis":
        target.close()
        return {"error": "redis-server not installed"}
    out: dict[str, Any] = {"detector": detector, "chunks": n_chunks, "max_pending": max_pending, "runs": []}
    tmp = tempfile.TemporaryDirectory(prefix="cg-bench-workers-")
    try:
        for n in counts:
            stream = f"bench:chunks:{n}"
            cfg = Path(tmp.name) / f"w{n}.toml"
            det = f'name = "{detector}"\nstream = "{stream}"\n'
            if models_dir:
                det += f'models_dir = "{models_dir}"\n'
            if loader:
                det += f'loader = "{loader}"\n'
            cfg.write_text(f'[redis]\nurl = "{target.url}"\n\n[detector]\n{det}')
            env = {**os.environ, "CALLGUARD_REDIS_PASSWORD": target.password, "OMP_NUM_THREADS": "1"}
            procs = [subprocess.Popen([sys.executable, "-m", "plugin.cli", "worker", "--config", str(cfg),
                                       "--consumer", f"w{n}-{k}"], cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for k in range(n)]
            try:
                cpu0 = {p.pid: _cpu_s(p.pid) for p in procs}
                t0 = time.perf_counter()
                run = asyncio.run(_throughput(target, detector, chunks, max_pending, stream, n_workers=n))
                wall = time.perf_counter() - t0
                run["workers"] = n
                run["worker_cpu_cores"] = round(sum(_cpu_s(p.pid) - cpu0[p.pid] for p in procs) / wall, 2)
                out["runs"].append(run)
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        p.kill()
        if len(out["runs"]) >= 2:
            out["speedup_2_vs_1"] = round(out["runs"][1]["chunks_per_s"] / out["runs"][0]["chunks_per_s"], 2)
    finally:
        tmp.cleanup()
        target.close()
    return out
