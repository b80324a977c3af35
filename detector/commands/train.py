"""`callguard train gbm|wavlm`."""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.scoring import DEFAULT_MODELS_DIR


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    g = kinds.add_parser("gbm", help="LightGBM on bispectral + spectral features")
    g.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="corpus directory (manifest.csv)")
    g.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR, help="where the model and calibration go")
    g.add_argument("--run-dir", type=Path, default=Path("runs/gbm"), help="checkpoints (resume on rerun)")
    g.add_argument("--rounds", type=int, default=1500)
    g.add_argument("--seed", type=int, default=7)
    g.set_defaults(func=_train_gbm)


def _train_gbm(args: argparse.Namespace) -> int:
    from detector.train_gbm import train_gbm

    train_gbm(args.corpus, args.out, args.run_dir, rounds=args.rounds, seed=args.seed)
    return 0
