"""CMU flite voices (English)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.corpus.generators._util import join, need, read_wav, run, tempdir

FAMILY = "flite"
ATTACK_TYPE = "tts"
KIND = "tts"
VOICES = ["kal", "kal16", "awb", "rms", "slt"]


def check() -> str | None:
    return need("flite", "flite")


def voices() -> list[tuple[str, str]]:
    return [(v, "en") for v in VOICES]


def synthesize(texts: list[str], voice: str, language: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    pieces, sr = [], 16000
    with tempdir() as td:
        for i, t in enumerate(texts):
            out = Path(td) / f"{i}.wav"
            stretch = float(rng.uniform(0.85, 1.2))
            run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}", "-t", t, "-o", str(out)])
            x, sr = read_wav(out)
            pieces.append(x)
    return join(pieces, sr, rng), sr
