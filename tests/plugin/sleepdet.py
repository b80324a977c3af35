"""A stand-in detector for crash and scale-out tests (never for proving detection works).

Scores like ``fakedet`` after sleeping ``SLEEPDET_S`` seconds (default 0.05). When ``SLEEPDET_MARK`` names a
directory, each chunk it starts scoring leaves a file ``<pid>-<n>`` there first, so a test knows a chunk is
in flight in that process. A chunk whose first sample is exactly 0.25 kills the process that scores it
(``os._exit``): a poison chunk.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from fakedet import FakeDetector

_count = 0


class SleepDetector(FakeDetector):
    def score(self, chunks: list[np.ndarray]) -> np.ndarray:
        global _count
        mark = os.environ.get("SLEEPDET_MARK")
        if mark:
            _count += 1
            (Path(mark) / f"{os.getpid()}-{_count}").write_text(str(float(chunks[0][1]) if chunks[0].size else ""))
        if chunks and chunks[0].size and chunks[0][0] == 0.25:
            os._exit(3)
        time.sleep(float(os.environ.get("SLEEPDET_S", "0.05")))
        return super().score(chunks)


def load(name: str, models_dir: str | None = None) -> SleepDetector:
    return SleepDetector()
