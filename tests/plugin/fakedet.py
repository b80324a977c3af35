"""A tiny stand-in detector for unit tests (never for proving detection works).

The score is a fixed function of the chunk's level so tests can make chunks that score high or low:
RMS >= 0.2 -> 0.95, else 0.05. A chunk whose first sample is exactly 0.5 raises (a detection error).
FAKEDET_SCORE=<x> in the environment makes every chunk score x (lab plumbing checks only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from detector.scoring import Thresholds


@dataclass
class FakeDetector:
    name: str = "fake"
    version: str = "test"
    thresholds: Thresholds = Thresholds(eer=0.5, warn=0.6, hangup=0.9)

    def score(self, chunks: list[np.ndarray]) -> np.ndarray:
        fixed = os.environ.get("FAKEDET_SCORE")
        if fixed:
            return np.full(len(chunks), float(fixed))
        out = []
        for c in chunks:
            if c.size and c[0] == 0.5:
                raise RuntimeError("fake detector failure")
            rms = float(np.sqrt(np.mean(np.square(c, dtype=np.float64)))) if c.size else 0.0
            out.append(0.95 if rms >= 0.2 else 0.05)
        return np.asarray(out)


def load(name: str, models_dir: str | None = None) -> FakeDetector:
    return FakeDetector()
