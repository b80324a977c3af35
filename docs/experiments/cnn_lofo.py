"""Model-selection experiment: does a small convolutional network on log spectrograms generalise to unseen
families better than the GBM on summary statistics, alone or blended with it?

Every model tried so far on this corpus sees per-chunk summary statistics (the GBM, an MLP, OC-softmax nets)
or raw samples through a transformer trained from scratch (WavLM, far worse). A 2-D CNN over the
time-frequency plane sits between the two: it keeps *where* in time and frequency an artefact sits (a
vocoder's smeared harmonics, a phase vocoder's transient blur, a room's tail) that the statistics average
away, and it is far cheaper to train from scratch than a transformer. LFCC/spectrogram CNNs (LCNN) are the
standard ASVspoof baselines.

Front end (``spectrogram_channels``): 25 ms Hann frames every 10 ms, 256-point FFT, the 128 bins above DC
averaged in pairs to 64 linear bands, log power with the chunk's mean log power removed (level invariance).
``--cmn`` also removes each band's mean over the chunk (the long-term envelope: timbre and channel colour);
``--phase`` adds four phase-derivative channels; ``--frame/--nfft/--bands`` change the analysis (e.g. 400, 512,
128: 50 ms windows that resolve the harmonics of most voices, 31 Hz bands). Every channel and band is
standardised on a sample of the fold's training rows. Training: random ~1-s crops (96 frames), one random band
mask (SpecAugment; with ``--time-mask`` also one stretch of frames), speaker- and generator-balanced sampling,
AdamW with a one-cycle schedule, a fixed budget (no early stopping on what is tested). Test: the whole 2-s
chunk. Spectrograms are cached as float16 under the corpus's ``features/`` (1 GB without phase, 4.8 GB with it,
for v8's train+dev).

Same folds as ``detector.lofo.run_lofo``, train+dev only (eval is never read); ``bass`` trains always, as in
the shipped protocol. Prints the GBM (200 rounds), the CNN, and their average after z-scoring each on the
fold's calibration bona fide rows. Needs torch (the ``train`` extra).

    .venv/bin/python docs/experiments/cnn_lofo.py --epochs 6 [--cmn] [--phase] [--families a,b] [--limit N] \
        [--width 16] [--time-mask 0] [--frame 200 --nfft 256 --bands 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lofo_variants import Protocol, cached_columns, summarise_folds  # noqa: E402

from detector.train_gbm import balanced_weights  # noqa: E402

FRAME, HOP, NFFT, BANDS = 200, 80, 256, 64
CROP = 96


def spectrogram_channels(chunks: np.ndarray, phase: bool, frame: int = FRAME, nfft: int = NFFT,
                         bands: int = BANDS) -> np.ndarray:
    """[N, 16000] chunks at 8 kHz -> [N, C, bands, frames] float16 (the nfft/2 bins above DC averaged
    into ``bands`` equal groups; the default is band pairs of 128 bins).

    Channel 0: log power, the chunk's mean removed. With ``phase`` four more: cos and sin of each bin's
    instantaneous-frequency deviation (its phase advance from the previous frame minus the advance of the
    bin's centre frequency) and of the phase step to the next lower bin (a group-delay proxy), band means.
    Magnitude alone cannot see copy-synthesis that keeps the magnitude and rebuilds the phase (Griffin-Lim,
    a phase vocoder): the GBM's bispectral phase statistics are what catches those."""
    frames = (chunks.shape[1] - frame) // HOP + 1
    idx = np.arange(frame)[None, :] + HOP * np.arange(frames)[:, None]
    spec = np.fft.rfft(chunks[:, idx] * np.hanning(frame).astype(np.float32), n=nfft, axis=-1)  # [N, T, bins]
    power = np.abs(spec[..., 1:]) ** 2

    def group(a: np.ndarray) -> np.ndarray:      # [N, T, nfft/2] -> [N, bands, T]
        return a.reshape(*a.shape[:2], bands, -1).mean(-1).transpose(0, 2, 1)
    logp = np.log(group(power) + 1e-10)
    logp -= logp.mean(axis=(1, 2), keepdims=True)
    out = [logp]
    if phase:
        k = np.arange(1, nfft // 2 + 1)
        unit = spec[..., 1:] / (np.abs(spec[..., 1:]) + 1e-9)
        advance = np.exp(-2j * np.pi * k * HOP / nfft)
        dt = np.zeros_like(unit)
        dt[:, 1:] = unit[:, 1:] * np.conj(unit[:, :-1]) * advance
        spec0 = spec[..., :-1] / (np.abs(spec[..., :-1]) + 1e-9)
        df = unit * np.conj(spec0)
        out += [group(dt.real), group(dt.imag), group(df.real), group(df.imag)]
    return np.stack(out, axis=1).astype(np.float16)


def cached_spectrograms(corpus: Path, rows: list[dict], phase: bool, frame: int = FRAME, nfft: int = NFFT,
                        bands: int = BANDS) -> np.ndarray:
    shape = "" if (frame, nfft, bands) == (FRAME, NFFT, BANDS) else f"_{frame}-{nfft}-{bands}"
    return cached_columns(corpus, rows, f"cnnspec{'_phase' if phase else ''}{shape}",
                          lambda: lambda chunks: spectrogram_channels(chunks, phase, frame, nfft, bands),
                          dtype=np.float16)


def make_net(channels: int, width: int = 16, bands: int = BANDS):
    """Four conv blocks of ``width`` x (1, 2, 3, 4) channels; 16 is the sixth session's 47 k-parameter net."""
    from torch import nn

    c1, c2, c3, c4 = width, 2 * width, 3 * width, 4 * width

    def block(i: int, o: int, pool: bool) -> list:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()] + \
            ([nn.MaxPool2d(2)] if pool else [])

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(*block(channels, c1, True), *block(c1, c2, True), *block(c2, c3, True),
                                      *block(c3, c4, False))
            self.drop = nn.Dropout(0.3)
            self.head = nn.Linear(c4 * (bands // 8), 1)

        def forward(self, x):                     # x: [B, C, BANDS, T]
            h = self.body(x)                      # [B, c4, BANDS/8, T/8]
            h = h.mean(dim=3).flatten(1)          # pool over time, keep the frequency layout
            return self.head(self.drop(h)).squeeze(1)
    return Net()


def train_cnn(spec: np.ndarray, fit: np.ndarray, y: np.ndarray, w: np.ndarray, mu: np.ndarray, sd: np.ndarray,
              seed: int, epochs: int, per_epoch: int, width: int = 16, time_mask: int = 0):
    """Train on the ``fit`` rows of [N, C, BANDS, FRAMES] spectrograms, standardised per batch with
    ``mu``/``sd``; returns a scoring function over row indices (higher = spoof)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = make_net(spec.shape[1], width, spec.shape[2])
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-2)
    batch = 64
    steps = epochs * per_epoch // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.15)
    rows = np.flatnonzero(fit)
    p = w / w.sum()
    net.train()
    for _ in range(steps):
        idx = rows[rng.choice(len(rows), size=batch, p=p)]
        start = rng.integers(0, spec.shape[3] - CROP + 1, size=batch)
        xb = np.stack([spec[i, :, :, s:s + CROP] for i, s in zip(idx, start, strict=True)]).astype(np.float32)
        xb = (xb - mu) / sd
        for b in range(batch):                    # one band mask per example
            bw = rng.integers(0, 9)
            bw = bw * spec.shape[2] // BANDS   # the same share of the band axis at any resolution
            lo = rng.integers(0, spec.shape[2] - bw + 1)
            xb[b, :, lo:lo + bw] = 0.0
            if time_mask:                         # and one random stretch of frames
                span = rng.integers(0, time_mask + 1)
                t0 = rng.integers(0, CROP - span + 1)
                xb[b, :, :, t0:t0 + span] = 0.0
        loss = nn.functional.binary_cross_entropy_with_logits(net(torch.from_numpy(xb)),
                                                              torch.from_numpy(y[idx].astype(np.float32)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()

    def predict(which: np.ndarray) -> np.ndarray:
        out, idx = [], np.flatnonzero(which)
        with torch.no_grad():
            for i in range(0, len(idx), 256):
                xb = (spec[idx[i:i + 256]].astype(np.float32) - mu) / sd
                out.append(net(torch.from_numpy(xb)).numpy())
        return np.concatenate(out).astype(np.float64)
    return predict


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v8"))
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--per-epoch", type=int, default=16384, help="examples drawn per epoch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cross-folds", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="stop after this many folds (a smoke run)")
    ap.add_argument("--cmn", action="store_true",
                    help="remove each chunk's mean per band (its long-term envelope: voice timbre and channel)")
    ap.add_argument("--families", default="", help="comma-separated: only these held-out families")
    ap.add_argument("--phase", action="store_true", help="add the four phase-derivative channels")
    ap.add_argument("--frame", type=int, default=FRAME, help="analysis window in samples at 8 kHz")
    ap.add_argument("--nfft", type=int, default=NFFT)
    ap.add_argument("--bands", type=int, default=BANDS, help="equal groups of the nfft/2 bins above DC")
    ap.add_argument("--width", type=int, default=16, help="channels of the first conv block (x2, x3, x4 after)")
    ap.add_argument("--time-mask", type=int, default=0, help="mask one random stretch of up to this many frames")
    args = ap.parse_args()
    torch.set_num_threads(2)
    p = Protocol(args.corpus, rounds=args.rounds, threads=2, train_only=("bass",))
    spec = cached_spectrograms(args.corpus, p.rows, args.phase, args.frame, args.nfft, args.bands)
    if args.cmn:
        spec[:, 0] -= spec[:, 0].mean(axis=2, keepdims=True, dtype=np.float32).astype(np.float16)
    y = p.y
    names = ("gbm", "cnn", "gbm+cnn")
    out: dict[str, dict[str, list[tuple[float, float]]]] = {n: {} for n in names}
    it = p.crossed_iter() if args.cross_folds else ((f, n % len(p.folds), *p.masks(f, n % len(p.folds)))
                                                    for n, f in enumerate(p.families))
    for i, (fam, k, test, fit, cal_bona) in enumerate(it):
        if args.limit and i >= args.limit:
            break
        if args.families and fam not in args.families.split(","):
            continue
        t0 = time.time()
        w = balanced_weights([p.rows[j] for j in np.flatnonzero(fit)])
        b = p.gbm(fit)
        sample = spec[np.random.default_rng(0).choice(np.flatnonzero(fit), 4000, replace=False)].astype(np.float32)
        mu = sample.mean(axis=(0, 3))[None, :, :, None]
        sd = sample.std(axis=(0, 3))[None, :, :, None] + 1e-3
        f = train_cnn(spec, fit, y, w, mu, sd, args.seed, args.epochs, args.per_epoch, args.width, args.time_mask)
        raw = {"gbm": (b.predict(p.x[test], raw_score=True), b.predict(p.x[cal_bona], raw_score=True)),
               "cnn": (f(test), f(cal_bona))}
        z = {n: (s - c.mean()) / (c.std() + 1e-9) for n, (s, c) in raw.items()}
        z["gbm+cnn"] = (z["gbm"] + z["cnn"]) / 2
        for n in names:
            out[n].setdefault(fam, []).append(tuple(100 * e for e in p.eers(test, z[n])))
        print(f"{fam} fold {k + 1}: " + ", ".join(f"{n} {out[n][fam][-1][0]:.1f}" for n in names)
              + f" ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    print(json.dumps({n: summarise_folds(fams) for n, fams in out.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
