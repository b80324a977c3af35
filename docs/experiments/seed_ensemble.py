#!/usr/bin/env python3
"""Does averaging GBMs trained with different boosting seeds steady the hang-up false-alarm rate?

For each seed: the shipped recipe's out-of-fold log-odds on train+dev (``detector.oof``) and a full model on
train+dev. The ensemble averages the log-odds of all seeds; its thresholds come from the averaged out-of-fold
scores exactly as ``train gbm --pooled`` calibrates one model. Every single seed and the ensemble are then scored
on the eval split: per-chunk false alarms at hang-up, the worst speaker, and the live policy's 5-chunk evidence.

Usage: .venv/bin/python docs/experiments/seed_ensemble.py [CORPUS] [SEED ...]   (default data/corpus_v8, 7..14)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.special import expit

from detector.corpus.manifest import load_manifest
from detector.featcache import corpus_features
from detector.oof import oof_logits
from detector.train_gbm import DEFAULT_PARAMS, HANGUP_WINDOW, balanced_weights, calibrate, evidence_scores, fit_model


def hangup_figures(rows: list[dict], y: np.ndarray, p: np.ndarray, t: float) -> str:
    bona = y == 0
    per_chunk = float((p[bona] >= t).mean())
    groups = np.array([r["speaker"] for r in rows])  # as the eval report names them
    worst = max(float((p[bona & (groups == g)] >= t).mean()) for g in set(groups[bona]))
    ev_y, ev = evidence_scores(rows, y, p, window=HANGUP_WINDOW)
    return (f"per chunk {100 * per_chunk:.2f} %, worst speaker {100 * worst:.2f} %, live policy "
            f"{100 * float((ev[ev_y == 0] >= t).mean()):.2f} % false alarms / "
            f"{100 * float((ev[ev_y == 1] < t).mean()):.1f} % misses")


def oof_thresholds(pool: list[dict], y: np.ndarray, oof_logit: np.ndarray) -> dict[str, float]:
    """``calibrate`` on the rows a fold model scored, as ``train gbm --pooled`` does."""
    ok = ~np.isnan(oof_logit)
    return calibrate(y[ok], expit(oof_logit[ok]), [r for r, k in zip(pool, ok, strict=True) if k])


def main(corpus: Path, seeds: list[int]) -> None:
    rows = load_manifest(corpus)
    pool = [r for r in rows if r["split"] == "train"] + [r for r in rows if r["split"] == "dev"]  # as train gbm
    test = [r for r in rows if r["split"] == "eval"]
    x, xt = corpus_features(corpus, pool), corpus_features(corpus, test)
    y = np.array([r["label"] != "bonafide" for r in pool], dtype=np.int32)
    yt = np.array([r["label"] != "bonafide" for r in test], dtype=np.int32)
    oof_sum, eval_sum = np.zeros(len(pool)), np.zeros(len(test))
    for seed in seeds:
        params = dict(DEFAULT_PARAMS, seed=seed)
        oof = oof_logits(x, y, pool, params, 400)[:, 0]
        full = fit_model(x, y, balanced_weights(pool), params, 400).logits(xt)[:, 0]
        oof_sum += oof
        eval_sum += full
        t = oof_thresholds(pool, y, oof)
        print(f"seed {seed}: hang-up {t['far_0_1pct']:.4f}; eval "
              f"{hangup_figures(test, yt, expit(full), t['far_0_1pct'])}", flush=True)
    n = len(seeds)
    t = oof_thresholds(pool, y, oof_sum / n)
    print(f"mean of {n} seeds: OOF EER {100 * t['dev_eer']:.2f} %, hang-up {t['far_0_1pct']:.4f}; eval "
          f"{hangup_figures(test, yt, expit(eval_sum / n), t['far_0_1pct'])}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0]) if args else Path("data/corpus_v8"), [int(s) for s in args[1:]] or list(range(7, 15)))
