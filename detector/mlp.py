"""A small MLP beside the GBM, on the same hand-crafted features, and the blend of the two.

Why a second model on the same features: trees extrapolate flat outside the range they were trained on,
and an unseen generator family's features often lie there. A smooth model draws a different boundary
and makes different errors, so the average of the two generalises better to held-out families than
either alone (docs/generalisation.md, "Smooth models beside the trees"). The MLP alone is worse than the
GBM on average; only the blend is shipped.

Serving is a numpy forward pass (one 64-unit hidden layer); scikit-learn is needed only to train.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

HIDDEN_UNITS = 64
CLIP = 6.0  # robust z-scores are clipped here, so one wild feature value cannot dominate the MLP


@dataclass(frozen=True)
class MLP:
    """Robust scaling (median / IQR of the training rows, clipped to ±``CLIP``) then one ReLU layer and a
    linear logit."""

    median: np.ndarray
    iqr: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def scale(self, x: np.ndarray) -> np.ndarray:
        return robust_scale(x, self.median, self.iqr)

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Log-odds that each row (a feature vector) is a spoof."""
        h = np.maximum(self.scale(x) @ self.w1 + self.b1, 0.0)
        return (h @ self.w2 + self.b2).ravel()

    def save(self, path: Path) -> None:
        np.savez_compressed(path, median=self.median, iqr=self.iqr, w1=self.w1, b1=self.b1, w2=self.w2, b2=self.b2)

    @classmethod
    def load(cls, path: Path) -> MLP:
        with np.load(path) as z:
            mlp = cls(**{k: np.asarray(z[k], dtype=np.float64) for k in ("median", "iqr", "w1", "b1", "w2", "b2")})
        if mlp.w1.shape != (mlp.median.size, mlp.b1.size) or mlp.w2.shape[0] != mlp.b1.size:
            raise ValueError(f"{path}: inconsistent MLP shapes {mlp.w1.shape}, {mlp.w2.shape}")
        return mlp


def robust_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column median and interquartile range (plus 1e-6, so a constant column cannot divide by 0)."""
    x = np.asarray(x, dtype=np.float64)
    q75, q25 = np.nanpercentile(x, [75, 25], axis=0)
    return np.nan_to_num(np.nanmedian(x, axis=0)), np.nan_to_num(q75 - q25) + 1e-6


def robust_scale(x: np.ndarray, median: np.ndarray, iqr: np.ndarray) -> np.ndarray:
    """Robust z-scores clipped to ±``CLIP``; a missing feature value counts as the training median."""
    z = np.clip((np.asarray(x, dtype=np.float64) - median) / iqr, -CLIP, CLIP)
    return np.nan_to_num(z, nan=0.0)


def fit_mlp(x: np.ndarray, y: np.ndarray, seed: int = 0) -> MLP:
    """Train the MLP (scikit-learn's Adam, L2 0.01, early stopping on a 10 % validation share, at most 60
    epochs); the settings are the ones compared in docs/experiments/linear_lofo.py."""
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("training the MLP needs scikit-learn: pip install 'callguard[train]'") from exc
    median, iqr = robust_stats(x)
    clf = MLPClassifier((HIDDEN_UNITS,), alpha=1e-2, max_iter=60, early_stopping=True, random_state=seed)
    with warnings.catch_warnings():  # the 60-epoch cap is deliberate: more epochs fit the known families closer
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(robust_scale(x, median, iqr), np.asarray(y))
    return MLP(median, iqr, clf.coefs_[0], clf.intercepts_[0], clf.coefs_[1], clf.intercepts_[1])


@dataclass(frozen=True)
class Blend:
    """The GBM's and the MLP's log-odds, each divided by its spread on held-out bona fide speech, averaged,
    and put back on the GBM's log-odds scale. Dividing by the spread gives both models the same say; the
    result ranks chunks exactly as the mean of the two z-scores does."""

    gbm_sd: float
    mlp_sd: float

    @classmethod
    def from_bonafide(cls, gbm_logits: np.ndarray, mlp_logits: np.ndarray) -> Blend:
        """Spreads measured on bona fide rows that neither model was trained on."""
        return cls(gbm_sd=float(np.std(gbm_logits)) + 1e-9, mlp_sd=float(np.std(mlp_logits)) + 1e-9)

    def logit(self, gbm_logits: np.ndarray, mlp_logits: np.ndarray) -> np.ndarray:
        return 0.5 * self.gbm_sd * (np.asarray(gbm_logits) / self.gbm_sd + np.asarray(mlp_logits) / self.mlp_sd)

    def probability(self, gbm_logits: np.ndarray, mlp_logits: np.ndarray) -> np.ndarray:
        return expit(self.logit(gbm_logits, mlp_logits))

    def to_json(self) -> dict[str, float]:
        return {"gbm_logit_sd": self.gbm_sd, "mlp_logit_sd": self.mlp_sd}

    @classmethod
    def from_json(cls, d: dict) -> Blend:
        return cls(gbm_sd=float(d["gbm_logit_sd"]), mlp_sd=float(d["mlp_logit_sd"]))
