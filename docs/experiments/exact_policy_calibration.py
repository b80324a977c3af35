#!/usr/bin/env python3
"""Warn thresholds drawn on the live policy's real decisions instead of on full 3-chunk windows.

The plugin warns after every scored chunk on the mean of the last 3 scores, and on fewer at the start of a call
(`plugin/policy.py`), but `train_gbm.calibrate` draws the warn threshold on full 3-chunk windows only. This screen
recomputes the shipped GBM recipe's out-of-fold scores on train+dev (8 seeds, as shipped) and draws the warn
threshold three ways: as shipped (1 % of full windows), on 1 % of every warn decision the policy makes
(``metrics.policy_evidence``), and so that 1 % of bona fide recordings get warned at some point. The shipped
model's eval scores are then judged with each: bona fide and spoof recordings warned, replayed as the plugin
decides. The eval split chooses nothing; the out-of-fold rows do.

Usage: .venv/bin/python docs/experiments/exact_policy_calibration.py [CORPUS]   (default data/corpus_v8; ~5 min)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.special import expit

from detector.corpus.manifest import load_manifest
from detector.featcache import corpus_features
from detector.metrics import policy_evidence, recordings_in_order, threshold_at_far
from detector.oof import oof_logits
from detector.scoring import load_detector
from detector.train_gbm import DEFAULT_PARAMS, DEFAULT_SEED, EVIDENCE_WINDOW, HANGUP_WINDOW, calibrate

SEEDS = 8


def calls(rows: list[dict], labels: np.ndarray, scores: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(label, chunk scores in time order) per recording."""
    return [(int(labels[idx[0]]), scores[idx]) for idx in recordings_in_order(rows)]


def warn_series(score_calls: list[tuple[int, np.ndarray]], label: int) -> list[np.ndarray]:
    return [policy_evidence(s, EVIDENCE_WINDOW, HANGUP_WINDOW)[0] for lab, s in score_calls if lab == label]


def hangup_series(score_calls: list[tuple[int, np.ndarray]], label: int) -> list[np.ndarray]:
    """Hang-up evidence per recording long enough for a hang-up decision."""
    out = [policy_evidence(s, EVIDENCE_WINDOW, HANGUP_WINDOW)[1] for lab, s in score_calls if lab == label]
    return [h for h in out if len(h)]


def main(corpus: Path) -> None:
    rows = load_manifest(corpus)
    pool = [r for r in rows if r["split"] == "train"] + [r for r in rows if r["split"] == "dev"]
    x = corpus_features(corpus, pool)
    y = np.array([r["label"] != "bonafide" for r in pool], dtype=np.int32)
    oof = oof_logits(x, y, pool, dict(DEFAULT_PARAMS, seed=DEFAULT_SEED), 400, n_seeds=SEEDS)[:, 0]
    ok = ~np.isnan(oof)
    cal_rows = [r for r, k in zip(pool, ok, strict=True) if k]
    cal_y, cal_p = y[ok], expit(oof[ok])
    oof_calls = calls(cal_rows, cal_y, cal_p)
    bona = warn_series(oof_calls, 0)
    shipped_thresholds = calibrate(cal_y, cal_p, cal_rows)
    shipped = shipped_thresholds["far_1pct"]
    decisions = threshold_at_far(np.concatenate(bona), 0.01)
    per_call = threshold_at_far(np.array([w.max() for w in bona]), 0.01)
    print(f"out-of-fold ({len(bona)} bona fide recordings): warn threshold on full windows {shipped:.4f}, "
          f"on every decision {decisions:.4f}, 1 % of recordings warned {per_call:.4f}")
    bona_hang = hangup_series(oof_calls, 0)
    hang_shipped = shipped_thresholds["far_0_1pct"]
    hang_decisions = threshold_at_far(np.concatenate(bona_hang), 0.001)
    print(f"hang-up threshold on 5-chunk windows (short recordings by their mean) {hang_shipped:.4f}, on every "
          f"hang-up decision ({len(bona_hang)} recordings long enough) {hang_decisions:.4f}")

    test = [r for r in rows if r["split"] == "eval"]
    yt = np.array([r["label"] != "bonafide" for r in test], dtype=np.int32)
    det = load_detector("gbm")
    pt = det.score_features(corpus_features(corpus, test))
    eval_calls = calls(test, yt, pt)
    for name, t in (("hang-up: as shipped", hang_shipped), ("hang-up: every decision", hang_decisions)):
        hung = {lab: np.mean([bool((h >= t).any()) for h in hangup_series(eval_calls, lab)]) for lab in (0, 1)}
        print(f"  {name:26s} {t:.4f}: eval bona fide recordings hung up on {100 * hung[0]:.2f} %, spoof "
              f"recordings hung up on {100 * hung[1]:.2f} %")
    for name, t in (("full windows (as shipped)", shipped), ("every decision", decisions),
                    ("1 % of recordings", per_call)):
        warned = {lab: np.mean([bool((w >= t).any()) for w in warn_series(eval_calls, lab)]) for lab in (0, 1)}
        firsts = [int(np.argmax(w >= t)) + 1 for w in warn_series(eval_calls, 1) if (w >= t).any()]
        print(f"  {name:26s} {t:.4f}: eval bona fide recordings warned {100 * warned[0]:.2f} %, spoof recordings "
              f"warned {100 * warned[1]:.2f} % (first warning at chunk {np.median(firsts):.0f}, median)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/corpus_v8"))
