"""hibari (PyPI ``hibari-tts``): a 7.9 MB ONNX English TTS distilled from one Kokoro-82M voice (af_heart).

Only the voice inside the wheel is used (the others download on first use, which the builder never does).
Its noise component is seeded from the job's generator, so a build is reproducible.
"""

from __future__ import annotations

import numpy as np

from detector.corpus.generators._util import join

FAMILY = "hibari"
ATTACK_TYPE = "neural"
KIND = "tts"
VOICE = "heart"
SAMPLE_RATE = 24000
_TTS = None


def check() -> str | None:
    try:
        import hibari  # noqa: F401
    except ImportError:
        return "hibari is not installed: .venv/bin/pip install hibari-tts"
    return None


def voices() -> list[tuple[str, str]]:
    return [(VOICE, "en")]


def _tts():
    global _TTS
    if _TTS is None:
        from hibari import Hibari

        _TTS = Hibari(voice=VOICE, threads=1)
    return _TTS


def synthesize(texts: list[str], voice: str, language: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    tts = _tts()
    pieces = [tts(t, speed=float(rng.uniform(0.85, 1.2)), seed=int(rng.integers(2**31))) for t in texts]
    return join(pieces, SAMPLE_RATE, rng), SAMPLE_RATE
