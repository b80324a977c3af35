"""Signal processing shared by training and generation: 8 kHz log-mel, F0, training audio."""

from __future__ import annotations

import numpy as np
import torch

SR = 8000
N_FFT = 256
HOP = 80            # 10 ms frames
N_MELS = 40
FMIN, FMAX = 50.0, 4000.0
LOG_FLOOR = 1e-5


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SR, fmin: float = FMIN,
                   fmax: float = FMAX) -> np.ndarray:
    def hz2mel(f):
        return 2595 * np.log10(1 + np.asarray(f) / 700)

    def mel2hz(m):
        return 700 * (10 ** (np.asarray(m) / 2595) - 1)

    pts = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / sr)
    fb = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        fb[m] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return fb.astype(np.float32)


_FB: torch.Tensor | None = None
_WIN: torch.Tensor | None = None


def _consts() -> tuple[torch.Tensor, torch.Tensor]:
    global _FB, _WIN
    if _FB is None:
        _FB = torch.from_numpy(mel_filterbank())
        _WIN = torch.hann_window(N_FFT)
    return _FB, _WIN


def magnitude(x: torch.Tensor) -> torch.Tensor:
    """[B, T] -> [B, N_FFT//2+1, T//HOP+1] linear magnitude."""
    _, win = _consts()
    z = torch.stft(x, N_FFT, HOP, N_FFT, win, center=True, return_complex=True)
    return z.abs()


def log_mel_from_mag(mag: torch.Tensor) -> torch.Tensor:
    fb, _ = _consts()
    return torch.log(torch.clamp(torch.matmul(fb, mag), min=LOG_FLOOR))


def log_mel(x: torch.Tensor) -> torch.Tensor:
    """[B, T] waveform -> [B, N_MELS, T//HOP+1] natural-log mel spectrogram."""
    return log_mel_from_mag(magnitude(x))


def warp_frequency(mag: torch.Tensor, alpha: float) -> torch.Tensor:
    """Stretch a [.., F, T] magnitude spectrogram along frequency (alpha > 1 raises formants)."""
    n = mag.shape[-2]
    src = torch.clamp(torch.arange(n, dtype=torch.float32) / alpha, 0, n - 1)
    lo = torch.floor(src).long()
    hi = torch.clamp(lo + 1, max=n - 1)
    frac = (src - lo.float())[:, None]
    return mag[..., lo, :] * (1 - frac) + mag[..., hi, :] * frac


def f0_frames(x: np.ndarray, n_frames: int) -> np.ndarray:
    """F0 in Hz (0 = unvoiced) per 10-ms frame at 8 kHz (WORLD dio + stonemask), padded to n_frames."""
    from detector.corpus.generators._util import import_pyworld

    pw = import_pyworld()
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pw.dio(x64, SR, f0_floor=60.0, f0_ceil=500.0, frame_period=1000.0 * HOP / SR)
    f0 = pw.stonemask(x64, f0, t, SR)
    out = np.zeros(n_frames, np.float32)
    k = min(n_frames, len(f0))
    out[:k] = f0[:k]
    return out


def normalize(x: np.ndarray, peak: float = 0.8) -> np.ndarray:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 1e-6 else x.astype(np.float32)


# Packages added to the corpus after the published vocoder weights were trained (corpus v3; Beneath a Steel
# Sky in v8): left out of vocoder training and its quality check, so that the documented commands reproduce
# those weights.
LATER_SOURCES = frozenset({"tuxpaint-stamps-default", "flight-of-the-amazon-queen", "drascula",
                           "drascula-spanish", "beneath-a-steel-sky"})


def split_audio(split: str, seed: int, max_seconds_per_pack: float, packages_dir=None) -> list[tuple[str, np.ndarray]]:
    """Bona fide recordings (8 kHz, peak-normalised) of one split's speaker groups: [(speaker, audio)]."""
    from detector.audio import AudioError, load_audio
    from detector.corpus.build import stable_seed
    from detector.corpus.sources import inventory
    from detector.corpus.splits import group_splits

    packs, _ = inventory(packages_dir, include_klettres=False)
    gsplit = group_splits(sorted({p.group for p in packs}))
    out = []
    for pack in packs:
        if gsplit.get(pack.group) != split or pack.package in LATER_SOURCES:
            continue
        rng = np.random.default_rng(stable_seed(seed, "vocoder-data", pack.key, pack.language))
        acc = 0.0
        for i in rng.permutation(len(pack.files)):
            try:
                x = load_audio(pack.files[i], SR)
            except AudioError:
                continue
            if x.size < SR // 2:
                continue
            out.append((pack.speaker, normalize(x)))
            acc += x.size / SR
            if acc >= max_seconds_per_pack:
                break
    return out
