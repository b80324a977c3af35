"""Train the corpus' neural vocoders on CPU: ``callguard corpus train-vocoders`` (or ``python -m`` this).

Deterministic (seeded data sampling and initialisation, one thread); prints progress; writes
``data/vocoders/<family>.pt`` and ``<family>.json`` (configuration, parameters, steps, training time and
a quality check on held-out dev-split speakers: log-spectral distance and mel-cepstral distortion of
the copy synthesis against the original, next to the same numbers for Griffin-Lim from the same mel).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

DEFAULTS = {
    # steps: optimizer steps; seg: training segment in samples (0.5 s); batch; lr; adv_from: step where the
    # GAN losses start (GAN families only); mel_weight: weight of the log-mel L1 loss next to the STFT loss.
    # wavernn is trained by teacher forcing on the mu-law cross-entropy instead of the spectral losses.
    "hifigan": dict(steps=4000, seg=4000, batch=8, lr=2e-3, adv_from=2000, mel_weight=0.5, config={}),
    "nsf": dict(steps=2500, seg=4000, batch=8, lr=2e-3, adv_from=None, mel_weight=0.0, config={}),
    "mbmelgan": dict(steps=4000, seg=4000, batch=8, lr=2e-3, adv_from=2000, mel_weight=0.5, config={}),
    "wavernn": dict(steps=2000, seg=1600, batch=8, lr=2e-3, adv_from=None, mel_weight=0.0, config={}),
}
AUTOREGRESSIVE = frozenset({"wavernn"})


def loss_name(family: str) -> str:
    return "mu-law cross-entropy" if family in AUTOREGRESSIVE else "multi-resolution STFT"


def _log(msg: str) -> None:
    print(msg, flush=True)


def make_batches(data, f0s, seg: int, batch: int, rng: np.random.Generator):
    """Random aligned segments (multiples of HOP) from the training recordings, weighted by length."""
    from detector.corpus.neural_vocoders.dsp import HOP

    lens = np.array([len(x) for _, x in data], dtype=np.float64)
    p = lens / lens.sum()
    xs, fs = [], []
    nfr = seg // HOP
    for _ in range(batch):
        i = int(rng.choice(len(data), p=p))
        x = data[i][1]
        frames = len(x) // HOP
        if frames <= nfr:
            s = 0
        else:
            s = int(rng.integers(0, frames - nfr))
        xx = np.zeros(seg, np.float32)
        piece = x[s * HOP: s * HOP + seg]
        xx[: len(piece)] = piece
        ff = np.zeros(nfr, np.float32)
        fp = f0s[i][s: s + nfr]
        ff[: len(fp)] = fp
        gain = float(rng.uniform(0.3, 1.0))  # level augmentation
        xs.append(xx * gain)
        fs.append(ff)
    return np.stack(xs), np.stack(fs)


def train(family: str, out_dir: Path, seed: int = 1, steps: int | None = None, max_minutes: float = 14.0,
          data=None, dev=None, seg: int | None = None, batch: int | None = None, config: dict | None = None,
          log_every: int = 50, quality: bool = True, stop_after: int | None = None) -> dict:
    import torch

    from detector.corpus.neural_vocoders.dsp import SR, f0_frames, log_mel
    from detector.corpus.neural_vocoders.models import MultiScaleDiscriminator, build_model, n_params, stft_loss
    from detector.corpus.neural_vocoders.synth import save

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    hp = dict(DEFAULTS[family])
    steps = steps or hp["steps"]
    seg = seg or hp["seg"]
    batch = batch or hp["batch"]
    config = hp["config"] if config is None else config
    t_data = time.time()
    if data is None:
        data = __import__("detector.corpus.neural_vocoders.dsp", fromlist=["x"]).split_audio("train", seed, 150.0)
    f0s = [f0_frames(x, len(x) // 80 + 1) for _, x in data]
    _log(f"[{family}] {len(data)} training recordings, {sum(len(x) for _, x in data) / SR / 60:.1f} min of "
         f"train-split speech from {len({s for s, _ in data})} speakers (loaded in {time.time() - t_data:.0f} s)")
    model = build_model(family, config)
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], betas=(0.8, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    disc = opt_d = None
    adv_from = hp["adv_from"]
    if adv_from is not None and adv_from < steps:
        disc = MultiScaleDiscriminator()
        opt_d = torch.optim.AdamW(disc.parameters(), lr=hp["lr"] / 2, betas=(0.8, 0.99))
    _log(f"[{family}] generator {n_params(model):,} parameters"
         + (f", discriminator {n_params(disc):,} (from step {adv_from})" if disc else "")
         + f"; {steps} steps of {batch} x {seg / SR:.2f} s")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    history = []
    t0 = time.time()
    done = 0
    for step in range(1, steps + 1):
        xb, fb = make_batches(data, f0s, seg, batch, rng)
        x = torch.from_numpy(xb)
        f0 = torch.from_numpy(fb)
        mel = log_mel(x)[:, :, :-1]
        l_adv = torch.zeros(())
        if family in AUTOREGRESSIVE:
            loss = l_main = model.nll(mel, x)
            l_mel = torch.zeros(())
        else:
            y = model(mel, f0, gen)
            l_main = stft_loss(y, x)
            l_mel = torch.nn.functional.l1_loss(log_mel(y), log_mel(x))
            loss = l_main + hp["mel_weight"] * l_mel
        if disc is not None and step >= adv_from:
            # discriminator step (least squares)
            d_real = disc(x)
            d_fake = disc(y.detach())
            l_d = sum(torch.mean((r[0] - 1) ** 2) + torch.mean(f[0] ** 2) for r, f in zip(d_real, d_fake, strict=True))
            opt_d.zero_grad()
            l_d.backward()
            opt_d.step()
            d_fake = disc(y)
            d_real = disc(x)
            l_adv = sum(torch.mean((f[0] - 1) ** 2) for f in d_fake)
            l_fm = sum(torch.nn.functional.l1_loss(ff, rf.detach()) for f, r in zip(d_fake, d_real, strict=True)
                       for ff, rf in zip(f[1], r[1], strict=True))
            loss = loss + 0.1 * l_adv + 0.5 * l_fm
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        done = step
        history.append(l_main.item())
        if step % log_every == 0 or step == 1:
            el = time.time() - t0
            name = "nll" if family in AUTOREGRESSIVE else "stft"
            _log(f"[{family}] step {step}/{steps} {name} {np.mean(history[-log_every:]):.3f} mel {l_mel.item():.3f}"
                 f" adv {l_adv.item():.3f} {el / 60:.1f} min, eta {el / step * (steps - step) / 60:.1f} min")
        if stop_after is not None and step >= stop_after:
            _log(f"[{family}] stopping after step {step} as asked (--stop-after)")
            break
        if (time.time() - t0) / 60 > max_minutes:
            _log(f"[{family}] time cap of {max_minutes} min reached at step {step}: stopping")
            break
    train_s = time.time() - t0
    win = max(1, min(50, done // 4))
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "family": family, "seed": seed, "steps_planned": steps, "steps_done": done, "batch": batch,
        "segment_samples": seg, "sample_rate": SR, "config": config, "generator_params": n_params(model),
        "discriminator_params": n_params(disc) if disc else 0, "adv_from_step": adv_from if disc else None,
        "train_seconds": round(train_s, 1), "train_minutes": round(train_s / 60, 2),
        "train_recordings": len(data), "train_minutes_of_audio": round(sum(len(x) for _, x in data) / SR / 60, 2),
        "train_speakers": sorted({s for s, _ in data}),
        "loss": loss_name(family), "loss_first": float(np.mean(history[:win])),
        "loss_last": float(np.mean(history[-win:])), "loss_window_steps": win,
        "torch": torch.__version__,
        # the kernels' instruction set changes the weights (see detector.torch_cpu); recorded for provenance
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    model.eval()
    if quality:
        if dev is None:
            dev = __import__("detector.corpus.neural_vocoders.dsp", fromlist=["x"]).split_audio("dev", seed, 20.0)
        record["quality"] = quality_check(model, dev, seed)
        _log(f"[{family}] quality on {record['quality']['dev_seconds']:.0f} s of dev speech: " +
             json.dumps(record["quality"]))
    path = out_dir / f"{family}.pt"
    save(model, family, config, path, {"steps_done": done})
    (out_dir / f"{family}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    _log(f"[{family}] wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {family}.json in "
         f"{train_s / 60:.1f} min of training")
    return record


def griffin_lim_from_mel(x: np.ndarray, iters: int = 32, seed: int = 0) -> np.ndarray:
    """Baseline: the same 40-band log-mel inverted by pseudo-inverse + Griffin-Lim (momentum 0.99)."""
    import torch

    from detector.corpus.neural_vocoders.dsp import HOP, N_FFT, log_mel, mel_filterbank

    xt = torch.from_numpy(x)[None]
    mel = torch.exp(log_mel(xt))[0].numpy()
    fb = mel_filterbank()
    mag = np.maximum(np.linalg.pinv(fb) @ mel, 0).astype(np.float32)
    mag_t = torch.from_numpy(mag)
    win = torch.hann_window(N_FFT)
    g = torch.Generator().manual_seed(seed)
    ang = torch.exp(2j * np.pi * torch.rand(mag.shape, generator=g))
    prev = torch.zeros_like(ang)
    for _ in range(iters):
        y = torch.istft(mag_t * ang, N_FFT, HOP, N_FFT, win, center=True, length=len(x))
        z = torch.stft(y, N_FFT, HOP, N_FFT, win, center=True, return_complex=True)
        acc = z - 0.99 / 1.99 * prev
        ang = torch.exp(1j * torch.angle(acc))
        prev = z
    return torch.istft(mag_t * ang, N_FFT, HOP, N_FFT, win, center=True, length=len(x)).numpy()


def mel_cepstra(power: np.ndarray, order: int = 24, alpha: float = 0.31) -> np.ndarray | None:
    """Mel-cepstra (SPTK sp2mc, natural-log units, alpha 0.31 for 8 kHz) of [frames, bins] power spectra."""
    try:
        from detector.corpus.generators._util import import_with_shim

        pysptk = import_with_shim("pysptk")
    except ImportError:
        return None
    return np.stack([pysptk.sp2mc(np.maximum(p, 1e-10).astype(np.float64), order, alpha) for p in power])


def distances(ref: np.ndarray, y: np.ndarray) -> tuple[float, float | None, float]:
    """(log-spectral distance dB, mel-cepstral distortion dB, mean absolute log-mel difference dB) over
    the frames within 40 dB of the loudest. MCD is the usual 10/ln10 * sqrt(2 * sum (dc_k)^2), k = 1..24,
    on SPTK mel-cepstra of the 256-point power spectra (None without pysptk)."""
    import torch

    from detector.corpus.neural_vocoders.dsp import log_mel_from_mag, magnitude

    n = min(len(ref), len(y))
    a = magnitude(torch.from_numpy(ref[:n])[None])[0]
    b = magnitude(torch.from_numpy(np.ascontiguousarray(y[:n], dtype=np.float32))[None])[0]
    e = 10 * torch.log10((a ** 2).sum(0) + 1e-10)
    keep = e > e.max() - 40
    la = 10 * torch.log10(a[:, keep] ** 2 + 1e-8)
    lb = 10 * torch.log10(b[:, keep] ** 2 + 1e-8)
    lsd = torch.sqrt(((la - lb) ** 2).mean(0)).mean().item()
    ma = log_mel_from_mag(a[:, keep]).numpy()
    mb = log_mel_from_mag(b[:, keep]).numpy()
    mel_db = float(np.mean(np.abs(ma - mb)) * 20 / np.log(10))
    ca = mel_cepstra((a[:, keep] ** 2).T.numpy())
    cb = mel_cepstra((b[:, keep] ** 2).T.numpy())
    mcd = None
    if ca is not None and cb is not None:
        mcd = float(np.mean(10 / np.log(10) * np.sqrt(2 * ((ca[:, 1:] - cb[:, 1:]) ** 2).sum(1))))
    return float(lsd), mcd, mel_db


def quality_check(model, dev, seed: int) -> dict:
    from detector.corpus.neural_vocoders.synth import vocode

    res = {f"{n}_{m}": [] for n in ("vocoder", "griffinlim") for m in ("lsd_db", "mcd_db", "logmel_mae_db")}
    secs = 0.0
    for i, (_, x) in enumerate(dev):
        x = x[: 8000 * 6]
        y = vocode(model, x, seed + i)
        g = griffin_lim_from_mel(x[: len(y)], seed=seed + i)
        for name, z in (("vocoder", y), ("griffinlim", g)):
            lsd, mcd, mel_db = distances(x[: len(y)], z)
            res[f"{name}_lsd_db"].append(lsd)
            res[f"{name}_mcd_db"].append(mcd)
            res[f"{name}_logmel_mae_db"].append(mel_db)
        secs += len(y) / 8000
    out = {k: (round(float(np.mean(v)), 3) if None not in v else None) for k, v in res.items()}
    out["dev_recordings"] = len(dev)
    out["dev_seconds"] = round(secs, 1)
    out["dev_speakers"] = sorted({s for s, _ in dev})
    out["note"] = ("lower is better; same 40-band log-mel input for both; Griffin-Lim: pseudo-inverse mel, "
                   "32 iterations with momentum")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="callguard corpus train-vocoders", description=__doc__)
    add_arguments(p)
    return run(p.parse_args(argv))


def add_arguments(p: argparse.ArgumentParser) -> None:
    from detector.corpus.neural_vocoders import FAMILIES, vocoders_dir

    p.add_argument("--family", choices=[*FAMILIES, "all"], default="all")
    p.add_argument("--out", default=None, help=f"weights folder (default {vocoders_dir()})")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: per family, see train.py)")
    p.add_argument("--max-minutes", type=float, default=14.0, help="stop a family's training after this long")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="stop after N steps of a --steps schedule (reproduces a run the time cap cut short; "
                        "see steps_planned/steps_done in <family>.json)")
    p.add_argument("--quality-only", action="store_true",
                   help="do not train: re-run the quality check of the saved weights and update <family>.json")


def run(args: argparse.Namespace) -> int:
    from detector.corpus.neural_vocoders import FAMILIES, vocoders_dir

    try:
        import torch  # noqa: F401
    except ImportError:
        print("train-vocoders needs torch: .venv/bin/pip install torch", file=sys.stderr)
        return 1
    fams = FAMILIES if args.family == "all" else (args.family,)
    out = Path(args.out) if args.out else vocoders_dir()
    for fam in fams:
        if args.quality_only:
            requality(fam, out, args.seed)
        else:
            train(fam, out, seed=args.seed, steps=args.steps, max_minutes=args.max_minutes,
                  stop_after=args.stop_after)
    return 0


def requality(family: str, out: Path, seed: int = 1) -> dict:
    from detector.corpus.neural_vocoders.dsp import split_audio
    from detector.corpus.neural_vocoders.synth import load

    model, _ = load(family, out / f"{family}.pt")
    q = quality_check(model, split_audio("dev", seed, 20.0), seed)
    path = out / f"{family}.json"
    record = json.loads(path.read_text()) if path.is_file() else {"family": family}
    record["quality"] = q
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    _log(f"[{family}] quality on {q['dev_seconds']:.0f} s of dev speech: " + json.dumps(q))
    return record


if __name__ == "__main__":
    sys.exit(main())
