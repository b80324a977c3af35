"""The vocoder architectures, their losses and the discriminator (torch)."""

from __future__ import annotations

import math

import numpy as np
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


def upsampling_stack(ch: int, ups, dilations) -> tuple[nn.ModuleList, nn.ModuleList, int]:
    """Transposed-conv upsamplers (x u each, channels halved) and a residual block after each; returns
    them with the output channels. The GAN vocoders share it (their state_dict keys ``ups.*``/``res.*``)."""
    up_layers, res_blocks, c = nn.ModuleList(), nn.ModuleList(), ch
    for u in ups:
        up_layers.append(nn.ConvTranspose1d(c, c // 2, 2 * u, stride=u, padding=u // 2 + u % 2,
                                            output_padding=u % 2))
        c //= 2
        res_blocks.append(ResBlock(c, dilations))
    return up_layers, res_blocks, c


def upsample(x: torch.Tensor, ups: nn.ModuleList, res: nn.ModuleList) -> torch.Tensor:
    for up, block in zip(ups, res, strict=True):
        x = block(up(F.leaky_relu(x, 0.1)))
    return x


class GanVocoder(nn.Module):
    """log-mel [B, n_mels, F] -> waveform [B, F*HOP]; upsampling 5*4*4 = 80 = HOP."""

    def __init__(self, n_mels: int = N_MELS, ch: int = 128, ups=(5, 4, 4)) -> None:
        super().__init__()
        self.pre = nn.Conv1d(n_mels, ch, 7, padding=3)
        self.ups, self.res, c = upsampling_stack(ch, ups, (1, 3, 9))
        self.post = nn.Conv1d(c, 1, 7, padding=3)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor | None = None, noise_gen=None) -> torch.Tensor:
        x = upsample(self.pre(mel), self.ups, self.res)
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


def pqmf_synthesis_filters(bands: int = 4, taps: int = 62, cutoff: float = 0.142, beta: float = 9.0) -> np.ndarray:
    """Pseudo-QMF synthesis filters [bands, taps + 1]: a Kaiser-windowed low-pass prototype, cosine-modulated
    (the near-perfect-reconstruction design multi-band MelGAN uses; cutoff as a fraction of Nyquist)."""
    from scipy.signal import firwin

    proto = firwin(taps + 1, cutoff, window=("kaiser", beta))
    n = np.arange(taps + 1) - taps / 2
    return np.stack([2 * proto * np.cos((2 * k + 1) * np.pi / (2 * bands) * n - (-1) ** k * np.pi / 4)
                     for k in range(bands)]).astype(np.float32)


class MultiBandGanVocoder(nn.Module):
    """Multi-band MelGAN-style: log-mel -> ``bands`` sub-band signals at SR/bands -> PQMF synthesis.

    Upsampling 5*4 = 20 = HOP/bands, MelGAN residual stacks (dilations 1, 3, 9, 27); the sub-bands are
    recombined by a fixed pseudo-QMF synthesis bank, so its artefacts (band-edge aliasing, a generator
    working at 2 kHz) differ from the full-band ``hifigan`` family's.
    """

    def __init__(self, n_mels: int = N_MELS, ch: int = 128, ups=(5, 4), bands: int = 4) -> None:
        super().__init__()
        assert math.prod(ups) * bands == HOP
        self.bands = bands
        self.pre = nn.Conv1d(n_mels, ch, 7, padding=3)
        self.ups, self.res, c = upsampling_stack(ch, ups, (1, 3, 9, 27))
        self.post = nn.Conv1d(c, bands, 7, padding=3)
        self.register_buffer("synth", torch.from_numpy(pqmf_synthesis_filters(bands))[:, None, :] * bands,
                             persistent=False)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor | None = None, noise_gen=None) -> torch.Tensor:
        x = upsample(self.pre(mel), self.ups, self.res)
        sub = torch.tanh(self.post(F.leaky_relu(x, 0.1)))            # [B, bands, F*HOP/bands]
        y = F.conv_transpose1d(sub, self.synth, stride=self.bands)    # [B, 1, F*HOP + taps + 1 - bands]
        d = (self.synth.shape[-1] - 1) // 2
        return torch.clamp(y[:, 0, d: d + sub.shape[-1] * self.bands], -1.0, 1.0)


MU = 255


