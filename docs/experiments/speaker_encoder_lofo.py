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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lofo_variants import Protocol, cached_columns, run_variants  # noqa: E402


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


def encoder_features(corpus_dir: Path, rows: list[dict]) -> np.ndarray:
    """Cached per corpus: features/speaker_encoder_<rows-hash>.npy."""
    def make_compute():
        import torch

        torch.set_num_threads(2)
        model = encoder()

        def compute(chunks: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(mels(chunks))).numpy()

        return compute

    return cached_columns(corpus_dir, rows, "speaker_encoder", make_compute)


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
    run_variants(args.corpus, variants, args.variants.split(","), args.rounds, args.cross_folds)
    return 0



def late_fusion(corpus_dir: Path, rounds: int = 200) -> dict:
    """Score-level fusion: per fold, one GBM on the handcrafted features and one on the encoder alone, their
    logits averaged after z-scoring each on the fold's calibration bona fide rows (train+dev only)."""
    from detector.metrics import eer

    p = Protocol(corpus_dir, rounds=rounds, threads=2)
    views = {"handcrafted": p.x, "encoder": encoder_features(corpus_dir, p.rows).astype(np.float64)}
    out: dict[str, dict[str, float]] = {"handcrafted": {}, "encoder": {}, "late": {}}
    for fam, test, fit, cal_bona in p.folds_iter():
        z = []
        for name, x in views.items():
            b = p.gbm(fit, x)
            s, c = b.predict(x[test], raw_score=True), b.predict(x[cal_bona], raw_score=True)
            out[name][fam] = round(100 * eer(p.y[test], s)[0], 2)
            z.append((s - c.mean()) / (c.std() + 1e-9))
        out["late"][fam] = round(100 * eer(p.y[test], np.mean(z, axis=0))[0], 2)
        print(f"late: {fam}: " + ", ".join(f"{k} {v[fam]}" for k, v in out.items()), file=sys.stderr, flush=True)
    return {k: {"worst": max(v.values()), "mean": round(float(np.mean(list(v.values()))), 2), "families": v}
            for k, v in out.items()}


if __name__ == "__main__":
    raise SystemExit(main())
