"""Voice-changer spoofs of bona fide speech: pitch (and formant) shifting with Rubber Band (`rubberband-cli`).

Real voice changers, software or hardware, shift a caller's pitch with or without keeping the formants, to
sound like someone else. Rubber Band is a phase vocoder (R2 engine: per-bin phase propagation with
transient resynchronisation) or, in its R3 engine, a multi-resolution one; both leave the phase-vocoder
artefacts (phasiness, smeared transients, spectral-peak interpolation) that no other family here has. Each
job draws a shift of 2-6 semitones up or down, formant preservation or not, the engine and a small tempo
change (most voice changers keep the tempo; some speed up or slow down speech to mask the speaker).
"""

from __future__ import annotations

import numpy as np

from detector.corpus.generators._util import need, through_wav_tool

FAMILY = "rubberband"
ATTACK_TYPE = "resynthesis"
KIND = "transform"


def check() -> str | None:
    return need("rubberband", "rubberband-cli")


def voice(rng: np.random.Generator) -> tuple[list[str], str]:
    """Command-line options and a voice description for one job."""
    semitones = float(rng.uniform(2.0, 6.0)) * (1 if rng.random() < 0.5 else -1)
    formant = bool(rng.random() < 0.5)
    engine = "3" if rng.random() < 0.4 else "2"
    tempo = float(rng.uniform(0.92, 1.08)) if rng.random() < 0.3 else 1.0
    opts = [f"-{engine}", "-q", "-p", f"{semitones:.2f}", "-T", f"{tempo:.3f}"] + (["-F"] if formant else [])
    return opts, f"r{engine}_{semitones:+.1f}st{'_formant' if formant else ''}_tempo{tempo:.2f}"


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    opts, desc = voice(rng)
    y, rate = through_wav_tool(x, sr, lambda _d, src, out: ["rubberband", *opts, str(src), str(out)])
    return y, rate, desc
