"""Copy synthesis with a trained vocoder (deterministic: fixed seeds, one thread)."""

from __future__ import annotations

import numpy as np
import torch

from detector.corpus.neural_vocoders import weights_path
from detector.corpus.neural_vocoders.dsp import HOP, f0_frames, log_mel_from_mag, magnitude, warp_frequency
from detector.corpus.neural_vocoders.models import build_model

_CACHE: dict[str, tuple[torch.nn.Module, dict]] = {}


def save(model: torch.nn.Module, family: str, config: dict, path, extra: dict | None = None) -> None:
    torch.save({"family": family, "config": config, "state_dict": model.state_dict(), "extra": extra or {}},
               str(path))


def load(family: str, path=None) -> tuple[torch.nn.Module, dict]:
    path = str(path or weights_path(family))
    key = f"{family}:{path}"
    if key not in _CACHE:
        torch.set_num_threads(1)
        ck = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(family, ck["config"])
        model.load_state_dict(ck["state_dict"])
        model.eval()
        _CACHE[key] = (model, ck)
    return _CACHE[key]


def features(x: np.ndarray, f0_factor: float = 1.0, warp: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """8 kHz audio -> (log-mel [1, n_mels, F], F0 [1, F]) with optional F0 scaling and envelope warping."""
    n = (len(x) // HOP) * HOP
    xt = torch.from_numpy(np.ascontiguousarray(x[:n], dtype=np.float32))[None]
    mag = magnitude(xt)[:, :, :-1]
    if warp != 1.0:
        mag = warp_frequency(mag, warp)
    mel = log_mel_from_mag(mag)
    f0 = (f0_frames(x[:n], mel.shape[-1]) * f0_factor).astype(np.float32)
    return mel, torch.from_numpy(f0)[None]


@torch.no_grad()
def vocode(model: torch.nn.Module, x: np.ndarray, seed: int, f0_factor: float = 1.0,
           warp: float = 1.0) -> np.ndarray:
    """Copy synthesis of 8 kHz audio x (peak-normalise first); same seed -> same samples."""
    mel, f0 = features(x, f0_factor, warp)
    gen = torch.Generator().manual_seed(int(seed) & 0x7FFFFFFF)
    out = []
    step = 3000  # frames per block (30 s) keeps memory flat on long inputs; blocks overlap by 20 frames
    ov = 20
    nf = mel.shape[-1]
    start = 0
    while start < nf:
        a = max(0, start - ov)
        b = min(nf, start + step + ov)
        y = model(mel[:, :, a:b], f0[:, a:b], gen)[0].numpy()
        y = y[(start - a) * HOP: (min(nf, start + step) - a) * HOP]
        out.append(y)
        start += step
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)
