"""MBROLA diphone voices driven by espeak-ng (``-v mb-xx``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.corpus.generators._util import need
from detector.corpus.generators.espeak import speak

FAMILY = "mbrola"
ATTACK_TYPE = "tts"
KIND = "tts"
VOICES = {"us1": "en", "us2": "en", "en1": "en", "fr1": "fr", "fr4": "fr", "de2": "de", "de6": "de", "es1": "es",
          "es2": "es", "it3": "it", "it4": "it", "nl2": "nl", "nl3": "nl", "cz2": "cs"}
MBROLA_DIRS = [Path("/usr/share/mbrola"), Path("/usr/share/mbrola/voices")]


def _installed(v: str) -> bool:
    return any((d / v).exists() for d in MBROLA_DIRS)


def check() -> str | None:
    msg = need("espeak-ng", "espeak-ng") or need("mbrola", "mbrola")
    if msg:
        return msg
    if not any(_installed(v) for v in VOICES):
        return "no MBROLA voice installed: apt-get install mbrola-us1 mbrola-fr1 mbrola-it3 (non-free)"
    return None


def voices() -> list[tuple[str, str]]:
    return [(f"mb-{v}", lang) for v, lang in VOICES.items() if _installed(v)]


def synthesize(texts: list[str], voice: str, language: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    return speak(texts, voice, rng, speeds=(130, 190), pitches=(30, 70), sr=16000)
