"""Per-leg rolling evidence -> verdict (bonafide / suspicious / spoof).

The evidence is the mean of the last ``window`` chunk scores (the first scored chunk always sets a
verdict). ``suspicious`` at or above the calibration's ``warn`` threshold; ``spoof`` when the mean of
the last ``hangup_window`` scores (default: ``window``) is at or above ``hangup``, and only once at
least ``max(min_chunks, hangup_window)`` scored chunks back it (before that, strong evidence is
reported as ``suspicious``). The shipped GBM measures its hang-up threshold on 5-chunk means (10 s of
speech): a longer mean narrows the bona fide tail, so the threshold can sit lower at the same false-alarm
rate, and comparing a shorter mean with it would false-alarm more than calibrated. Detection errors are
not evidence: they are counted and never move the verdict, so an error can never produce ``spoof``.
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
    hangup_window: int | None = None  # chunks averaged for the hang-up decision (None: ``window``)
    scores: deque[float] = field(init=False)
    n_scored: int = 0
    n_errors: int = 0
    verdict: str | None = None  # None until the first chunk is scored
    history: list[tuple[int, str]] = field(default_factory=list)  # (chunk index, verdict) on every change

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_chunks < 1:
            raise ValueError("window and min_chunks must be >= 1")
        self._check(self.warn, self.hangup)
        self.hangup_window = self._check_window(self.hangup_window)
        self.scores = deque(maxlen=max(self.window, self.hangup_window or 1))

    @staticmethod
    def _check_window(window: int | None) -> int | None:
        if window is not None and int(window) < 1:
            raise ValueError(f"hangup_window must be >= 1 (got {window})")
        return None if window is None else int(window)

    @staticmethod
    def _check(warn: float, hangup: float) -> None:
        if not 0.0 <= warn <= hangup <= 1.0:
            raise ValueError(f"thresholds must satisfy 0 <= warn <= hangup <= 1 (got {warn}, {hangup})")

    def set_thresholds(self, warn: float, hangup: float, hangup_window: int | None = None) -> None:
        """New thresholds (a reloaded detector's) for the chunks to come; the scores collected and the
        verdict so far stay as they are (the next scored chunk decides with the new thresholds)."""
        self._check(warn, hangup)
        hangup_window = self._check_window(hangup_window)
        self.warn, self.hangup = float(warn), float(hangup)
        if hangup_window != self.hangup_window:
            self.hangup_window = hangup_window
            self.scores = deque(self.scores, maxlen=max(self.window, hangup_window or 1))

    @property
    def evidence(self) -> float | None:
        """The mean of the last ``window`` scores (what ``warn`` is compared with)."""
        return self._mean(self.window)

    @property
    def hangup_evidence(self) -> float | None:
        """The mean of the last ``hangup_window`` scores (what ``hangup`` is compared with)."""
        return self._mean(self.hangup_window or self.window)

    def _mean(self, n: int) -> float | None:
        recent = list(self.scores)[-n:]
        return sum(recent) / len(recent) if recent else None

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
        needed = max(self.min_chunks, self.hangup_window or 1)
        if self.n_scored >= needed and (self.hangup_evidence or 0.0) >= self.hangup:
            return SPOOF
        if ev >= self.warn:
            return SUSPICIOUS
        return BONAFIDE
