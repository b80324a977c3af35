"""Griffin-Lim phase reconstruction from (optionally mel-compressed) magnitude spectrograms of bona fide speech."""

from __future__ import annotations

import numpy as np
from scipy.signal import istft, stft

FAMILY = "griffinlim"
ATTACK_TYPE = "resynthesis"
KIND = "transform"


def check() -> str | None:
    return None


def _mel_fb(n_mels: int, n_fft: int, sr: int) -> np.ndarray:
    def hz2mel(f):
        return 2595 * np.log10(1 + f / 700)

    def mel2hz(m):
        return 700 * (10 ** (m / 2595) - 1)

    pts = mel2hz(np.linspace(hz2mel(0), hz2mel(sr / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / sr)
    fb = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        fb[m] = np.clip(np.minimum((bins - lo) / (c - lo + 1e-9), (hi - bins) / (hi - c + 1e-9)), 0, None)
    return fb


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    n_fft = 512 if sr >= 16000 else 256
    hop = n_fft // 4
    iters = int(rng.integers(16, 60))
    _, _, z = stft(x, fs=sr, nperseg=n_fft, noverlap=n_fft - hop)
    mag = np.abs(z)
    mel = rng.random() < 0.5
    if mel:
        n_mels = int(rng.choice([40, 64, 80]))
        fb = _mel_fb(n_mels, n_fft, sr)
        mag = np.linalg.pinv(fb) @ (fb @ mag)
        mag = np.maximum(mag, 0)
    angles = np.exp(2j * np.pi * rng.random(mag.shape))
    prev = np.zeros_like(z)
    momentum = 0.99
    for _ in range(iters):
        _, y = istft(mag * angles, fs=sr, nperseg=n_fft, noverlap=n_fft - hop)
        _, _, rebuilt = stft(y, fs=sr, nperseg=n_fft, noverlap=n_fft - hop)
        rebuilt = rebuilt[:, : mag.shape[1]]
        if rebuilt.shape[1] < mag.shape[1]:
            rebuilt = np.pad(rebuilt, ((0, 0), (0, mag.shape[1] - rebuilt.shape[1])))
        acc = rebuilt - momentum / (1 + momentum) * prev
        angles = np.exp(1j * np.angle(acc))
        prev = rebuilt
    _, y = istft(mag * angles, fs=sr, nperseg=n_fft, noverlap=n_fft - hop)
    return y[: len(x)].astype(np.float32), sr, f"it{iters}_{'mel' + str(n_mels) if mel else 'linear'}"
