#!/usr/bin/env python3
"""Do more diverse members make a better seed ensemble? The shipped GBM is the mean of 8 boosting seeds
(`train gbm --seeds 8`); members that see fewer features or rows per tree disagree more, which an average can
use, but each is weaker.

For each configuration (LightGBM parameters over the shipped ones): the 8-seed ensemble's out-of-fold
log-odds on train+dev (``detector.oof``, as `train gbm --pooled --seeds 8` calibrates) and a full 8-seed model.
Printed first, the selection criteria, all out-of-fold: EER, and per-chunk bona fide false alarms at the
hang-up threshold per speaker group (the worst, and how many groups exceed 1 %). Then the eval split, read
afterwards: EER, per-chunk false alarms at hang-up and the worst speaker.

Usage: .venv/bin/python docs/experiments/ensemble_diversity.py [--corpus DIR] [--seeds N] CONFIG ...
CONFIG is ``base`` or comma-separated ``key=value`` pairs, e.g. ``feature_fraction=0.3,bagging_fraction=0.6``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

from detector.corpus.manifest import load_manifest
from detector.featcache import corpus_features
from detector.metrics import eer
from detector.oof import oof_logits
from detector.train_gbm import DEFAULT_PARAMS, balanced_weights, calibrate, fit_model, speaker_group

SEEDS, FIRST_SEED, ROUNDS = 8, 7, 400


def parse_config(text: str) -> dict:
    if text == "base":
        return {}
    out = {}
    for pair in text.split(","):
        key, value = pair.split("=")
        out[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    return out


def speaker_far(rows: list[dict], y: np.ndarray, p: np.ndarray, t: float) -> tuple[float, str, int]:
    """Per-chunk false alarms at ``t``: pooled, the worst speaker group (rate and name), groups above 1 %."""
    bona = y == 0
    groups = np.array([speaker_group(r) for r in rows])
    rates = {g: float((p[bona & (groups == g)] >= t).mean()) for g in sorted(set(groups[bona]))}
    worst = max(rates, key=rates.get)
    return (float((p[bona] >= t).mean()), f"{100 * rates[worst]:.2f} % ({worst})",
            sum(r > 0.01 for r in rates.values()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v8"))
    ap.add_argument("--seeds", type=int, default=SEEDS, help="members per ensemble (shipped: 8)")
    ap.add_argument("configs", nargs="+")
    args = ap.parse_args()
    rows = load_manifest(args.corpus)
    pool = [r for r in rows if r["split"] == "train"] + [r for r in rows if r["split"] == "dev"]  # as train gbm
    test = [r for r in rows if r["split"] == "eval"]
    x, xt = corpus_features(args.corpus, pool), corpus_features(args.corpus, test)
    y = np.array([r["label"] != "bonafide" for r in pool], dtype=np.int32)
    yt = np.array([r["label"] != "bonafide" for r in test], dtype=np.int32)
    for text in args.configs:
        t0 = time.time()
        params = dict(DEFAULT_PARAMS, seed=FIRST_SEED, **parse_config(text))
        oof = oof_logits(x, y, pool, params, ROUNDS, n_seeds=args.seeds)[:, 0]
        ok = ~np.isnan(oof)
        scored = [r for r, k in zip(pool, ok, strict=True) if k]
        th = calibrate(y[ok], expit(oof[ok]), scored)
        hang = th["far_0_1pct"]
        o_far, o_worst, o_n = speaker_far(scored, y[ok], expit(oof[ok]), hang)
        full = expit(fit_model(x, y, balanced_weights(pool), params, ROUNDS, n_seeds=args.seeds).logits(xt)[:, 0])
        e_far, e_worst, e_n = speaker_far(test, yt, full, hang)
        print(f"{text} ({args.seeds} seeds): OOF EER {100 * th['dev_eer']:.2f} %, hang-up {hang:.4f}, "
              f"OOF per chunk {100 * o_far:.2f} %, "
              f"worst group {o_worst}, groups > 1 %: {o_n} | eval EER {100 * eer(yt, full)[0]:.2f} %, "
              f"per chunk {100 * e_far:.2f} %, worst {e_worst}, groups > 1 %: {e_n} "
              f"({(time.time() - t0) / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
