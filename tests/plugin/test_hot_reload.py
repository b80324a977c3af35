"""Issue #9: the running plugin switches to a newly installed model without dropping calls or chunks.

Real GBM models (the shipped one, copied to a private models directory); a second version is the same booster
with another version name and other thresholds, installed the way `callguard retrain` does it
(``detector.versions.promote``). A broken version is a truncated ``gbm.txt``: a clean load error when cut in
its header, a worker process that aborts inside LightGBM when cut mid-tree.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from detector import versions
from detector.chunking import SpeechChunk
from plugin import metrics
from plugin.config import parse_config
from plugin.guard import Guard, LegState
from plugin.media import LegTap
from plugin.policy import LegEvidence
from plugin.scoring import ChunkJob, ReloadError, ScoringService
from plugin.telephony import Leg

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models"
FILES = ("gbm.txt", "gbm.calibration.json", "gbm.md")

pytestmark = pytest.mark.skipif(not (SHIPPED / "gbm.txt").is_file(), reason="no shipped GBM model")


def _models(tmp_path: Path) -> Path:
    """A private models directory holding the shipped GBM as its first (installed) version."""
    d = tmp_path / "models"
    d.mkdir()
    for f in FILES:
        shutil.copyfile(SHIPPED / f, d / f)
    versions.ensure_versioned(d)
    return d


def _stage(models: Path, name: str, *, version: str, warn: float, hangup: float, cut: int | None = None) -> str:
    """A version directory like `callguard retrain` leaves (same booster, other version name and thresholds;
    ``cut``: gbm.txt truncated to that many bytes). Not installed yet."""
    d = versions.versions_dir(models) / name
    d.mkdir(parents=True)
    for f in FILES:
        shutil.copyfile(SHIPPED / f, d / f)
    cal = json.loads((d / "gbm.calibration.json").read_text())
    cal["version"] = version
    cal["thresholds"].update(far_1pct=warn, far_0_1pct=hangup)
    (d / "gbm.calibration.json").write_text(json.dumps(cal))
    if cut is not None:
        (d / "gbm.txt").write_bytes((SHIPPED / "gbm.txt").read_bytes()[:cut])
    versions.write_version_info(d, {"source": "test", "model_version": version})
    return name


def _chunk(i: int) -> SpeechChunk:
    rng = np.random.default_rng(i)
    audio = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    return SpeechChunk(index=i, start_s=2.0 * i, end_s=2.0 * i + 2, audio=audio)


async def _until(pred, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def _service(models: Path, results: list, **kw) -> ScoringService:
    return ScoringService("gbm", str(models), workers=1, queue_size=1000, on_result=results.append, **kw)


def test_chunks_submitted_during_a_reload_are_each_delivered_once_and_stamped_with_the_version_that_scored_them(
        tmp_path):
    models = _models(tmp_path)
    v2 = _stage(models, "v2", version="gbm-test-v2", warn=0.5, hangup=0.6)

    async def main():
        results = []
        svc = _service(models, results)
        old = await svc.start()
        sent: list[int] = []
        stop = asyncio.Event()

        async def feed():  # one leg talking: a chunk every 40 ms, before, during and after the reload
            i = 0
            while not stop.is_set():
                svc.submit(ChunkJob("a", _chunk(i)))
                sent.append(i)
                i += 1
                await asyncio.sleep(0.04)

        feeder = asyncio.create_task(feed())
        await _until(lambda: len(results) >= 5)
        versions.promote(models, v2)
        delivered_before = len(results)
        t0 = time.monotonic()
        new = await svc.reload()
        reload_s = time.monotonic() - t0
        during = len(results) - delivered_before
        sent_at_swap = len(sent)
        await asyncio.sleep(0.3)
        stop.set()
        await feeder
        await _until(lambda: len(results) == len(sent) or svc.shed > 0)
        await svc.close()
        print(f"\nreload {reload_s * 1000:.0f} ms; {during} chunk(s) delivered during it; {len(sent)} sent in all")
        return old, new, results, sent, sent_at_swap, svc

    old, new, results, sent, sent_at_swap, svc = asyncio.run(main())
    assert old.version != "gbm-test-v2"
    assert (new.version, new.warn, new.hangup) == ("gbm-test-v2", 0.5, 0.6)
    assert svc.shed == 0 and svc.errors == 0
    indices = [r.job.chunk.index for r in results]
    assert sorted(indices) == sent and len(set(indices)) == len(indices)  # every chunk exactly once
    stamps = [r.detector.version for r in results]
    first_new = stamps.index("gbm-test-v2")
    assert first_new >= 5 and set(stamps[:first_new]) == {old.version}  # old, then new, never mixed again
    assert set(stamps[first_new:]) == {"gbm-test-v2"}
    assert all(r.detector.version == "gbm-test-v2" for r in results if r.job.chunk.index >= sent_at_swap)
    assert svc.reloads == 1 and svc.info == new


@pytest.mark.parametrize("cut, why", [(1000, "LightGBMError"), (20000, "died while loading")],
                         ids=["load-error", "worker-aborts"])
def test_a_broken_new_model_leaves_the_old_one_serving_and_is_counted(tmp_path, caplog, cut, why):
    models = _models(tmp_path)
    bad = _stage(models, "broken", version="gbm-broken", warn=0.5, hangup=0.6, cut=cut)

    async def main():
        results = []
        svc = _service(models, results)
        old = await svc.start()
        failures = metrics.get("detector_reload_failures")
        versions.promote(models, bad)
        svc.submit(ChunkJob("a", _chunk(0)))
        with pytest.raises(ReloadError) as err:
            await svc.reload()
        svc.submit(ChunkJob("a", _chunk(1)))
        await _until(lambda: len(results) == 2)
        await svc.close()
        return old, svc, results, str(err.value), metrics.get("detector_reload_failures") - failures

    with caplog.at_level(logging.ERROR, logger="plugin.scoring"):
        old, svc, results, error, counted = asyncio.run(main())
    assert why in error
    assert counted == 1 and svc.reload_failures == 1 and svc.reloads == 0
    assert svc.info == old
    assert [(r.job.chunk.index, r.error, r.detector.version) for r in results] == [
        (0, None, old.version), (1, None, old.version)]  # scored by the old detector, before and after
    assert all(0.0 <= r.score <= 1.0 for r in results)
    assert any("detector reload failed" in r.getMessage() and why in r.getMessage() for r in caplog.records)


class _Bus:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def publish(self, msg: dict) -> bool:
        self.messages.append(msg)
        return True


def test_live_legs_take_the_new_thresholds_and_keep_their_evidence(tmp_path, caplog):
    models = _models(tmp_path)
    v2 = _stage(models, "v2", version="gbm-test-v2", warn=0.01, hangup=0.02)
    cfg = parse_config({"ari": {"password": "s3cret"}, "media": {"port": 0},
                        "detector": {"models_dir": str(models)}}, {}, check_port=False)

    async def main():
        bus = _Bus()
        svc = _service(models, [])
        guard = Guard(cfg, None, None, svc, bus)  # type: ignore[arg-type]
        await svc.start()
        old = svc.info
        leg = Leg(call_id="c1", leg="caller", channel_id="chan-1", tap_channel_id="snoop", spy="in")
        guard.legs[leg.key] = state = LegState(
            leg=leg, policy=cfg.policies["default"],
            # thresholds no chunk mean can reach: the leg is bona fide before the reload whatever the shipped
            # model makes of the test chunks (the v6 GBM scores them above its own warn threshold)
            evidence=LegEvidence(window=3, min_chunks=2, warn=1.0, hangup=1.0),
            tap=LegTap(key=leg.key, fmt="ulaw", on_chunk=lambda k, c: None))
        for i in range(3):
            svc.submit(ChunkJob(leg.key, _chunk(i)))
        await _until(lambda: state.evidence.n_scored == 3)
        before = (list(state.evidence.scores), state.evidence.verdict, list(state.evidence.history))
        versions.promote(models, v2)
        with caplog.at_level(logging.INFO, logger="plugin.guard"):
            await svc.reload()
        after = (list(state.evidence.scores), state.evidence.verdict, list(state.evidence.history))
        thresholds = (state.evidence.warn, state.evidence.hangup, state.evidence.hangup_window)
        for i in (3, 4):  # the shipped calibration measures hang-up on 5-chunk means: five chunks back a spoof
            svc.submit(ChunkJob(leg.key, _chunk(i)))
        await _until(lambda: state.evidence.n_scored == 5)
        await svc.close()
        return old, before, after, thresholds, state, bus.messages

    old, before, after, thresholds, state, messages = asyncio.run(main())
    assert old.warn > 0.5  # the shipped model's thresholds, so the chunks so far are bona fide
    assert before[1] == "bonafide" and after == before  # evidence and verdict kept by the reload
    assert thresholds == (0.01, 0.02, 5)
    assert state.evidence.verdict == "spoof"  # the next chunks are judged with the new thresholds
    chunks = [m for m in messages if m["type"] == "chunk"]
    assert [m["detector_version"] for m in chunks] == [old.version] * 3 + ["gbm-test-v2"] * 2
    lines = [r.getMessage() for r in caplog.records if "detector reloaded" in r.getMessage()]
    assert len(lines) == 1 and old.version in lines[0] and "gbm-test-v2" in lines[0] and "0.010" in lines[0]
    assert "1 live leg" in lines[0]


async def _watching_service(tmp_path: Path, models: Path) -> tuple[Any, Any]:
    """A Service on ``models`` with its detector started and its version watcher polling every 0.1 s (no ARI,
    no media): (the service, the version installed at start)."""
    from plugin.service import Service

    cfg = parse_config({"ari": {"password": "s3cret"}, "media": {"port": 0}, "http": {"enabled": False},
                        "redis": {"spool_path": str(tmp_path / "spool.jsonl"),
                                  "summary_log": str(tmp_path / "summary.jsonl")},
                        "detector": {"models_dir": str(models), "reload_interval_s": 0.1}}, {}, check_port=False)
    service = Service(cfg)
    mod, installed = await service._installed_version()
    await service.scoring.start()
    service._model_watch = asyncio.create_task(service._watch_models(mod, installed))
    return service, installed


def test_the_service_watcher_reloads_once_per_installed_version_and_not_at_start(tmp_path):
    models = _models(tmp_path)
    v2 = _stage(models, "v2", version="gbm-test-v2", warn=0.5, hangup=0.6)

    async def main():
        service, installed = await _watching_service(tmp_path, models)
        await asyncio.sleep(0.5)  # several polls with nothing new
        at_start = service.scoring.reloads
        versions.promote(models, v2)
        await _until(lambda: service.scoring.reloads == 1)
        await asyncio.sleep(0.5)  # more polls of the same version
        after_one = service.scoring.reloads
        versions.rollback(models, "test")  # the first version again: one more change
        await _until(lambda: service.scoring.reloads == 2)
        await asyncio.sleep(0.5)
        versions_seen = service.scoring.info.version
        reloads = service.scoring.reloads
        await service.close()
        return installed, at_start, after_one, reloads, versions_seen, service

    installed, at_start, after_one, reloads, version, service = asyncio.run(main())
    assert installed is not None and at_start == 0
    assert after_one == 1 and reloads == 2
    assert version != "gbm-test-v2"  # rolled back to the shipped version
    assert service._model_watch is None


def test_the_first_versioning_snapshot_of_the_running_model_does_not_reload_it(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for f in FILES:
        shutil.copyfile(SHIPPED / f, models / f)  # not versioned yet, as shipped

    async def main():
        service, installed = await _watching_service(tmp_path, models)
        versions.ensure_versioned(models)  # what the first `callguard retrain` does before training
        await asyncio.sleep(0.6)  # several polls see the new pointer
        after_snapshot = service.scoring.reloads
        versions.promote(models, _stage(models, "v2", version="gbm-test-v2", warn=0.5, hangup=0.6))
        await _until(lambda: service.scoring.reloads == 1)
        version = service.scoring.info.version
        await service.close()
        return installed, after_snapshot, version

    installed, after_snapshot, version = asyncio.run(main())
    assert installed is None and after_snapshot == 0
    assert version == "gbm-test-v2"


def test_hot_reload_is_off_with_interval_zero_and_in_remote_mode(tmp_path):
    from plugin.service import Service

    models = _models(tmp_path)
    base = {"ari": {"password": "s3cret"}, "media": {"port": 0}, "http": {"enabled": False}}
    off = parse_config({**base, "detector": {"models_dir": str(models), "reload_interval_s": 0}}, {},
                       check_port=False)
    remote = parse_config({**base, "detector": {"models_dir": str(models), "mode": "redis"}}, {}, check_port=False)

    async def main():
        return [await Service(c)._installed_version() for c in (off, remote)]

    assert asyncio.run(main()) == [(None, None), (None, None)]


def test_service_close_closes_the_review_capture(tmp_path):
    from plugin.review import Capture
    from plugin.service import Service

    cfg = parse_config({"ari": {"password": "s3cret"}, "media": {"port": 0}, "http": {"enabled": False},
                        "redis": {"spool_path": str(tmp_path / "spool.jsonl")},
                        "capture": {"enabled": True, "dir": str(tmp_path / "rv")}}, {}, check_port=False)
    service = Service(cfg)
    capture = Capture.from_config(cfg)
    service.guard = SimpleNamespace(capture=capture)  # type: ignore[assignment]
    asyncio.run(service.close())
    assert capture._closed


# ------------------------------------------------------------------ remote mode: `callguard worker` reloads
def _remote_setup(models: Path, lab):
    from detector.scoring import load_detector
    from plugin.redis_conn import make_redis
    from plugin.scoring import RemoteScoringService
    from plugin.worker import ChunkWorker, HotReload

    reload = HotReload(str(models), 0.1, "detector.scoring:load_detector", "gbm", versions.current_version(models))
    client = make_redis(lab.redis_url, lab.redis_password, decode_responses=False)
    worker = ChunkWorker(client, load_detector("gbm", models), stream="t:chunks", group="g", consumer="w1",
                         block_ms=100, requested="gbm", reload=reload)
    results: list = []
    svc = RemoteScoringService("gbm", redis_url=lab.redis_url, password=lab.redis_password, stream="t:chunks",
                               queue_size=1000, on_result=results.append)
    return client, worker, svc, results


def test_a_remote_worker_switches_to_a_new_version_between_chunks_and_the_plugin_takes_its_thresholds(
        tmp_path, private_redis):
    from plugin.scoring import info_key

    models = _models(tmp_path)
    v2 = _stage(models, "v2", version="gbm-test-v2", warn=0.5, hangup=0.6)

    async def main():
        client, worker, svc, results = _remote_setup(models, private_redis)
        stop = asyncio.Event()
        run = asyncio.create_task(worker.run(stop))
        old = await svc.start(timeout=30)
        swaps: list = []
        svc.on_reload = lambda o, n: swaps.append((o.version, n.version, n.warn, n.hangup))
        sent: list[int] = []

        async def feed(n: int) -> None:
            for _ in range(n):
                svc.submit(ChunkJob("a", _chunk(len(sent))))
                sent.append(len(sent))
                await asyncio.sleep(0.04)

        await feed(5)
        versions.promote(models, v2)
        t0 = time.monotonic()
        feeding = asyncio.create_task(feed(10_000))
        await _until(lambda: svc.info.version == "gbm-test-v2", timeout=60)
        took = time.monotonic() - t0
        feeding.cancel()
        await feed(5)
        await _until(lambda: len(results) == len(sent))
        announced = (await client.hget(info_key("t:chunks"), "version")).decode()
        stop.set()
        await run
        await svc.close()
        await client.aclose()
        print(f"\nremote: plugin on the new version {took * 1000:.0f} ms after promotion; {len(sent)} chunks")
        return old, swaps, results, sent, announced, worker, svc

    old, swaps, results, sent, announced, worker, svc = asyncio.run(main())
    assert old.version != "gbm-test-v2" and announced == "gbm-test-v2"
    assert worker.reloads == 1 and worker.reload_failures == 0
    assert swaps == [(old.version, "gbm-test-v2", 0.5, 0.6)]  # the plugin's owner (the guard) told once
    assert svc.shed == 0 and all(r.error is None for r in results)
    indices = [r.job.chunk.index for r in results]
    assert sorted(indices) == sent and len(set(indices)) == len(indices)
    stamps = [r.detector.version for r in results]
    first_new = stamps.index("gbm-test-v2")
    assert first_new >= 5 and set(stamps[:first_new]) == {old.version} and set(stamps[first_new:]) == {"gbm-test-v2"}


def test_a_remote_worker_keeps_its_detector_when_the_new_model_kills_the_process_loading_it(tmp_path,
                                                                                          private_redis):
    models = _models(tmp_path)
    bad = _stage(models, "broken", version="gbm-broken", warn=0.5, hangup=0.6, cut=20000)

    async def main():
        client, worker, svc, results = _remote_setup(models, private_redis)
        stop = asyncio.Event()
        run = asyncio.create_task(worker.run(stop))
        old = await svc.start(timeout=30)
        failures = metrics.get("detector_reload_failures")
        versions.promote(models, bad)
        await _until(lambda: worker.reload_failures == 1, timeout=60)
        svc.submit(ChunkJob("a", _chunk(0)))
        await _until(lambda: len(results) == 1)
        stop.set()
        await run
        await svc.close()
        await client.aclose()
        return old, worker, svc, results, metrics.get("detector_reload_failures") - failures

    old, worker, svc, results, counted = asyncio.run(main())
    assert counted == 1 and worker.reloads == 0
    assert results[0].error is None and 0.0 <= results[0].score <= 1.0  # still scoring, with the old model
    assert svc.info == old and results[0].detector.version == old.version


def hang_when_told(name: str, models_dir: str | None = None):
    """A loader (run in the worker processes) that loads the real detector, or hangs while a file HANG is in
    the models directory: a new model whose load never ends."""
    from detector.scoring import load_detector

    while models_dir and (Path(models_dir) / "HANG").exists():
        time.sleep(0.1)
    return load_detector(name, models_dir)


def test_a_new_model_that_never_finishes_loading_times_out_and_the_old_one_keeps_serving(tmp_path):
    models = _models(tmp_path)

    async def main():
        results = []
        svc = _service(models, results, loader=f"{Path(__file__).resolve()}:hang_when_told")
        old = await svc.start()
        pids = svc.worker_pids()
        (models / "HANG").touch()
        with pytest.raises(ReloadError, match="no answer from the new detector workers within 2 s"):
            await svc.reload(timeout=2.0)
        svc.submit(ChunkJob("a", _chunk(0)))
        await _until(lambda: len(results) == 1)
        (models / "HANG").unlink()
        pids_after = svc.worker_pids()
        new = await svc.reload()  # the next attempt, with the model loading again, succeeds
        await svc.close()
        return old, new, results, pids, pids_after, svc

    old, new, results, pids, pids_after, svc = asyncio.run(main())
    assert results[0].error is None and results[0].detector == old
    assert pids_after == pids  # the old workers kept serving; the hung one was ended, not swapped in
    assert svc.reload_failures == 1 and svc.reloads == 1 and new.version == old.version


def test_a_worker_dying_across_a_swap_has_its_chunk_scored_on_the_new_pool_which_is_still_restarted_on_death(
        tmp_path, monkeypatch):
    """Pool mechanics only (a stand-in detector, 3 s per chunk in the old pool): the old pool's worker is killed
    while its chunk is in flight after the swap; the old pool is not restarted, the chunk is scored again on
    the new pool, once. Then the new pool's worker dies: the new pool is restarted as usual."""
    import os
    import signal

    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("SLEEPDET_S", "3")  # read by the worker processes spawned from now on
    monkeypatch.setenv("SLEEPDET_MARK", str(marks))

    async def main():
        results = []
        svc = ScoringService("gbm", "", workers=1, queue_size=8, on_result=results.append,
                             loader=f"{Path(__file__).resolve().parent / 'sleepdet.py'}:load")
        await svc.start()
        svc.submit(ChunkJob("a", SpeechChunk(0, 0.0, 2.0, np.full(16000, 0.4, np.float32))))
        await _until(lambda: any(marks.iterdir()))  # chunk 0 is being scored by the old pool
        victim = int(next(marks.iterdir()).name.split("-")[0])
        monkeypatch.setenv("SLEEPDET_S", "0.05")  # the new pool (and its restart) score fast
        reload = asyncio.create_task(svc.reload())
        await _until(lambda: svc.reloads == 1)  # swapped; chunk 0 still in flight on the old pool
        assert not results
        os.kill(victim, signal.SIGKILL)
        await reload
        await _until(lambda: len(results) == 1)
        restarts_after_swap = svc.pool_restarts
        new_pids = svc.worker_pids()
        os.kill(new_pids[0], signal.SIGKILL)  # now a worker of the new pool dies
        await asyncio.sleep(0.2)
        svc.submit(ChunkJob("a", SpeechChunk(1, 2.0, 4.0, np.full(16000, 0.01, np.float32))))
        await _until(lambda: len(results) == 2)
        pids_end = svc.worker_pids()
        await svc.close()
        return results, restarts_after_swap, new_pids, pids_end, svc

    results, restarts_after_swap, new_pids, pids_end, svc = asyncio.run(main())
    assert [(r.job.chunk.index, r.score, r.error) for r in results] == [(0, 0.95, None), (1, 0.05, None)]
    assert results[0].job.attempts == 2 and svc.rescored >= 1
    assert restarts_after_swap == 0  # the old pool's death did not replace the (new) current pool
    assert svc.pool_restarts == 1 and pids_end and set(pids_end).isdisjoint(new_pids)
