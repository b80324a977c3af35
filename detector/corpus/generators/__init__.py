"""Spoof generators, one module per family.

A TTS family module defines ``FAMILY``, ``ATTACK_TYPE``, ``KIND = "tts"``, ``check()`` (None when usable,
else a message naming what to install), ``voices()`` -> list of (voice, language) and
``synthesize(texts, voice, language, rng)`` -> (float32 audio, rate) for a list of sentences spoken
one after another. A transform family (resynthesis, replay) defines ``KIND = "transform"`` and
``transform(audio, rate, rng)`` -> (float32 audio, rate, voice description): it turns a bona fide
recording into a spoof of the same speaker.
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = ["espeak", "mbrola", "festival", "flite", "pico", "piper", "world", "lpc", "griffinlim", "mlsa",
           "replay", "hifigan", "nsf", "mbmelgan", "wavernn", "codec2", "rubberband",
           "psola", "wsola", "kokoro", "hibari", "hifigan16k"]


def load_all() -> dict[str, ModuleType]:
    """Family name -> module (a replay module provides one family per room set)."""
    out: dict[str, ModuleType] = {}
    for name in MODULES:
        mod = importlib.import_module(f"detector.corpus.generators.{name}")
        for fam in getattr(mod, "FAMILIES", [mod.FAMILY]):
            out[fam] = mod
    return out
