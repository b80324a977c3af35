"""espeak-ng formant synthesis, with its voice variants (including the Klatt ones)."""

from __future__ import annotations

import numpy as np

from detector.corpus.generators._util import join, need, read_wav_bytes, run

FAMILY = "espeak"
ATTACK_TYPE = "tts"
KIND = "tts"
LANG_VOICES = {"en": ["en-us", "en-gb", "en-gb-scotland", "en-029"], "es": ["es", "es-419"], "fr": ["fr-fr", "fr-be"],
               "it": ["it"], "ru": ["ru"], "de": ["de"], "cs": ["cs"], "nl": ["nl"]}
VARIANTS = ["m1", "m2", "m3", "m5", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3", "klatt4",
            "croak", "Andy", "Annie", "steph", "robert", "iven2", "linda", "michel"]


def check() -> str | None:
    return need("espeak-ng", "espeak-ng")


def voices() -> list[tuple[str, str]]:
    return [(f"{v}+{var}", lang) for lang, vs in LANG_VOICES.items() for v in vs for var in VARIANTS]


def speak(texts: list[str], voice: str, rng: np.random.Generator, speeds: tuple[int, int],
          pitches: tuple[int, int], sr: int) -> tuple[np.ndarray, int]:
    """espeak-ng on each text with a random speed and pitch, joined with pauses (also drives MBROLA)."""
    pieces = []
    for t in texts:
        speed = int(rng.integers(*speeds))
        pitch = int(rng.integers(*pitches))
        x, sr = read_wav_bytes(run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", t]))
        pieces.append(x)
    return join(pieces, sr, rng), sr


def synthesize(texts: list[str], voice: str, language: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    return speak(texts, voice, rng, speeds=(130, 200), pitches=(25, 75), sr=22050)
