"""`callguard bench calls` against the real lab: three concurrent SIP calls (two human recordings, one
espeak-ng voice) through a private Asterisk 16, redis-server and `callguard serve`; every call is guarded,
every chunk the offline chunker cuts from the played audio is scored, and nothing is left in Asterisk.

The bench starts and stops its own lab (one at a time, like the other integration tests)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.calls import run_calls

pytestmark = pytest.mark.integration

MODELS = Path(__file__).resolve().parents[2] / "models"


def detector_choice() -> tuple[str, str]:
    """As the other integration tests (conftest.detector_choice): the shipped GBM model, or the stand-in
    named by CALLGUARD_IT_LOADER (development only)."""
    loader = os.environ.get("CALLGUARD_IT_LOADER", "")
    if not loader and not ((MODELS / "gbm.txt").is_file() and (MODELS / "gbm.calibration.json").is_file()):
        pytest.skip("the GBM model (models/gbm.txt + gbm.calibration.json) is not shipped yet")
    return "gbm", loader


def test_three_concurrent_calls_are_all_guarded_and_every_expected_chunk_is_scored():
    missing = [t for t in ("asterisk", "redis-server", "sipp", "espeak-ng") if not shutil.which(t)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    detector, loader = detector_choice()
    r = run_calls(3, seconds=6.0, detector=detector, loader=loader, synthetic_every=3, stagger=1.0, idle_s=0.5)
    detail = [{k: p[k] for k in ("label", "sipp_rc", "guarded", "chunks_expected", "chunks", "scored", "errors")}
              for p in r["per_call"]]

    assert r["calls_placed"] == r["calls_answered"] == r["calls_guarded"] == 3, detail
    assert r["legs_tapped"] == 3
    assert {p["kind"] for p in r["per_call"]} == {"bonafide", "synthetic"}
    for p in r["per_call"]:
        assert p["chunks_expected"] >= 2, p  # 6 s of speech: the check below is not vacuous
        assert p["chunks"] == p["chunks_expected"] and p["scored"] == p["chunks_expected"], detail
        assert p["errors"] == 0 and p["ended_by"] and not p["hung_up_by_pbx"]
    assert r["chunks_scored"] == r["chunks_expected"] and r["chunks_shed"] == 0 and r["chunks_unscored"] == 0
    assert r["ok"], r["why_not"]

    # the measurements are there and plausible
    assert 0 < r["chunk_end_to_published_p50_ms"] <= r["chunk_end_to_published_p95_ms"] \
        <= r["chunk_end_to_published_p99_ms"] < 2000
    assert 2.0 <= r["first_verdict_after_onset_p50_s"] < 4.0  # one 2-s chunk of speech, then scoring
    assert 50 < r["tap_setup_p50_ms"] < 2000
    assert r["rtp"]["packets"] > 3 * 6 * 50 and r["rtp"]["malformed"] == 0
    assert r["cpu_cores"]["plugin"] > 0 and r["plugin_rss_mb_max"] > 20
    assert r["leftover"] == {"channels": [], "bridges": []}
    assert r["loadavg_start"] and r["loadavg_end"]
