"""Bispectral statistics of the LPC residual instead of (or beside) the signal's: a model-selection experiment.

A fixed minimum-phase filter (microphone, codec, the line) adds arg H(f1) + arg H(f2) - arg H(f1 + f2) to the
bispectrum's phase, and the vocal tract does the same, so the signal's bispectral phase mixes speaker and
channel with the excitation's quadratic phase coupling. Inverse-filtering with a short-term LPC fit (order 12,
per 2-s chunk) first whitens both away. Crossed protocol over train+dev only (eval unread), 200 rounds.

    .venv/bin/python docs/experiments/residual_bispec_lofo.py --corpus data/corpus_v8 [--variants ...]

Variants: ``base`` (shipped features), ``replace`` (bispec group computed on the residual), ``both`` (the
residual's bispec columns appended). Results: docs/generalisation.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lofo_variants import cached_columns, run_variants  # noqa: E402

from detector.features import _bispectral, feature_group, feature_names  # noqa: E402
from detector.polarity import lpc_inverse_filtered  # noqa: E402

ORDER = 12


def lpc_residual(chunk: np.ndarray) -> np.ndarray:
    """Unit-RMS LPC residual of the unit-RMS chunk (the fit of the shipped ``lpc`` features)."""
    x = np.asarray(chunk, dtype=np.float64)
    x = x - x.mean()
    res = lpc_inverse_filtered(x / (np.sqrt((x ** 2).mean()) + 1e-10), ORDER)
    return res / (np.sqrt((res ** 2).mean()) + 1e-10)


def residual_bispec(chunks: np.ndarray) -> np.ndarray:
    return np.array([list(_bispectral(lpc_residual(c)).values()) for c in chunks], dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v8"))
    ap.add_argument("--variants", nargs="+", default=["base", "replace", "both"])
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    from detector.corpus.manifest import load_manifest

    rows = [r for r in load_manifest(args.corpus) if r["split"] in ("train", "dev")]

    def extra(corpus_dir: Path, rows_: list[dict]) -> np.ndarray:
        x = cached_columns(corpus_dir, rows_, "residual_bispec", lambda: residual_bispec)
        return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    extra(args.corpus, rows)  # fill the cache once, with progress
    not_bispec = np.array([feature_group(n) != "bispec" for n in feature_names()])
    variants = {
        "base": {"train_only_groups": ("bass",)},
        "replace": {"train_only_groups": ("bass",), "feature_mask": not_bispec, "extra_features": extra},
        "both": {"train_only_groups": ("bass",), "extra_features": extra},
    }
    run_variants(args.corpus, variants, args.variants, args.rounds, cross_folds=True)


if __name__ == "__main__":
    main()
