"""Sentence banks for the TTS generators, one UTF-8 file per language (``<lang>.txt``, one sentence a line)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


@cache
def bank(language: str) -> tuple[str, ...]:
    path = HERE / f"{language}.txt"
    if not path.is_file():
        return ()
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return tuple(ln for ln in lines if ln and not ln.startswith("#"))


def languages() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.txt"))


def make_texts(language: str, rng: np.random.Generator, n: int) -> list[str]:
    """``n`` utterances: one or two bank sentences, sometimes followed by a spoken digit string."""
    b = bank(language)
    if not b:
        raise ValueError(f"no sentence bank for language {language!r}")
    out = []
    for _ in range(n):
        k = 1 if rng.random() < 0.6 else 2
        parts = [b[int(i)] for i in rng.choice(len(b), size=k, replace=False)]
        if rng.random() < 0.2:
            parts.append(" ".join(str(int(d)) for d in rng.integers(0, 10, size=int(rng.integers(4, 9)))) + ".")
        out.append(" ".join(parts))
    return out
