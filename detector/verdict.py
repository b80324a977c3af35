"""Turning scores into verdicts with a detector's calibrated thresholds (shared by `scan` and the plugin)."""

from __future__ import annotations

from detector.scoring import Thresholds

BONAFIDE, SUSPICIOUS, SPOOF = "bonafide", "suspicious", "spoof"


def verdict_for(score: float, thresholds: Thresholds) -> str:
    """``spoof`` at or above the hang-up threshold (0.1 % false alarms on dev bona fide speech),
    ``suspicious`` at or above the warn threshold (1 %), else ``bonafide``."""
    if score >= thresholds.hangup:
        return SPOOF
    if score >= thresholds.warn:
        return SUSPICIOUS
    return BONAFIDE
