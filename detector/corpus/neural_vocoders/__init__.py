"""Small neural vocoders trained here on CPU, used as neural spoof families of the corpus.

Four families (see docs/corpus.md, "Neural vocoder families"):

- ``hifigan``: a small HiFi-GAN-style GAN vocoder, log-mel -> waveform (transposed-conv upsampling with
  dilated residual blocks), trained with a multi-resolution STFT loss, a mel L1 loss and a light
  two-scale waveform discriminator (least-squares GAN + feature matching).
- ``nsf``: a neural source-filter vocoder: an F0-driven harmonic sine excitation plus noise, shaped by a
  non-causal gated dilated-convolution filter conditioned on the log-mel, trained with the
  multi-resolution STFT loss only. Its corpus generator also does voice-conversion-like conversions
  (F0 shifted by 2-4 semitones, mel envelope frequency-warped by 0.9-1.1).
- ``mbmelgan``: a multi-band MelGAN-style GAN vocoder: the generator makes four 2 kHz sub-bands that a
  fixed pseudo-QMF synthesis bank recombines; same losses as ``hifigan``.
- ``wavernn``: a WaveRNN-style autoregressive vocoder: a GRU samples each 8-bit mu-law sample from the
  previous one and the log-mel, trained by teacher forcing on the cross-entropy.

Both run at 8 kHz (the telephone channel downsamples everything to 8 kHz anyway) and are trained only on
bona fide speech of the train-split speaker groups. Weights live in ``data/vocoders/<family>.pt`` (not in
git), with a ``<family>.json`` training record (time, steps, quality check). This package imports torch
only when training or generating: ``weights_problem`` works without torch.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from detector.torch_cpu import pin_torch_cpu_isa

# the vocoders' weights, and so the corpus, must not depend on the build machine's instruction set
pin_torch_cpu_isa()

FAMILIES = ("hifigan", "nsf", "mbmelgan", "wavernn")
TRAIN_COMMAND = "callguard corpus train-vocoders"


def vocoders_dir() -> Path:
    env = os.environ.get("CALLGUARD_VOCODERS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "data" / "vocoders"


def weights_path(family: str) -> Path:
    return vocoders_dir() / f"{family}.pt"


def weights_problem(family: str) -> str | None:
    """None when the family can generate, else a message saying what is missing and how to fix it."""
    if importlib.util.find_spec("torch") is None:
        return (f"neural vocoder {family}: torch is not installed (.venv/bin/pip install torch), "
                f"then train it with `{TRAIN_COMMAND} --family {family}`")
    p = weights_path(family)
    if not p.is_file():
        return (f"neural vocoder {family}: trained weights {p} not found; train them with "
                f"`{TRAIN_COMMAND} --family {family}` (CPU, capped at 14 minutes)")
    return None
