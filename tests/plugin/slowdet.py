"""A stand-in detector that takes 50 ms per chunk (to fill the scoring queue in tests)."""

from __future__ import annotations

import time

import numpy as np
from fakedet import FakeDetector


class SlowDetector(FakeDetector):
    def score(self, chunks: list[np.ndarray]) -> np.ndarray:
        time.sleep(0.05)
        return super().score(chunks)


def load(name: str, models_dir: str | None = None) -> SlowDetector:
    return SlowDetector()
