"""Trivial-cue audit: can label be predicted from level, active duration, leading silence or the spectrum
of the quietest frames? A corpus where it can teaches detectors shortcuts; the score should be near chance.

Plain numpy (no scikit-learn): standardised features, L2 logistic regression by gradient descent, AUC
from ranks, cross-validated over folds grouped by job so chunks of one recording never straddle folds.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy.special import expit

FRAME = 160  # 20 ms at 8 kHz
FEATURES = ["level_db", "peak_db", "active_fraction", "leading_silence_s", "quiet_rolloff_hz",
            "quiet_centroid_hz", "quiet_level_db"]


def trivial_features(x: np.ndarray, rate: int = 8000) -> np.ndarray:
    n = len(x) // FRAME
    fr = x[: n * FRAME].reshape(n, FRAME).astype(np.float64)
    e = np.mean(fr ** 2, axis=1) + 1e-12
    edb = 10 * np.log10(e)
    level = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12)
    peak = 20 * np.log10(np.max(np.abs(x)) + 1e-9)
    active = float(np.mean(edb > edb.max() - 20))
    first = int(np.argmax(edb > edb.max() - 20))
    lead = first * FRAME / rate
    q = np.argsort(e)[: max(1, n // 10)]
    spec = np.abs(np.fft.rfft(fr[q] * np.hanning(FRAME), axis=1)) ** 2
    freqs = np.fft.rfftfreq(FRAME, 1 / rate)
    cum = np.cumsum(spec, axis=1)
    roll = freqs[np.argmax(cum >= 0.85 * cum[:, -1:], axis=1)].mean()
    cent = float(np.mean((spec * freqs).sum(1) / (spec.sum(1) + 1e-20)))
    return np.array([level, peak, active, lead, roll, cent, float(np.mean(edb[q]))])


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # average ranks of ties
    s = scores[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        if j > i:
            ranks[order[i: j + 1]] = (i + j + 2) / 2
        i = j + 1
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_logreg(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 500, lr: float = 0.5):
    w = np.zeros(x.shape[1])
    b = 0.0
    for _ in range(iters):
        p = expit(x @ w + b)
        g = p - y
        w -= lr * (x.T @ g / len(y) + l2 * w)
        b -= lr * g.mean()
    return w, b


def cue_auc(feats: np.ndarray, labels: np.ndarray, groups: list[str], folds: int = 5) -> float:
    """Cross-validated AUC of a logistic regression on the trivial features (0.5 = chance)."""
    fold = np.array([int(hashlib.md5(g.encode()).hexdigest(), 16) % folds for g in groups])
    scores = np.zeros(len(labels))
    for k in range(folds):
        tr, te = fold != k, fold == k
        if te.sum() == 0 or len(set(labels[tr])) < 2:
            continue
        mu, sd = feats[tr].mean(0), feats[tr].std(0) + 1e-9
        w, b = fit_logreg((feats[tr] - mu) / sd, labels[tr])
        scores[te] = (feats[te] - mu) / sd @ w + b
    return auc(scores, labels)


def audit(corpus_dir, rows: list[dict]) -> tuple[float, dict[str, float]]:
    """Overall cue AUC and the single-feature AUCs (folded to >= 0.5) for a set of manifest rows."""
    from detector.corpus.manifest import load_chunks

    x = load_chunks(corpus_dir, rows)
    feats = np.array([trivial_features(c) for c in x])
    labels = np.array([r["label"] == "spoof" for r in rows], dtype=float)
    overall = cue_auc(feats, labels, [r["job"] for r in rows])
    single = {}
    for i, name in enumerate(FEATURES):
        a = auc(feats[:, i], labels)
        single[name] = max(a, 1 - a)
    return overall, single
