"""SVOX Pico (pico2wave), six languages."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.corpus.generators._util import join, need, read_wav, run, tempdir

FAMILY = "pico"
ATTACK_TYPE = "tts"
KIND = "tts"
VOICES = {"en-US": "en", "en-GB": "en", "de-DE": "de", "es-ES": "es", "fr-FR": "fr", "it-IT": "it"}


def check() -> str | None:
    return need("pico2wave", "libttspico-utils (non-free)")


def voices() -> list[tuple[str, str]]:
    return sorted(VOICES.items())


def synthesize(texts: list[str], voice: str, language: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    pieces, sr = [], 16000
    with tempdir() as td:
        for i, t in enumerate(texts):
            out = Path(td) / f"{i}.wav"
            rate = int(rng.integers(85, 120))
            pitch = int(rng.integers(85, 120))
            run(["pico2wave", "-l", voice, "-w", str(out),
                 f'<speed level="{rate}"><pitch level="{pitch}">{t}</pitch></speed>'])
            x, sr = read_wav(out)
            pieces.append(x)
    return join(pieces, sr, rng), sr
