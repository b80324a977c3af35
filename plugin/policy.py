"""Per-leg rolling evidence -> verdict (bonafide / suspicious / spoof).

The evidence is the mean of the last ``window`` chunk scores (the first scored chunk always sets a
verdict). ``suspicious`` at or above the calibration's ``warn`` threshold, ``spoof`` at or above
``hangup`` but only once ``min_chunks`` scored chunks back it (before that, strong evidence is
reported as ``suspicious``). Detection errors are not evidence: they are counted and never move
the verdict, so an error can never produce ``spoof``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

BONAFIDE, SUSPICIOUS, SPOOF = "bonafide", "suspicious", "spoof"


@dataclass
class LegEvidence:
    window: int
    min_chunks: int
    warn: float
    hangup: float
    scores: deque[float] = field(init=False)
    n_scored: int = 0
    n_errors: int = 0
    verdict: str | None = None  # None until the first chunk is scored
    history: list[tuple[int, str]] = field(default_factory=list)  # (chunk index, verdict) on every change

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_chunks < 1:
            raise ValueError("window and min_chunks must be >= 1")
        self._check(self.warn, self.hangup)
        self.scores = deque(maxlen=self.window)

    @staticmethod
    def _check(warn: float, hangup: float) -> None:
        if not 0.0 <= warn <= hangup <= 1.0:
            raise ValueError(f"thresholds must satisfy 0 <= warn <= hangup <= 1 (got {warn}, {hangup})")

    def set_thresholds(self, warn: float, hangup: float) -> None:
        """New thresholds (a reloaded detector's) for the chunks to come; the scores collected and the
        verdict so far stay as they are (the next scored chunk decides with the new thresholds)."""
        self._check(warn, hangup)
        self.warn, self.hangup = float(warn), float(hangup)

    @property
    def evidence(self) -> float | None:
        return sum(self.scores) / len(self.scores) if self.scores else None

    def add(self, chunk_index: int, score: float | None) -> bool:
        """Add one chunk result (None = detection error). Returns True when the verdict changed."""
        if score is None or score != score:  # error or NaN: no evidence either way
            self.n_errors += 1
            return False
        self.scores.append(min(max(float(score), 0.0), 1.0))
        self.n_scored += 1
        new = self._decide()
        if new != self.verdict:
            self.verdict = new
            self.history.append((chunk_index, new))
            return True
        return False

    def _decide(self) -> str:
        ev = self.evidence
        if ev is None:
            return BONAFIDE
        if ev >= self.hangup and self.n_scored >= self.min_chunks:
            return SPOOF
        if ev >= self.warn:
            return SUSPICIOUS
        return BONAFIDE
