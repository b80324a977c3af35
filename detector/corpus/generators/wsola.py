"""Voice-changer spoofs of bona fide speech: SoX's `pitch` effect (WSOLA time stretch, then resampling).

A third voice-changer algorithm beside the phase vocoder (``rubberband``) and PSOLA (``psola``). SoX
stretches the time axis by waveform-similarity overlap-add (WSOLA: each segment is placed where it best
matches the previous one) and resamples back to the original length, which moves pitch and formants
together, as cheap software voice changers do. It leaves WSOLA's artefacts: repeated or skipped waveform
segments, phase jumps at the joins, a formant envelope shifted with the pitch. Each job draws a shift of
±250–700 cents and, in 30 % of the jobs, a tempo change (0.92–1.08).
"""

from __future__ import annotations

import numpy as np

from detector.corpus.generators._util import need, through_wav_tool

FAMILY = "wsola"
ATTACK_TYPE = "resynthesis"
KIND = "transform"


def check() -> str | None:
    return need("sox", "sox")


def voice(rng: np.random.Generator) -> tuple[list[str], str]:
    """SoX effect arguments and a voice description for one job."""
    cents = float(rng.uniform(250.0, 700.0)) * (1 if rng.random() < 0.5 else -1)
    tempo = float(rng.uniform(0.92, 1.08)) if rng.random() < 0.3 else 1.0
    effects = ["pitch", f"{cents:.0f}"] + (["tempo", "-s", f"{tempo:.3f}"] if tempo != 1.0 else [])
    return effects, f"sox_{cents:+.0f}c_tempo{tempo:.2f}"


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    effects, desc = voice(rng)
    # -D: no dither and -R: repeatable, so the same job gives the same audio; float output avoids clipping
    y, rate = through_wav_tool(x, sr, lambda _d, src, out: ["sox", "-D", "-R", "-q", str(src), "-e", "floating-point",
                                                            "-b", "32", str(out), *effects])
    return y, rate, desc
