"""The shipped boosting detector: LightGBM over ``detector.features``, with explanations.

A model may carry a small MLP on the same features (``detector.mlp``); its score is then the blend of the
two (``gbm.mlp.npz`` next to the booster, the blend's weights in the calibration file).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.features import FEATURE_SCHEMA_VERSION, extract_matrix, feature_group, feature_names
from detector.mlp import MLP, Blend
from detector.scoring import ModelError, Thresholds

MODEL_FILE = "gbm.txt"
CALIBRATION_FILE = "gbm.calibration.json"
MLP_FILE = "gbm.mlp.npz"


def blended_scores(booster: object, x: np.ndarray, mlp: MLP | None = None, blend: Blend | None = None) -> np.ndarray:
    """Spoof probability per feature row: the booster's, or with an MLP the blend of both models."""
    if mlp is None:
        return np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)  # type: ignore[attr-defined]
    if blend is None:
        raise ModelError("a GBM with an MLP needs the blend's weights (calibration key 'blend')")
    gbm_logits = booster.predict(x, raw_score=True, num_threads=1)  # type: ignore[attr-defined]
    return blend.probability(gbm_logits, mlp.logit(x))


def check_features(cal: dict, model_path: Path) -> None:
    """Raise ModelError unless calibration ``cal`` was written for the features this code computes."""
    if cal.get("feature_schema") != FEATURE_SCHEMA_VERSION:
        raise ModelError(f"{model_path}: trained on feature schema {cal.get('feature_schema')}, this code "
                         f"computes schema {FEATURE_SCHEMA_VERSION}; retrain with `callguard train gbm`")
    if tuple(cal.get("feature_names", ())) != feature_names():
        raise ModelError(f"{model_path}: feature names differ from this code's; retrain the model")


@dataclass
class GBMDetector:
    booster: object
    thresholds: Thresholds
    version: str
    name: str = "gbm"
    calibration: dict = field(default_factory=dict)
    mlp: MLP | None = None
    blend: Blend | None = None

    @classmethod
    def load(cls, models_dir: Path) -> GBMDetector:
        import lightgbm as lgb

        model_path, cal_path = Path(models_dir) / MODEL_FILE, Path(models_dir) / CALIBRATION_FILE
        if not model_path.is_file() or not cal_path.is_file():
            raise ModelError(f"no GBM model in {models_dir} (expected {MODEL_FILE} and {CALIBRATION_FILE}); "
                             "train one with `callguard train gbm`")
        cal = json.loads(cal_path.read_text())
        check_features(cal, model_path)
        booster = lgb.Booster(model_file=str(model_path))
        mlp, blend = None, None
        if cal.get("blend"):
            mlp_path = Path(models_dir) / MLP_FILE
            try:
                mlp, blend = MLP.load(mlp_path), Blend.from_json(cal["blend"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelError(f"{model_path}: the calibration names an MLP blend but {mlp_path} is missing or "
                                 f"unreadable ({exc})") from exc
            if mlp.median.size != len(feature_names()):
                raise ModelError(f"{mlp_path}: {mlp.median.size} inputs, this code computes {len(feature_names())}")
        return cls(booster=booster, thresholds=Thresholds.from_calibration(cal_path),
                   version=str(cal.get("version", "unknown")), calibration=cal, mlp=mlp, blend=blend)

    def score_features(self, matrix: np.ndarray) -> np.ndarray:
        return blended_scores(self.booster, matrix, self.mlp, self.blend)

    def score(self, chunks: list[np.ndarray]) -> np.ndarray:
        if len(chunks) == 0:
            return np.zeros(0)
        return self.score_features(extract_matrix(chunks))

    def explain(self, chunks: list[np.ndarray], top: int = 3) -> list[list[tuple[str, float]]]:
        """Per chunk, the feature groups that pushed the tree model's score most (log-odds contributions;
        with an MLP blend, this explains the trees' half of the score)."""
        if len(chunks) == 0:
            return []
        contrib = self.booster.predict(extract_matrix(chunks), pred_contrib=True, num_threads=1)
        names = feature_names()
        out = []
        for row in contrib:
            groups: dict[str, float] = defaultdict(float)
            for name, value in zip(names, row[:-1], strict=True):
                groups[feature_group(name)] += float(value)
            ranked = sorted(groups.items(), key=lambda kv: -abs(kv[1]))[:top]
            out.append([(g, round(v, 3)) for g, v in ranked])
        return out
