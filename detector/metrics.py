"""Detection metrics. Convention everywhere: label 1 = spoof (synthetic or replayed), 0 = bona fide;
a higher score means more likely spoof."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-alarm rate (bona fide flagged), miss rate (spoof passed) and thresholds, thresholds ascending.

    At threshold t a chunk is flagged when score >= t.
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    thr = np.unique(scores)
    thr = np.concatenate((thr, [np.inf]))
    bona = np.sort(scores[~labels])
    spoof = np.sort(scores[labels])
    far = 1.0 - np.searchsorted(bona, thr, side="left") / max(len(bona), 1)
    miss = np.searchsorted(spoof, thr, side="left") / max(len(spoof), 1)
    return far, miss, thr


def eer(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Equal error rate and the threshold where false-alarm and miss rates cross."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        raise ValueError("EER needs both bona fide and spoof scores")
    far, miss, thr = roc_points(labels, scores)
    i = int(np.argmin(np.abs(far - miss)))
    # interpolate between the two points around the crossing for a stable figure
    j = min(i + 1, len(far) - 1) if far[i] > miss[i] else max(i - 1, 0)
    d1, d2 = far[i] - miss[i], far[j] - miss[j]
    if d1 != d2 and np.sign(d1) != np.sign(d2):
        w = d1 / (d1 - d2)
        return float(far[i] + w * (far[j] - far[i])), float(thr[i] if np.isfinite(thr[i]) else thr[j])
    return float((far[i] + miss[i]) / 2), float(thr[i] if np.isfinite(thr[i]) else thr[i - 1])


def threshold_at_far(bona_scores: np.ndarray, far: float, groups: np.ndarray | None = None) -> float:
    """Smallest threshold that flags at most ``far`` of these bona fide scores. With ``groups`` (one speaker
    group per score), the false-alarm rate is the mean over groups of each group's own rate: every person
    counts the same, so a voice with few chunks that the model finds odd moves the threshold as much as one
    with thousands (a pooled rate lets a large, easy voice hide it)."""
    s = np.asarray(bona_scores, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no bona fide scores")
    if groups is None:
        w = np.full(s.size, 1.0 / s.size)
    else:
        _, inv, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
        w = 1.0 / (counts[inv] * counts.size)
    order = np.argsort(-s, kind="stable")
    s, w = s[order], w[order]
    # the k highest scores may be flagged while their weight stays within far (tolerance for float sums)
    k = int(np.searchsorted(np.cumsum(w), far * (1 + 1e-9), side="right"))
    if k >= s.size:
        return float(s[-1])
    # ties with the first score that must not be flagged are not flagged either
    return float(np.nextafter(s[k], np.inf))


def min_dcf(labels: np.ndarray, scores: np.ndarray, p_spoof: float = 0.05,
            c_miss: float = 1.0, c_fa: float = 10.0) -> float:
    """Normalised minimum detection cost: false alarms on real callers cost more than misses."""
    far, miss, _ = roc_points(labels, scores)
    dcf = c_miss * p_spoof * miss + c_fa * (1 - p_spoof) * far
    default = min(c_miss * p_spoof, c_fa * (1 - p_spoof))
    return float(dcf.min() / default)


def rates_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    labels = np.asarray(labels, dtype=bool)
    flagged = np.asarray(scores) >= threshold
    tn = int((~labels & ~flagged).sum())
    fp = int((~labels & flagged).sum())
    fn = int((labels & ~flagged).sum())
    tp = int((labels & flagged).sum())
    n = max(len(labels), 1)
    return {"accuracy": (tp + tn) / n, "far": fp / max(tn + fp, 1), "miss": fn / max(tp + fn, 1),
            "tn": tn, "fp": fp, "fn": fn, "tp": tp}


def recording_key(row: dict) -> str:
    """The recording a corpus chunk comes from: its job, or the chunk itself when it has none."""
    return str(row.get("job") or row["path"])


def recordings_in_order(rows: list[dict], key: Callable[[dict], str] = recording_key) -> list[list[int]]:
    """Row indices per recording (recordings in first-seen order), each in time order (``start_s``)."""
    by: dict[str, list[tuple[float, int]]] = {}
    for i, r in enumerate(rows):
        by.setdefault(key(r), []).append((float(r.get("start_s") or 0.0), i))
    return [[i for _, i in sorted(items)] for items in by.values()]


def recording_means(rows: list[dict], labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label, mean chunk score) per recording (corpus job): how `scan` judges a whole file."""
    keys = [recording_key(r) for r in rows]
    uniq, inv = np.unique(np.array(keys), return_inverse=True)
    counts = np.bincount(inv, minlength=len(uniq))
    means = np.bincount(inv, weights=np.asarray(scores, dtype=np.float64), minlength=len(uniq)) / counts
    rec_labels = np.bincount(inv, weights=np.asarray(labels, dtype=np.float64), minlength=len(uniq)) > 0
    return rec_labels, means


POLICY_MIN_CHUNKS = 2  # plugin.config.Policy.min_chunks: chunks scored before a hang-up may happen


def policy_evidence(scores: np.ndarray, window: int, hangup_window: int,
                    min_chunks: int = POLICY_MIN_CHUNKS) -> tuple[np.ndarray, np.ndarray]:
    """One call's chunk scores in order -> (the warn evidence after each chunk, the hang-up evidence after each
    chunk from the first that may hang up on)."""
    c = np.concatenate([[0.0], np.cumsum(np.asarray(scores, dtype=np.float64))])
    k = np.arange(1, len(scores) + 1)

    def trailing(n: int) -> np.ndarray:
        lo = np.maximum(k - n, 0)
        return (c[k] - c[lo]) / (k - lo)

    first = max(min_chunks, hangup_window)
    return trailing(window), trailing(hangup_window)[first - 1:]


@dataclass(frozen=True)
class PolicyOutcome:
    """What the live policy did on one call (``policy_outcome``)."""

    warned: bool                 # a warn decision (or a hang-up, which warns too)
    hung_up: bool | None         # None: too few chunks for a hang-up decision
    first_warning: int | None    # the chunk (1-based) of the first warn decision
    warn_evidence: np.ndarray
    hangup_evidence: np.ndarray


def policy_outcome(scores: np.ndarray, warn: float, hangup: float, window: int, hangup_window: int,
                   min_chunks: int = POLICY_MIN_CHUNKS) -> PolicyOutcome:
    """One call's chunk scores in order, replayed through the live policy (``policy_evidence``)."""
    warn_ev, hang_ev = policy_evidence(scores, window, hangup_window, min_chunks)
    hung_up = bool((hang_ev >= hangup).any()) if len(hang_ev) else None
    warned_at = np.flatnonzero(warn_ev >= warn)
    return PolicyOutcome(bool(warned_at.size) or bool(hung_up), hung_up,
                         int(warned_at[0]) + 1 if warned_at.size else None, warn_ev, hang_ev)
