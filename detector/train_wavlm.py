"""`callguard train wavlm`: the WavLM spoof classifier, trained from scratch (compact config) or fine-tuned
from a local Hugging Face checkpoint, then exported to ONNX and calibrated on dev.

- Sampling: each step draws a batch with probabilities from ``train_gbm.balanced_weights`` (both classes
  weigh the same; inside a class each bona fide speaker / each spoof generator weighs the same).
- Augmentation on the fly, with the same probabilities for both classes so none of it can become a cue:
  random gain, additive noise at a random SNR, a small time shift, lost/repeated 20 ms frames (what the
  media tap does under load) and a G.711 µ-law/A-law re-encode.
- Polarity: with ``upright`` (the default) every chunk the network sees, after augmentation, is turned upright
  (``detector.polarity.upright``), and the exported model's calibration says so, so that the served detector
  does the same; the score then cannot depend on the line's polarity (the shipped GBM's features do the same).
- Model selection and early stopping on dev EER only; the eval split is never read here.
- Checkpoints (model, optimiser, scheduler, step, epoch, RNG states of python/numpy/torch and the
  sampler) are written atomically every ``checkpoint_every`` steps and after each dev evaluation; rerunning
  the same command resumes exactly where the killed run stopped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from detector.audio import g711_decode, g711_encode, to_float, to_int16
from detector.metrics import eer, rates_at
from detector.polarity import upright
from detector.rawboost import rawboost
from detector.train_gbm import balanced_weights, calibrate

FRAME = 160  # 20 ms at 8 kHz
CKPT_FILE = "wavlm.ckpt.pt"
BEST_FILE = "wavlm.best.pt"


@dataclass
class TrainSettings:
    steps: int = 3000
    batch_size: int = 16
    lr: float = 5e-4  # from scratch; fine-tuning (--init) defaults to 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 150
    eval_every: int = 250
    patience: int = 4  # dev evaluations without a better EER before stopping
    checkpoint_every: int = 100
    seed: int = 7
    threads: int = 2
    dev_max: int = 2000  # dev chunks used for model selection (all dev chunks are used for calibration)
    balance_alpha: float = 0.5  # group mass ∝ chunks**alpha inside a class; 0 = balanced_weights exactly
    augment: bool = True
    rawboost_p: float = 0.0  # share of chunks that get a RawBoost perturbation first (detector/rawboost.py)
    upright: bool = True  # train (and serve) on chunks turned upright: scores blind to the line's polarity
    config_overrides: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- augmentation


def augment(batch: np.ndarray, rng: np.random.Generator, rawboost_p: float = 0.0) -> np.ndarray:
    """Telephone-channel perturbations, each applied at random to each chunk of ``[B, N]`` float32 audio;
    with ``rawboost_p > 0`` that share of chunks first gets a RawBoost filter/impulse/coloured-noise pass."""
    out = np.empty_like(batch)
    n = batch.shape[1]
    for i, x in enumerate(batch):
        x = x.astype(np.float32, copy=True)
        if rawboost_p > 0 and rng.random() < rawboost_p:  # no draw at p = 0: older runs resume unchanged
            x = rawboost(x, rng)
        x *= np.float32(10 ** (rng.uniform(-12.0, 6.0) / 20))  # gain: level must not matter
        if rng.random() < 0.4:  # additive noise, white or low-frequency (brown), 5-40 dB SNR
            noise = rng.standard_normal(n).astype(np.float32)
            if rng.random() < 0.5:
                noise = np.cumsum(noise)
                noise -= np.linspace(noise[0], noise[-1], n, dtype=np.float32)
            p_sig = float(np.mean(x ** 2)) + 1e-12
            snr = rng.uniform(5.0, 40.0)
            noise *= np.float32(np.sqrt(p_sig / (10 ** (snr / 10)) / (float(np.mean(noise ** 2)) + 1e-12)))
            x = x + noise
        if rng.random() < 0.5:  # small time shift (up to ±10 ms)
            x = np.roll(x, int(rng.integers(-80, 81)))
        if rng.random() < 0.3:  # 1-3 lost or repeated 20 ms frames, as the tap does under CPU load
            for _ in range(int(rng.integers(1, 4))):
                k = int(rng.integers(1, n // FRAME - 1)) * FRAME
                kind = rng.integers(3)
                if kind == 0:  # lost packet replaced by silence
                    x[k: k + FRAME] = 0.0
                elif kind == 1:  # repeated packet
                    x[k: k + FRAME] = x[k - FRAME: k]
                else:  # lost packet, stream closes up (the chunk is refilled from its start)
                    x = np.concatenate([x[:k], x[k + FRAME:], x[:FRAME]])
        if rng.random() < 0.5:  # one more G.711 pass (level-dependent quantisation)
            law = "ulaw" if rng.random() < 0.5 else "alaw"
            x = to_float(g711_decode(g711_encode(to_int16(x), law), law))
        out[i] = np.clip(x, -1.0, 1.0)
    return out


def upright_batch(batch: np.ndarray) -> np.ndarray:
    """Each chunk of ``[B, N]`` float32 audio turned upright, as the served detector turns its input."""
    return np.stack([upright(x) for x in batch]).astype(np.float32, copy=False) if len(batch) else batch


# ---------------------------------------------------------------- helpers


def _labels(rows: list[dict]) -> np.ndarray:
    return np.array([r["label"] != "bonafide" for r in rows], dtype=np.int32)


def sampling_weights(rows: list[dict], alpha: float = 0.5) -> np.ndarray:
    """Per-row sampling weights: both classes weigh the same; inside a class a bona fide speaker or a spoof
    generator gets mass ∝ (its chunk count) ** ``alpha``.

    ``alpha = 0`` is ``train_gbm.balanced_weights`` (every speaker equal). The corpus has a dozen klettres
    speakers with 10-36 chunks next to voices with ~1000: with exact balance those 2 % of the bona fide chunks
    would take 60 % of the bona fide draws and be seen ~60 times each. ``alpha = 0.5`` still lifts small
    speakers a lot (speaker variety is what generalises) without turning them into memorised samples.
    """
    return balanced_weights(rows, alpha)


def _balanced_logloss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Binary cross-entropy averaged per class, then over the two classes."""
    z = np.asarray(logits, dtype=np.float64)
    per = np.where(labels == 1, np.logaddexp(0.0, -z), np.logaddexp(0.0, z))
    return float(np.mean([per[labels == c].mean() for c in (0, 1) if (labels == c).any()]))


