"""Model-selection experiment: does a speech encoder pretrained on thousands of real speakers help the GBM
generalise to unseen generator families and speakers?

The encoder is Resemblyzer's GE2E voice encoder (3-layer LSTM, 256 units, trained on LibriSpeech and
VoxCeleb; Apache-2.0), whose weights ship inside its PyPI wheel, so nothing is downloaded at run time.
It is an experiment only: neither the package nor librosa is a project dependency.

    .venv/bin/pip install --no-deps resemblyzer && .venv/bin/pip install librosa
    .venv/bin/python docs/experiments/speaker_encoder_lofo.py [--corpus data/corpus_v6] [--rounds 200]

Per 2-s chunk (8 kHz, resampled to 16 kHz, RMS-normalised to -30 dBFS as Resemblyzer does): the
L2-normalised embedding (256) and the time-mean of the last LSTM layer's outputs (256). The protocol is
``detector.lofo.run_lofo`` over train+dev only (eval is never read), with the same folds:
handcrafted features alone, handcrafted + encoder, encoder alone; ``--late``: the two GBMs fused by score.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from detector.corpus.manifest import load_chunks  # noqa: E402
from detector.lofo import run_lofo  # noqa: E402


def encoder():
    import resemblyzer
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            out, (hidden, _) = self.lstm(mels)
            e = torch.relu(self.linear(hidden[-1]))
            e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-9)
            return torch.cat([e, out.mean(dim=1)], dim=1)

    m = Encoder()
    state = torch.load(Path(resemblyzer.__file__).parent / "pretrained.pt", map_location="cpu")["model_state"]
    m.load_state_dict({k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))})
    return m.eval()


def mels(chunks: np.ndarray) -> np.ndarray:
    import librosa
    from scipy.signal import resample_poly

    x = resample_poly(chunks.astype(np.float64), 2, 1, axis=1)
    rms = np.sqrt(np.mean(x ** 2, axis=1, keepdims=True)).clip(1e-9)
    x = x * (10 ** (-30 / 20) / rms)
    m = librosa.feature.melspectrogram(y=x.astype(np.float32), sr=16000, n_fft=400, hop_length=160, n_mels=40)
    return np.transpose(m, (0, 2, 1)).astype(np.float32)


def encoder_features(corpus_dir: Path, rows: list[dict], batch: int = 256) -> np.ndarray:
    """Cached per corpus: features/speaker_encoder_<rows-hash>.npy."""
    import hashlib

    import torch

    key = hashlib.sha256("\n".join(r["path"] for r in rows).encode()).hexdigest()[:16]
    path = Path(corpus_dir) / "features" / f"speaker_encoder_{key}.npy"
    if path.exists():
        return np.load(path)
    torch.set_num_threads(2)
    model, out = encoder(), []
    with torch.inference_mode():
        for i in range(0, len(rows), batch):
            out.append(model(torch.from_numpy(mels(load_chunks(corpus_dir, rows[i:i + batch])))).numpy())
            print(f"encoder: {min(i + batch, len(rows))}/{len(rows)} chunks", file=sys.stderr, flush=True)
    x = np.concatenate(out).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v6"))
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--cross-folds", action="store_true", help="every family against every speaker fold")
    ap.add_argument("--variants", default="handcrafted,handcrafted+encoder,encoder", help="comma-separated")
    ap.add_argument("--late", action="store_true", help="score-level fusion of two GBMs instead (late_fusion)")
    args = ap.parse_args()
    if args.late:
        print(json.dumps(late_fusion(args.corpus, args.rounds), indent=1))
        return 0
    from detector.features import feature_names

    none = np.zeros(len(feature_names()), dtype=bool)
    variants = {"handcrafted": {}, "handcrafted+encoder": {"extra_features": encoder_features},
                "encoder": {"extra_features": encoder_features, "feature_mask": none}}
    results = {}
    for name in args.variants.split(","):
        s = run_lofo(args.corpus, None, rounds=args.rounds, splits=("train", "dev"),
                     params={"num_threads": 2}, cross_folds=args.cross_folds, **variants[name])
        results[name] = {"worst": s["worst_eer"], "mean": s["mean_eer"], "worst_rec": s["worst_eer_recording"],
                         "mean_rec": s["mean_eer_recording"],
                         "families": {f["family"]: round(100 * f["eer"], 2) for f in s["families"]}}
        print(name, json.dumps(results[name]), flush=True)
    print(json.dumps(results, indent=1))
    return 0



def late_fusion(corpus_dir: Path, rounds: int = 200) -> dict:
    """Score-level fusion: per fold, one GBM on the handcrafted features and one on the encoder alone, their
    logits averaged after z-scoring each on the fold's calibration bona fide rows (train+dev only)."""
    import lightgbm as lgb

    from detector.corpus.manifest import load_manifest
    from detector.featcache import corpus_features
    from detector.lofo import speaker_folds
    from detector.metrics import eer
    from detector.train_gbm import DEFAULT_PARAMS, balanced_weights, speaker_group

    rows = [r for r in load_manifest(corpus_dir) if r["split"] in ("train", "dev")]
    views = {"handcrafted": corpus_features(corpus_dir, rows), "encoder": encoder_features(corpus_dir, rows)}
    y = np.array([r["label"] != "bonafide" for r in rows], dtype=np.int32)
    family = np.array([r["generator"] if r["label"] != "bonafide" else "" for r in rows])
    speaker = np.array([speaker_group(r) for r in rows])
    split = np.array([r["split"] for r in rows])
    folds = speaker_folds(rows, 4)
    p = dict(DEFAULT_PARAMS, num_threads=2)
    p.pop("metric", None)
    out: dict[str, dict[str, float]] = {"handcrafted": {}, "encoder": {}, "late": {}}
    for n, fam in enumerate(sorted(set(family) - {""})):
        held = folds[n % len(folds)]
        test = ((y == 0) & np.isin(speaker, held)) | (family == fam)
        train = (family != fam) & ~np.isin(speaker, held)
        cal_bona = train & (split == "dev") & (y == 0)
        fit = train & ~(train & (split == "dev"))
        w = balanced_weights([rows[i] for i in np.flatnonzero(fit)])
        z = []
        for name, x in views.items():
            b = lgb.train(p, lgb.Dataset(x[fit], y[fit], weight=w), num_boost_round=rounds)
            s, c = b.predict(x[test], raw_score=True), b.predict(x[cal_bona], raw_score=True)
            out[name][fam] = round(100 * eer(y[test], s)[0], 2)
            z.append((s - c.mean()) / (c.std() + 1e-9))
        out["late"][fam] = round(100 * eer(y[test], np.mean(z, axis=0))[0], 2)
        print(f"late: {fam}: " + ", ".join(f"{k} {v[fam]}" for k, v in out.items()), file=sys.stderr, flush=True)
    return {k: {"worst": max(v.values()), "mean": round(float(np.mean(list(v.values()))), 2), "families": v}
            for k, v in out.items()}


if __name__ == "__main__":
    raise SystemExit(main())
