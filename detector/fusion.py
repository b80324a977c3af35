"""Late fusion of the GBM and WavLM detectors: logistic regression on their chunk logits.

``fused = sigmoid(w_gbm * logit(p_gbm) + w_wavlm * logit(p_wavlm) + b)``, fitted on DEV scores (never eval)
with the same group-balanced weights the detectors were trained with, then calibrated on those dev scores.
Three parameters fitted on thousands of chunks cannot overfit much, but the thresholds are fixed on the
same data as the weights; ``fit_fusion`` therefore also reports a cross-validated dev EER (folds by speaker
and generator) as the honest figure. Stored as ``fusion.json``; the input models' versions are recorded
and checked so a retrained GBM or WavLM cannot silently be fused with stale weights.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import expit

from detector.scoring import ModelError, Thresholds

FUSION_FILE = "fusion.json"
INPUTS = ("gbm", "wavlm")
_EPS = 1e-6


def to_logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def fit_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, l2: float = 1e-3,
                 iters: int = 50) -> tuple[np.ndarray, float]:
    """Weighted L2-regularised logistic regression by Newton's method (the bias is not penalised).

    ``x`` is ``[N, D]``, ``y`` in {0, 1}. Returns (weights ``[D]``, bias).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w * n / w.sum()
    a = np.hstack([x, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    reg = np.full(d + 1, l2 * n)
    reg[-1] = 0.0
    for _ in range(iters):
        z = a @ theta
        p = expit(z)
        grad = a.T @ (w * (p - y)) + reg * theta
        hess = (a * (w * p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta[:d], float(theta[d])


@dataclass
class FusedDetector:
    gbm: object
    wavlm: object
    weights: np.ndarray
    bias: float
    thresholds: Thresholds
    version: str
    name: str = "fused"
    calibration: dict = field(default_factory=dict)

    @classmethod
    def load(cls, models_dir: Path | str) -> FusedDetector:
        from detector.scoring import load_detector

        path = Path(models_dir) / FUSION_FILE
        if not path.is_file():
            raise ModelError(f"no fusion model in {models_dir} (expected {FUSION_FILE}); fit one with "
                             "`callguard train fusion`")
        try:
            cal = json.loads(path.read_text())
            weights = np.array([float(cal["weights"][k]) for k in INPUTS])
            bias = float(cal["bias"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path}: unreadable fusion model ({exc})") from exc
        parts = {k: load_detector(k, models_dir) for k in INPUTS}
        for k, det in parts.items():
            want = cal.get("input_versions", {}).get(k)
            if want != det.version:
                raise ModelError(f"{path}: fitted on {k} model {want}, but {models_dir} holds {det.version}; "
                                 "refit with `callguard train fusion`")
        return cls(gbm=parts["gbm"], wavlm=parts["wavlm"], weights=weights, bias=bias,
                   thresholds=Thresholds.from_calibration(path), version=str(cal.get("version", "unknown")),
                   calibration=cal)

    def combine(self, p_gbm: np.ndarray, p_wavlm: np.ndarray) -> np.ndarray:
        z = np.column_stack([to_logit(p_gbm), to_logit(p_wavlm)]) @ self.weights + self.bias
        return expit(z)

    def score_parts(self, chunks: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Each input detector's probabilities and the fused one."""
        if len(chunks) == 0:
            return {"gbm": np.zeros(0), "wavlm": np.zeros(0), "fused": np.zeros(0)}
        pg = np.asarray(self.gbm.score(chunks))  # type: ignore[attr-defined]
        pw = np.asarray(self.wavlm.score(chunks))  # type: ignore[attr-defined]
        return {"gbm": pg, "wavlm": pw, "fused": self.combine(pg, pw)}

    def score(self, chunks: list[np.ndarray]) -> np.ndarray:
        return self.score_parts(chunks)["fused"]


def _group_folds(rows: list[dict], k: int) -> np.ndarray:
    """Fold index per row; a bona fide speaker or a spoof generator stays inside one fold."""
    keys = sorted({("b", r["speaker"]) if r["label"] == "bonafide" else ("s", r["generator"]) for r in rows})
    fold_of = {g: i % k for i, g in enumerate(keys)}
    return np.array([fold_of[("b", r["speaker"]) if r["label"] == "bonafide" else ("s", r["generator"])]
                     for r in rows])


def cross_validated_eer(rows: list[dict], x: np.ndarray, y: np.ndarray, k: int = 5) -> float | None:
    """Dev EER of fusion weights fitted on the other folds (None when the groups are too few for folds)."""
    from detector.metrics import eer
    from detector.train_gbm import balanced_weights

    folds = _group_folds(rows, k)
    out = np.full(len(rows), np.nan)
    for f in range(k):
        test, fit = folds == f, folds != f
        if not test.any() or len(set(y[fit])) < 2:
            return None
        fit_rows = [r for r, m in zip(rows, fit, strict=True) if m]
        w, b = fit_logistic(x[fit], y[fit], balanced_weights(fit_rows))
        out[test] = x[test] @ w + b
    return eer(y, out)[0]


def pooled_gbm_dev_scores(models_dir: Path, gbm: object, dev: list[dict]) -> np.ndarray | None:
    """Out-of-fold dev scores when the GBM was trained with dev pooled in (``train gbm --pooled``), else None."""
    from detector.train_gbm import OOF_FILE

    cal = getattr(gbm, "calibration", {}) or {}
    if cal.get("calibrated_on", "dev") == "dev":
        return None
    path = models_dir / OOF_FILE
    if not path.is_file():
        raise SystemExit(f"{path}: missing; the GBM was trained on train+dev, retrain it with --pooled")
    data = np.load(path)
    if str(data["version"]) != cal.get("version"):
        raise SystemExit(f"{path} belongs to GBM {data['version']}, not {cal.get('version')}: retrain the GBM")
    by_path = dict(zip(data["paths"].tolist(), data["scores"].tolist(), strict=True))
    missing = [r["path"] for r in dev if r["path"] not in by_path]
    if missing:
        raise SystemExit(f"{path}: no out-of-fold score for {len(missing)} dev rows (another corpus?)")
    scores = np.array([by_path[r["path"]] for r in dev])
    if np.isnan(scores).any():
        raise SystemExit(f"{path}: {int(np.isnan(scores).sum())} dev rows were never scored out of fold")
    return scores


def fit_fusion(corpus_dir: Path, models_dir: Path, out_dir: Path | None = None) -> dict:
    """Fit the fusion on the corpus dev split with the models in ``models_dir``; write ``fusion.json``."""
    from detector.corpus.manifest import load_manifest
    from detector.evaluate import score_rows
    from detector.metrics import rates_at
    from detector.scoring import load_detector
    from detector.train_gbm import balanced_weights, calibrate, evidence_windows

    out_dir = Path(out_dir or models_dir)
    dev = [r for r in load_manifest(corpus_dir) if r["split"] == "dev"]
    y = np.array([r["label"] != "bonafide" for r in dev], dtype=np.int32)
    if not dev or y.min() == y.max():
        raise SystemExit(f"{corpus_dir}: the dev split needs bona fide and spoof rows")
    dets = {k: load_detector(k, models_dir) for k in INPUTS}
    probs = {k: np.asarray(score_rows(d, corpus_dir, dev)) for k, d in dets.items()}
    oof = pooled_gbm_dev_scores(Path(models_dir), dets["gbm"], dev)
    if oof is not None:  # the GBM learnt from dev: use the scores of fold models that never saw each row
        probs["gbm"] = oof
    x = np.column_stack([to_logit(probs[k]) for k in INPUTS])
    w, b = fit_logistic(x, y, balanced_weights(dev))
    fused = expit(x @ w + b)
    th = calibrate(y, fused, dev)  # warn / hang-up on the live policy's evidence windows, as the GBM's
    at = rates_at(y, fused, th["eer"])
    inputs_eer = {k: calibrate(y, probs[k])["dev_eer"] for k in INPUTS}
    cv = cross_validated_eer(dev, x, y)
    train_gens = sorted({g for d in dets.values() for g in getattr(d, "calibration", {}).get("train", {})
                         .get("generators", [])})
    train_spk = sorted({s for d in dets.values() for s in getattr(d, "calibration", {}).get("train", {})
                        .get("speakers", [])})
    cal = {
        "version": dt.datetime.now(dt.UTC).strftime("fused-%Y%m%d-%H%M%S"),
        "inputs": list(INPUTS),
        "input_versions": {k: d.version for k, d in dets.items()},
        "weights": {k: float(v) for k, v in zip(INPUTS, w, strict=True)},
        "bias": b,
        "thresholds": {k: th[k] for k in ("eer", "far_1pct", "far_0_1pct")},
        "evidence_windows": evidence_windows(th),
        "dev": {"eer": th["dev_eer"], "eer_cross_validated_5fold_by_group": cv,
                "accuracy_at_eer_threshold": at["accuracy"], "input_eers": inputs_eer,
                "n_bonafide": int((y == 0).sum()), "n_spoof": int((y == 1).sum())},
        "train": {"speakers": train_spk, "generators": train_gens,
                  "note": "the fusion itself is fitted on dev; these are its input models' training sets"},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FUSION_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cal, indent=1))
    tmp.replace(path)
    cv_txt = f"{cv:.2%}" if cv is not None else "n/a"
    print(f"train fusion: weights gbm={w[0]:.3f} wavlm={w[1]:.3f} bias={b:.3f}; dev EER {th['dev_eer']:.2%} "
          f"(cross-validated {cv_txt}; gbm {inputs_eer['gbm']:.2%}, wavlm {inputs_eer['wavlm']:.2%}); "
          f"saved {path}", file=sys.stderr)
    return cal