def dev_subset(dev: list[dict], limit: int, seed: int) -> list[dict]:
    """A fixed, class-stratified subset of dev for fast model selection (all of dev if small)."""
    if len(dev) <= limit:
        return dev
    rng = np.random.default_rng(seed)
    idx = []
    labels = _labels(dev)
    for c in (0, 1):
        members = np.flatnonzero(labels == c)
        take = min(len(members), max(limit // 2, limit - int((labels != c).sum())))
        idx += list(rng.choice(members, size=take, replace=False))
    return [dev[i] for i in sorted(idx)]


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state(sampler: np.random.Generator) -> dict:
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "sampler": sampler.bit_generator.state}


def _set_rng_state(state: dict, sampler: np.random.Generator) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # transformers draws its time masks from numpy's global RNG
    torch.set_rng_state(state["torch"])
    sampler.bit_generator.state = state["sampler"]


def run_key(train: list[dict], dev: list[dict], settings: TrainSettings, init: Path | None) -> str:
    """Identifies a run: same data, same settings → resume; anything else → start afresh."""
    s = {k: v for k, v in asdict(settings).items() if k not in ("checkpoint_every",)}
    h = hashlib.sha256(json.dumps([s, str(init) if init else None], sort_keys=True, default=str).encode())
    for r in train + dev:
        h.update(r["path"].encode() + b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------- training


def train_wavlm(corpus_dir: Path, out_dir: Path, run_dir: Path, settings: TrainSettings | None = None,
                init: Path | None = None, on_step: Callable[[int], None] | None = None,
                export: bool = True) -> dict:
    """Train (or resume), select on dev EER, export ``wavlm.onnx`` and write ``wavlm.calibration.json``.

    ``on_step(step)`` is called after each finished step (and its checkpoint); tests raise from it to
    simulate a kill. Returns the calibration dict (plus ``resumed_from_step``).
    """
    import torch
    import transformers

    from detector.corpus.manifest import load_chunks, load_train_dev
    from detector.wavlm_model import build_model, cosine_with_warmup, model_from_meta, torch_logits

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    settings = settings or TrainSettings()
    torch.set_num_threads(settings.threads)
    torch.set_flush_denormal(True)  # denormals made some steps 4x slower on this CPU

    train, dev = load_train_dev(corpus_dir)
    y_train = _labels(train)
    if y_train.min() == y_train.max() or _labels(dev).min() == _labels(dev).max():
        raise SystemExit(f"{corpus_dir}: train and dev both need bona fide and spoof rows")
    weights = sampling_weights(train, settings.balance_alpha)
    probs = weights / weights.sum()
    sel_rows = dev_subset(dev, settings.dev_max, settings.seed)
    x_sel, y_sel = load_chunks(corpus_dir, sel_rows), _labels(sel_rows)
    if settings.upright:
        x_sel = upright_batch(x_sel)

    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, best_path = run_dir / CKPT_FILE, run_dir / BEST_FILE
    key = run_key(train, dev, settings, init)

    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    sampler = np.random.default_rng(settings.seed)
    model = build_model(init, seed=settings.seed, config_overrides=settings.config_overrides or None)
    if init is not None:
        model.backbone.freeze_feature_encoder()  # fine-tuning: keep the pretrained conv front end
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: cosine_with_warmup(s, settings.steps, settings.warmup_steps))
    state: dict[str, Any] = {"step": 0, "best_eer": None, "best_step": 0, "evals_since_best": 0, "history": [],
                             "seconds": 0.0, "stopped_early": False}
    resumed_from = 0
    if ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ck.get("key") == key:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            state = ck["state"]
            _set_rng_state(ck["rng"], sampler)
            resumed_from = state["step"]
            print(f"train wavlm: resuming from {ckpt_path} at step {resumed_from}", file=sys.stderr)
        else:
            print(f"train wavlm: {ckpt_path} belongs to another run (data or settings differ); starting afresh",
                  file=sys.stderr)
    meta = model.meta(str(init) if init else None)

    def save_checkpoint() -> None:
        _atomic_save({"key": key, "model": model.state_dict(), "optimizer": opt.state_dict(),
                      "scheduler": sched.state_dict(), "state": state, "rng": _rng_state(sampler),
                      "epoch": state["step"] * settings.batch_size / len(train), "meta": meta,
                      "settings": asdict(settings)}, ckpt_path)

    def evaluate_dev() -> None:
        logits = torch_logits(model, x_sel)
        e, _ = eer(y_sel, logits)
        loss = _balanced_logloss(y_sel, logits)
        state["history"].append({"step": state["step"], "dev_eer": e, "dev_logloss": loss})
        # dev EER decides; on a tie (e.g. several evaluations at 0 %), the lower class-balanced dev log-loss
        better = state["best_eer"] is None or e < state["best_eer"] - 1e-12 or (
            abs(e - state["best_eer"]) <= 1e-12 and loss < state.get("best_logloss", np.inf))
        if better:
            state.update(best_eer=e, best_logloss=loss, best_step=state["step"], evals_since_best=0)
            _atomic_save({"key": key, "model": model.state_dict(), "meta": meta, "step": state["step"],
                          "dev_eer": e}, best_path)
        else:
            state["evals_since_best"] += 1
        print(f"\ntrain wavlm: step {state['step']} dev EER {e:.2%} (best {state['best_eer']:.2%} at step "
              f"{state['best_step']})", file=sys.stderr, flush=True)

    model.train()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    t_start, seconds_before, ema = time.time(), state["seconds"], state.get("loss_ema")
    while state["step"] < settings.steps and not state["stopped_early"]:
        idx = sampler.choice(len(train), size=settings.batch_size, p=probs)
        batch_rows = [train[i] for i in idx]
        x = load_chunks(corpus_dir, batch_rows)
        if settings.augment:
            x = augment(x, sampler, settings.rawboost_p)
        if settings.upright:
            x = upright_batch(x)
        y = torch.from_numpy(y_train[idx].astype(np.float32))
        loss = loss_fn(model(torch.from_numpy(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        state["step"] += 1
        loss_value = loss.item()
        ema = loss_value if ema is None else 0.98 * ema + 0.02 * loss_value
        state["loss_ema"] = ema
        state["seconds"] = seconds_before + time.time() - t_start
        if state["step"] % 10 == 0:
            rate = (state["step"] - resumed_from) / max(time.time() - t_start, 1e-6)
            print(f"\rtrain wavlm: step {state['step']}/{settings.steps} loss {ema:.4f} "
                  f"lr {sched.get_last_lr()[0]:.2e} ({rate:.2f} steps/s)", end="", file=sys.stderr, flush=True)
        evaluated = state["step"] % settings.eval_every == 0 or state["step"] == settings.steps
        if evaluated:
            evaluate_dev()
            if state["evals_since_best"] >= settings.patience:
                state["stopped_early"] = True
                print(f"train wavlm: no dev improvement in {settings.patience} evaluations; stopping",
                      file=sys.stderr)
        if evaluated or state["step"] % settings.checkpoint_every == 0:
            save_checkpoint()
        if on_step is not None:
            on_step(state["step"])
    print(file=sys.stderr)
    if not best_path.is_file():  # e.g. steps < eval_every and the run ended by a resume at the end
        evaluate_dev()
    best = torch.load(best_path, map_location="cpu", weights_only=False)
    final = model_from_meta(best["meta"])
    final.load_state_dict(best["model"])
    result = {"best_step": int(best["step"]), "selection_dev_eer": float(best["dev_eer"]),
              "history": state["history"], "train_seconds": state["seconds"], "steps_done": state["step"],
              "stopped_early": state["stopped_early"], "resumed_from_step": resumed_from, "model": final}
    if not export:
        return result
    cal = export_and_calibrate(final, best["meta"], corpus_dir, out_dir, train, dev, settings, result)
    cal["resumed_from_step"] = resumed_from
    return cal


def export_and_calibrate(model: Any, meta: dict, corpus_dir: Path, out_dir: Path, train: list[dict],
                         dev: list[dict], settings: TrainSettings, result: dict) -> dict:
    """Export the selected model to ONNX, score all of dev with the ONNX detector, fix thresholds there."""
    import torch

    from detector.corpus.manifest import load_chunks, manifest_sha256
    from detector.wavlm_model import export_onnx, torch_logits
    from detector.wavlm_onnx import AS_RECORDED, CALIBRATION_FILE, MODEL_FILE, UPRIGHT, WavLMDetector

    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / MODEL_FILE
    export_onnx(model, onnx_path)
    det = WavLMDetector.from_file(onnx_path, threads=settings.threads, upright=settings.upright)
    y_dev = _labels(dev)
    logits = []
    for i in range(0, len(dev), 256):
        logits.append(det.logits(list(load_chunks(corpus_dir, dev[i: i + 256]))))
    dev_logits = np.concatenate(logits)
    probe = load_chunks(corpus_dir, dev[: min(len(dev), 32)])
    if settings.upright:
        probe = upright_batch(probe)
    parity = float(np.max(np.abs(torch_logits(model, probe) - dev_logits[: len(probe)])))
    dev_scores = expit(np.asarray(dev_logits, dtype=np.float64))
    th = calibrate(y_dev, dev_scores)
    at = rates_at(y_dev, dev_scores, th["eer"])
    version = dt.datetime.now(dt.UTC).strftime("wavlm-%Y%m%d-%H%M%S")
    cal = {
        "version": version,
        "model": {**{k: v for k, v in meta.items() if k != "config"}, "config": meta["config"],
                  "onnx_bytes": onnx_path.stat().st_size, "input_rate": 8000, "output": "logit",
                  "input_polarity": UPRIGHT if settings.upright else AS_RECORDED},
        "thresholds": {k: th[k] for k in ("eer", "far_1pct", "far_0_1pct")},
        "dev": {"eer": th["dev_eer"], "accuracy_at_eer_threshold": at["accuracy"],
                "n_bonafide": int((y_dev == 0).sum()), "n_spoof": int((y_dev == 1).sum()),
                "selection_subset_eer": result["selection_dev_eer"], "onnx_torch_max_abs_logit_diff": parity},
        "train": {"n_bonafide": int((_labels(train) == 0).sum()), "n_spoof": int((_labels(train) == 1).sum()),
                  "speakers": sorted({r["speaker"] for r in train if r["label"] == "bonafide"}),
                  "generators": sorted({r["generator"] for r in train if r["label"] != "bonafide"})},
        "training": {"best_step": result["best_step"], "steps_done": result["steps_done"],
                     # the kernels' instruction set changes the weights (see detector.torch_cpu)
                     "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                     "stopped_early": result["stopped_early"], "seconds": round(result["train_seconds"], 1),
                     "history": result["history"], "settings": asdict(settings)},
        "corpus_manifest_sha256": manifest_sha256(corpus_dir),
    }
    cal_path = out_dir / CALIBRATION_FILE
    tmp = cal_path.with_name(cal_path.name + ".tmp")
    tmp.write_text(json.dumps(cal, indent=1, default=str))
    tmp.replace(cal_path)
    print(f"train wavlm: best step {result['best_step']}, dev EER {th['dev_eer']:.2%}, thresholds "
          f"eer={th['eer']:.3f} warn={th['far_1pct']:.3f} hangup={th['far_0_1pct']:.3f}; "
          f"ONNX/torch max |Δlogit| {parity:.1e}; saved {onnx_path}", file=sys.stderr)
    return cal
