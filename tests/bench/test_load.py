"""The load generator and the worker benchmark run end to end (tiny sizes; the speed targets are measured
by `callguard bench load|workers`, never asserted here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.load import judge, leg_memory, run_load, speech_ulaw

FAKEDET = Path(__file__).resolve().parent.parent / "plugin" / "fakedet.py"
SLEEPDET = Path(__file__).resolve().parent.parent / "plugin" / "sleepdet.py"


def test_the_speech_is_the_corpus_fixture_in_ulaw_packets():
    audio = speech_ulaw()
    assert len(audio) % 160 == 0 and len(audio) > 60 * 8000  # over a minute of speech to loop
    assert len(set(audio[:8000])) > 20  # speech, not silence


def test_a_small_load_run_goes_through_the_real_path_and_reports():
    r = run_load(4, 5.0, "gbm", loader=f"{FAKEDET}:load")
    assert r["packets_sent"] == 250 + 225 + 200 + 175  # 5 s of 20 ms packets; leg i joins at i/4 of 2 s
    assert r["packets_received"] == r["packets_sent"]
    assert r["chunks"] >= 3  # real speech through the VAD gate became chunks
    assert r["chunks_scored"] + r["chunks_shed"] + r["chunk_errors"] == r["chunks"]
    assert r["verdict_latency_p50_ms"] is not None and r["verdict_latency_p50_ms"] > 0
    assert r["bus"] == ("redis" if shutil.which("redis-server") else "spool")
    assert set(r["cpu_cores"]) >= {"plugin", "sender", "scoring_worker_0"}
    assert isinstance(r["kept_up"], bool)


def _result(**kw):
    base = {"legs": 100, "chunks_shed": 0, "packets_lost_pct": 0.0, "packets_late_gt_60ms": 0,
            "packets_received": 100_000, "sender_late_packets": 0, "sent": 100_000,
            "queue_depth_mean_first_third": 1.0, "queue_depth_mean_last_third": 1.5,
            "verdict_latency_p95_ms": 80.0, "drain_after_end_s": 0.1}
    return {**base, **kw}


def test_judge_says_why_a_run_did_not_keep_up():
    assert judge(_result()) == (True, [])
    ok, why = judge(_result(chunks_shed=3, queue_depth_mean_last_third=40.0))
    assert not ok and any("shed" in w for w in why) and any("backlog grew" in w for w in why)
    ok, why = judge(_result(packets_late_gt_60ms=5000))
    assert not ok and "late" in why[0]


def test_per_leg_objects_are_measured_with_tracemalloc():
    m = leg_memory(5)
    assert m["held"] == 5 and 1000 < m["tracemalloc_bytes_per_leg"] < 2_000_000


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server not installed")
def test_worker_benchmark_runs_one_then_two_remote_workers(monkeypatch):
    from bench.workers import bench_workers

    monkeypatch.setenv("SLEEPDET_S", "0.01")
    out = bench_workers(24, "gbm", loader=f"{SLEEPDET}:load")
    assert [r["workers"] for r in out["runs"]] == [1, 2]
    assert all(r["chunks"] == 24 and r["errors"] == 0 for r in out["runs"])
    assert len(out["runs"][1]["by_worker"]) == 2 and sum(out["runs"][1]["by_worker"].values()) == 24
    assert out["speedup_2_vs_1"] > 0


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server not installed")
def test_a_load_run_can_score_in_remote_workers_over_redis_streams():
    r = run_load(3, 5.0, "gbm", loader=f"{FAKEDET}:load", remote_workers=1)
    assert r["scoring"] == "redis" and "remote_worker_0" in r["cpu_cores"]
    assert r["chunks"] >= 3 and r["chunks_scored"] == r["chunks"]
    assert r["verdict_latency_p50_ms"] is not None
