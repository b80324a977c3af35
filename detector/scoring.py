"""The detector interface the rest of the product uses, and the loader for shipped models.

Everything outside ``detector/`` scores audio only through ``load_detector(...).score(chunks)``:
chunks are 2-second float32 arrays at 8 kHz (``detector.chunking``), the result is one probability per
chunk that the speech is synthetic or replayed. Thresholds come from the model's calibration file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DETECTOR_NAMES = ("gbm", "wavlm", "fused")


class ModelError(RuntimeError):
    """A model file that is missing, unreadable or of the wrong schema."""


@dataclass(frozen=True)
class Thresholds:
    """Score thresholds fixed on the dev split (never on eval).

    ``eer``: the dev equal-error-rate point; ``warn``: 1 % false alarms on dev bona fide speech;
    ``hangup``: 0.1 % false alarms on dev bona fide speech. ``warn_window`` / ``hangup_window``: how many
    consecutive chunk scores were averaged when each threshold was measured (the live policy compares the
    same rolling mean with it); None when the calibration does not say (per chunk, or an older model).
    """

    eer: float
    warn: float
    hangup: float
    warn_window: int | None = None
    hangup_window: int | None = None

    @classmethod
    def from_calibration(cls, path: Path) -> Thresholds:
        try:
            cal = json.loads(path.read_text())
            t = cal["thresholds"]
            w = cal.get("evidence_windows") or {}
            return cls(eer=float(t["eer"]), warn=float(t["far_1pct"]), hangup=float(t["far_0_1pct"]),
                       warn_window=int(w["warn"]) if w.get("warn") else None,
                       hangup_window=int(w["hangup"]) if w.get("hangup") else None)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path}: unreadable calibration ({exc})") from exc


class Detector(Protocol):
    name: str
    version: str
    thresholds: Thresholds

    def score(self, chunks: list[np.ndarray]) -> np.ndarray:
        """Probability (0..1) that each 2-s 8 kHz chunk is synthetic or replayed."""
        ...


def load_detector(name: str = "gbm", models_dir: Path | str | None = None) -> Detector:
    """Load a shipped detector by name from ``models_dir`` (default: the repository's ``models/``)."""
    models_dir = Path(models_dir) if models_dir else DEFAULT_MODELS_DIR
    if name == "gbm":
        from detector.gbm import GBMDetector

        return GBMDetector.load(models_dir)
    if name == "wavlm":
        from detector.wavlm_onnx import WavLMDetector

        return WavLMDetector.load(models_dir)
    if name == "fused":
        from detector.fusion import FusedDetector

        return FusedDetector.load(models_dir)
    raise ModelError(f"unknown detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")
