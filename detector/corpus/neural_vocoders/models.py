"""The two vocoder architectures, their losses and the discriminator (torch)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from detector.corpus.neural_vocoders.dsp import HOP, N_MELS, SR


class ResBlock(nn.Module):
    """HiFi-GAN style residual block: (dilated conv, conv) pairs with leaky ReLU, dilations 1, 3, 9."""

    def __init__(self, ch: int, dilations=(1, 3, 9)) -> None:
        super().__init__()
        self.c1 = nn.ModuleList(nn.Conv1d(ch, ch, 3, dilation=d, padding=d) for d in dilations)
        self.c2 = nn.ModuleList(nn.Conv1d(ch, ch, 3, padding=1) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for a, b in zip(self.c1, self.c2, strict=True):
            x = x + b(F.leaky_relu(a(F.leaky_relu(x, 0.1)), 0.1))
        return x


class GanVocoder(nn.Module):
    """log-mel [B, n_mels, F] -> waveform [B, F*HOP]; upsampling 5*4*4 = 80 = HOP."""

    def __init__(self, n_mels: int = N_MELS, ch: int = 128, ups=(5, 4, 4)) -> None:
        super().__init__()
        self.pre = nn.Conv1d(n_mels, ch, 7, padding=3)
        self.ups = nn.ModuleList()
        self.res = nn.ModuleList()
        c = ch
        for u in ups:
            self.ups.append(nn.ConvTranspose1d(c, c // 2, 2 * u, stride=u, padding=u // 2 + u % 2,
                                               output_padding=u % 2))
            c //= 2
            self.res.append(ResBlock(c))
        self.post = nn.Conv1d(c, 1, 7, padding=3)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor | None = None, noise_gen=None) -> torch.Tensor:
        x = self.pre(mel)
        for up, res in zip(self.ups, self.res, strict=True):
            x = res(up(F.leaky_relu(x, 0.1)))
        return torch.tanh(self.post(F.leaky_relu(x, 0.1))).squeeze(1)


class NsfVocoder(nn.Module):
    """Neural source-filter: harmonic sine source from F0 + noise, shaped by a gated dilated-conv filter.

    Source (hn-NSF style): harmonics k*f0 (k = 1..n_harm, below Nyquist) with random initial phases,
    amplitude 0.1 in voiced frames plus Gaussian noise (std 0.003 voiced, 0.033 unvoiced); the filter is
    a non-causal WaveNet-like stack (gated tanh*sigmoid units, residual 1x1) conditioned on the log-mel
    repeated to the sample rate.
    """

    def __init__(self, n_mels: int = N_MELS, ch: int = 24, n_harm: int = 8, dilations=(1, 2, 4, 8, 16, 32),
                 blocks: int = 2) -> None:
        super().__init__()
        self.n_harm = n_harm
        self.cond = nn.Conv1d(n_mels, 32, 3, padding=1)
        self.inp = nn.Conv1d(n_harm + 1, ch, 1)
        self.dil = nn.ModuleList()
        self.cproj = nn.ModuleList()
        self.outp = nn.ModuleList()
        for _ in range(blocks):
            for d in dilations:
                self.dil.append(nn.Conv1d(ch, 2 * ch, 3, dilation=d, padding=d))
                self.cproj.append(nn.Conv1d(32, 2 * ch, 1))
                self.outp.append(nn.Conv1d(ch, ch, 1))
        self.post = nn.Sequential(nn.Conv1d(ch, ch, 1), nn.Tanh(), nn.Conv1d(ch, 1, 1))

    def source(self, f0: torch.Tensor, noise_gen: torch.Generator | None = None) -> torch.Tensor:
        """f0 [B, F] Hz -> excitation [B, n_harm+1, F*HOP]."""
        b, nf = f0.shape
        f = f0.repeat_interleave(HOP, dim=1)                      # [B, T]
        voiced = (f > 0).float()
        k = torch.arange(1, self.n_harm + 1, dtype=torch.float32)[None, :, None]
        fk = f[:, None, :] * k                                     # [B, H, T]
        phase0 = 2 * math.pi * torch.rand(b, self.n_harm, 1, generator=noise_gen)
        phase = 2 * math.pi * torch.cumsum(fk / SR, dim=2) + phase0
        sines = 0.1 * torch.sin(phase) * (fk < SR / 2).float() * voiced[:, None, :]
        noise = torch.randn(b, 1, f.shape[1], generator=noise_gen)
        noise = noise * (0.003 * voiced + 0.033 * (1 - voiced))[:, None, :]
        return torch.cat([sines + noise, noise], dim=1)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor, noise_gen: torch.Generator | None = None):
        src = self.source(f0, noise_gen)
        c = self.cond(mel).repeat_interleave(HOP, dim=2)
        x = self.inp(src)
        for dil, cp, op in zip(self.dil, self.cproj, self.outp, strict=True):
            h = dil(x) + cp(c)
            a, g = h.chunk(2, dim=1)
            x = x + op(torch.tanh(a) * torch.sigmoid(g))
        return torch.tanh(self.post(x)).squeeze(1)


class WaveDiscriminator(nn.Module):
    """A light MelGAN-style waveform discriminator; returns (score, feature maps)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([
            nn.Conv1d(1, 16, 15, padding=7),
            nn.Conv1d(16, 32, 41, stride=4, padding=20, groups=4),
            nn.Conv1d(32, 64, 41, stride=4, padding=20, groups=8),
            nn.Conv1d(64, 64, 5, padding=2),
        ])
        self.out = nn.Conv1d(64, 1, 3, padding=1)

    def forward(self, x: torch.Tensor):
        feats = []
        h = x[:, None, :]
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            feats.append(h)
        return self.out(h), feats


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, scales: int = 2) -> None:
        super().__init__()
        self.discs = nn.ModuleList(WaveDiscriminator() for _ in range(scales))

    def forward(self, x: torch.Tensor):
        outs = []
        for i, d in enumerate(self.discs):
            if i:
                x = F.avg_pool1d(x[:, None], 4, 2, padding=1).squeeze(1)
            outs.append(d(x))
        return outs


STFT_RESOLUTIONS = ((128, 32, 128), (256, 64, 256), (512, 128, 512))


def stft_loss(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss (spectral convergence + log-magnitude L1), averaged over resolutions."""
    total = y.new_zeros(())
    for n_fft, hop, win in STFT_RESOLUTIONS:
        w = torch.hann_window(win)
        ym = torch.stft(y, n_fft, hop, win, w, return_complex=True).abs().clamp(min=1e-7)
        xm = torch.stft(x, n_fft, hop, win, w, return_complex=True).abs().clamp(min=1e-7)
        sc = torch.linalg.norm(xm - ym) / torch.linalg.norm(xm).clamp(min=1e-7)
        total = total + sc + F.l1_loss(torch.log(ym), torch.log(xm))
    return total / len(STFT_RESOLUTIONS)


ARCHS = {"hifigan": GanVocoder, "nsf": NsfVocoder}


def build_model(family: str, config: dict | None = None) -> nn.Module:
    return ARCHS[family](**(config or {}))


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
