"""Out-of-fold scores for calibration when the dev split is pooled into training.

The dev split holds only a handful of speakers and generator families, so thresholds set on it are noisy
and a model early-stopped on it is tuned to them. Pooling train and dev gives the model more voices and
families; the thresholds then come from out-of-fold scores instead: the pooled rows are cut into folds by
bona fide speaker group (spoofs made from a speaker's voice go with that speaker) and by generator family,
and every row is scored by a model that saw neither its speaker nor its family. The false-alarm
thresholds are therefore measured on voices the scoring model had never heard, as they will be in service.
"""

from __future__ import annotations

import sys

import numpy as np

from detector.train_gbm import balanced_weights, fit_model, speaker_group


def fold_ids(rows: list[dict], n_folds: int) -> np.ndarray:
    """A fold per row: bona fide speaker groups dealt round-robin by size, families likewise; a spoof goes
    to its family's fold, and a spoof made from a bona fide speaker (resynthesis, replay, vocoders) is left
    out of training whenever that speaker's fold is tested (see ``train_mask``)."""
    bona = sorted({speaker_group(r) for r in rows if r["label"] == "bonafide"},
                  key=lambda s: (-sum(1 for r in rows if speaker_group(r) == s), s))
    fams = sorted({r["generator"] for r in rows if r["label"] != "bonafide"})
    spk_fold = {s: i % n_folds for i, s in enumerate(bona)}
    fam_fold = {f: i % n_folds for i, f in enumerate(fams)}
    return np.array([spk_fold[speaker_group(r)] if r["label"] == "bonafide" else fam_fold[r["generator"]]
                     for r in rows])


def train_mask(rows: list[dict], folds: np.ndarray, k: int) -> np.ndarray:
    """Rows a fold-k model may learn from: not in fold k, and not made from a fold-k speaker's voice."""
    held_speakers = {speaker_group(r) for r, f in zip(rows, folds, strict=True)
                     if f == k and r["label"] == "bonafide"}
    made_from_held = np.array([r["label"] != "bonafide" and speaker_group(r) in held_speakers for r in rows])
    return (folds != k) & ~made_from_held


def oof_logits(x: np.ndarray, y: np.ndarray, rows: list[dict], params: dict, rounds: int,
               n_folds: int = 5, mlp_seed: int | None = None, n_seeds: int = 1) -> np.ndarray:
    """Each row's log-odds from the model of the fold that held it out: column 0 the booster's, column 1 the
    MLP's (given ``mlp_seed``; NaN otherwise). Rows no fold could score are NaN. ``n_seeds``: each fold's
    booster is the mean of that many seeds (``fit_model``), as the model they calibrate."""
    folds = fold_ids(rows, n_folds)
    out = np.full((len(rows), 2), np.nan)
    for k in range(n_folds):
        fit = train_mask(rows, folds, k)
        test = folds == k
        if not test.any() or len(set(y[fit])) < 2:
            continue
        sub = [rows[i] for i in np.flatnonzero(fit)]
        model = fit_model(x[fit], y[fit], balanced_weights(sub), params, rounds, mlp_seed=mlp_seed,
                          n_seeds=n_seeds)
        out[test] = model.logits(x[test])
        print(f"\rtrain gbm: out-of-fold scores {k + 1}/{n_folds}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out
