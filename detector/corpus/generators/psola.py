"""Voice-changer spoofs of bona fide speech: Praat's "Change gender" (PSOLA with a formant shift).

A second voice-changer algorithm beside Rubber Band's phase vocoder (``rubberband``). Praat (`praat`)
marks the glottal pulses, moves them to the new pitch contour with pitch-synchronous overlap-add (PSOLA),
and shifts the formants by resampling the signal before the PSOLA step. This is the textbook way to make a
voice sound like another speaker or the other sex, and it leaves its own artefacts: pulse-marking errors,
doubled or dropped periods, a spectral envelope stretched as a whole. Each job draws the pitch median
(±3–8 semitones from the speaker's own), the formant shift ratio (0.82–1.22), the pitch range factor
(0.7–1.4) and, in a quarter of the jobs, a duration factor (0.92–1.08).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.corpus.generators._util import need, through_wav_tool

FAMILY = "psola"
ATTACK_TYPE = "resynthesis"
KIND = "transform"

SCRIPT = """form Change gender
  sentence infile
  sentence outfile
  real pitch_ratio 1.0
  real formant_ratio 1.0
  real range_factor 1.0
  real duration_factor 1.0
  integer seed 1
endform
random_initializeWithSeedUnsafelyButPredictably (seed)
sound = Read from file: infile$
pitch = To Pitch: 0, 75, 500
median = Get quantile: 0, 0, 0.5, "Hertz"
if median = undefined
  median = 150
endif
selectObject: sound
changed = Change gender: 75, 500, formant_ratio, median * pitch_ratio, range_factor, duration_factor
Save as WAV file: outfile$
"""


def check() -> str | None:
    return need("praat", "praat")


def voice(rng: np.random.Generator) -> dict[str, float | int]:
    """The drawn settings of one job."""
    semitones = float(rng.uniform(3.0, 8.0)) * (1 if rng.random() < 0.5 else -1)
    formant = float(np.exp(rng.uniform(np.log(0.82), np.log(1.22))))
    return {"semitones": semitones, "pitch_ratio": 2 ** (semitones / 12), "formant_ratio": formant,
            "range_factor": float(rng.uniform(0.7, 1.4)),
            "duration_factor": float(rng.uniform(0.92, 1.08)) if rng.random() < 0.25 else 1.0,
            # PSOLA fills unvoiced stretches with randomly spaced periods: seeded, so a job is reproducible
            "seed": int(rng.integers(1, 2**31 - 1))}


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    v = voice(rng)

    def argv(d: Path, src: Path, out: Path) -> list[str]:
        (d / "change.praat").write_text(SCRIPT)
        return ["praat", "--run", "--no-pref-files", str(d / "change.praat"), str(src), str(out),
                f"{v['pitch_ratio']:.5f}", f"{v['formant_ratio']:.5f}", f"{v['range_factor']:.5f}",
                f"{v['duration_factor']:.5f}", str(v["seed"])]

    peak = float(np.max(np.abs(x))) or 1.0
    y, rate = through_wav_tool(0.9 * x / peak, sr, argv, subtype="PCM_16")
    desc = (f"psola_{v['semitones']:+.1f}st_formant{v['formant_ratio']:.2f}_range{v['range_factor']:.2f}"
            f"_dur{v['duration_factor']:.2f}")
    return (y * peak / 0.9).astype(np.float32), rate, desc
