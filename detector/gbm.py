"""The shipped boosting detector: LightGBM over ``detector.features``, with explanations."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.features import FEATURE_SCHEMA_VERSION, extract_matrix, feature_group, feature_names
from detector.scoring import ModelError, Thresholds

MODEL_FILE = "gbm.txt"
CALIBRATION_FILE = "gbm.calibration.json"


@dataclass
class GBMDetector:
    booster: object
    thresholds: Thresholds
    version: str
    name: str = "gbm"
    calibration: dict = field(default_factory=dict)

    @classmethod
    def load(cls, models_dir: Path) -> GBMDetector:
        import lightgbm as lgb

        model_path, cal_path = Path(models_dir) / MODEL_FILE, Path(models_dir) / CALIBRATION_FILE
        if not model_path.is_file() or not cal_path.is_file():
            raise ModelError(f"no GBM model in {models_dir} (expected {MODEL_FILE} and {CALIBRATION_FILE}); "
                             "train one with `callguard train gbm`")
        cal = json.loads(cal_path.read_text())
        if cal.get("feature_schema") != FEATURE_SCHEMA_VERSION:
            raise ModelError(f"{model_path}: trained on feature schema {cal.get('feature_schema')}, this code "
                             f"computes schema {FEATURE_SCHEMA_VERSION}; retrain with `callguard train gbm`")
        if tuple(cal.get("feature_names", ())) != feature_names():
            raise ModelError(f"{model_path}: feature names differ from this code's; retrain the model")
        booster = lgb.Booster(model_file=str(model_path))
        return cls(booster=booster, thresholds=Thresholds.from_calibration(cal_path),
                   version=str(cal.get("version", "unknown")), calibration=cal)

    def score_features(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)

    def score(self, chunks: list[np.ndarray]) -> np.ndarray:
        if len(chunks) == 0:
            return np.zeros(0)
        return self.score_features(extract_matrix(chunks))

    def explain(self, chunks: list[np.ndarray], top: int = 3) -> list[list[tuple[str, float]]]:
        """Per chunk, the feature groups that pushed the score most (log-odds contributions)."""
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