def mu_law_encode(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> 0..MU class index (8-bit mu-law)."""
    y = torch.sign(x) * torch.log1p(MU * x.abs().clamp(max=1.0)) / math.log1p(MU)
    return ((y + 1) / 2 * MU + 0.5).long().clamp(0, MU)


def mu_law_decode(q: torch.Tensor) -> torch.Tensor:
    y = q.float() / MU * 2 - 1
    return torch.sign(y) * ((1 + MU) ** y.abs() - 1) / MU


class WaveRnnVocoder(nn.Module):
    """WaveRNN-style autoregressive vocoder: a GRU predicts a 256-way mu-law distribution of each sample
    from the previous sample and the log-mel conditioning, trained by teacher forcing (cross-entropy) and
    sampled one sample at a time. Its artefacts (mu-law quantisation hiss, sampling noise, no phase model)
    are unlike the non-autoregressive families'. Generation folds the input into overlapping segments
    that run as one batch (as WaveRNN's batched generation does), so CPU synthesis is fast enough.
    """

    def __init__(self, n_mels: int = N_MELS, hidden: int = 128, cond: int = 32, temperature: float = 1.0,
                 fold: int = 2000, overlap: int = 160) -> None:
        super().__init__()
        self.temperature, self.fold, self.overlap = temperature, fold, overlap
        self.cond = nn.Sequential(nn.Conv1d(n_mels, 64, 5, padding=2), nn.Tanh(),
                                  nn.Conv1d(64, cond, 3, padding=1), nn.Tanh())
        self.rnn = nn.GRU(cond + 1, hidden, batch_first=True)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, MU + 1)

    def _cond(self, mel: torch.Tensor) -> torch.Tensor:
        return self.cond(mel).repeat_interleave(HOP, dim=2).transpose(1, 2)   # [B, T, cond]

    def logits(self, mel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: [B, T, MU+1] logits of each sample of x given the samples before it."""
        prev = mu_law_decode(mu_law_encode(x))
        prev = F.pad(prev, (1, 0))[:, :-1, None]
        h, _ = self.rnn(torch.cat([prev, self._cond(mel)], dim=2))
        return self.fc2(F.relu(self.fc1(h)))

    def nll(self, mel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        lg = self.logits(mel, x)
        return F.cross_entropy(lg.reshape(-1, MU + 1), mu_law_encode(x).reshape(-1))

    def forward(self, mel: torch.Tensor, f0: torch.Tensor | None = None,
                noise_gen: torch.Generator | None = None) -> torch.Tensor:
        """Sample a waveform [B, F*HOP] for each batch item (folded, overlaps cross-faded)."""
        return torch.stack([self._generate_one(c, noise_gen) for c in self._cond(mel)])

    def _generate_one(self, c: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """Conditioning [T, cond] -> T samples. Fold i covers samples [i*f - o, (i+1)*f + o): its first o
        samples warm the state up and are dropped, its next o fade in while fold i-1's last o fade out."""
        t, f, o = c.shape[0], self.fold, self.overlap
        n = max(1, math.ceil(t / f))
        padded = F.pad(c.T, (o, n * f - t + o)).T                                      # [n*f + 2o, cond]
        folds = torch.stack([padded[i * f: (i + 1) * f + 2 * o] for i in range(n)])   # [n, f+2o, cond]
        h = c.new_zeros(1, n, self.rnn.hidden_size)
        prev = c.new_zeros(n, 1)
        out = c.new_empty(n, f + 2 * o)
        for s in range(f + 2 * o):
            z, h = self.rnn(torch.cat([prev, folds[:, s]], dim=1)[:, None], h)
            p = torch.softmax(self.fc2(F.relu(self.fc1(z[:, 0]))) / self.temperature, dim=1)
            prev = mu_law_decode(torch.multinomial(p, 1, generator=gen))
            out[:, s] = prev[:, 0]
        fade = torch.linspace(0, 1, o)
        y = c.new_zeros(n * f + 2 * o)
        for i in range(n):
            w = torch.ones(f + 2 * o)
            if i:
                w[:o], w[o: 2 * o] = 0.0, fade
            if i < n - 1:
                w[-o:] = 1 - fade
            y[i * f: i * f + f + 2 * o] += out[i] * w
        return y[o: o + t]


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


ARCHS = {"hifigan": GanVocoder, "nsf": NsfVocoder, "mbmelgan": MultiBandGanVocoder, "wavernn": WaveRnnVocoder}


def build_model(family: str, config: dict | None = None) -> nn.Module:
    return ARCHS[family](**(config or {}))


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
