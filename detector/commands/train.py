"""`callguard train gbm|wavlm|fusion`."""

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
    g.add_argument("--seed", type=int, default=None, help="(first) boosting seed (default 7)")
    g.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="ship the mean of N boosters with boosting seeds --seed, --seed+1, ... (one model file)")
    g.add_argument("--pooled", action="store_true",
                   help="fit on train+dev for exactly --rounds rounds; thresholds from out-of-fold scores")
    g.add_argument("--oof-folds", type=int, default=5, help="folds for the out-of-fold calibration (--pooled)")
    g.add_argument("--mlp", action="store_true",
                   help="also train a small MLP on the same features and ship the blend (needs scikit-learn)")
    g.add_argument("--mlp-seed", type=int, default=0, help="the MLP's initialisation and validation split")
    g.add_argument("--far-per-speaker", action="store_true",
                   help="warn / hang-up thresholds hold the false-alarm rate averaged over calibration speakers "
                        "(each person counts the same) instead of pooled over their chunks")
    g.set_defaults(func=_train_gbm)

    w = kinds.add_parser("wavlm", help="WavLM classifier (needs ./setup --train); exports wavlm.onnx",
                         description="Train from scratch (compact 8 kHz config) or fine-tune a local Hugging Face "
                         "WavLM checkpoint; select on dev EER; export ONNX; calibrate on dev. Rerunning the same "
                         "command after an interruption resumes from the last checkpoint.")
    w.add_argument("--init", type=Path, default=None, help="local HF-format WavLM checkpoint dir to fine-tune")
    w.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="corpus directory (manifest.csv)")
    w.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR, help="where wavlm.onnx + calibration go")
    w.add_argument("--run-dir", type=Path, default=Path("runs/wavlm"), help="checkpoints (resume on rerun)")
    w.add_argument("--steps", type=int, default=3000, help="training steps (batches)")
    w.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    w.add_argument("--eval-every", type=int, default=250, help="steps between dev-EER evaluations")
    w.add_argument("--patience", type=int, default=4, help="dev evaluations without improvement before stopping")
    w.add_argument("--batch-size", type=int, default=16)
    w.add_argument("--lr", type=float, default=None, help="peak learning rate (default 5e-4, 5e-5 with --init)")
    w.add_argument("--threads", type=int, default=2, help="torch threads")
    w.add_argument("--seed", type=int, default=7)
    w.add_argument("--no-augment", action="store_true", help="train without the channel augmentation")
    w.add_argument("--rawboost", type=float, default=0.0, metavar="P",
                   help="share of training chunks that first get a RawBoost perturbation (0 = off)")
    w.add_argument("--as-recorded", action="store_true",
                   help="feed chunks as recorded instead of turned upright (scores then depend on the line's polarity)")
    w.add_argument("--balance-alpha", type=float, default=0.5,
                   help="speaker/generator sampling mass ∝ chunks**alpha (0 = every speaker/generator equal)")
    w.set_defaults(func=_train_wavlm)

    f = kinds.add_parser("fusion", help="fit the GBM+WavLM fusion on the dev split; writes fusion.json")
    f.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="corpus directory (manifest.csv)")
    f.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR, help="holds the GBM and WavLM models")
    f.set_defaults(func=_train_fusion)


def _train_gbm(args: argparse.Namespace) -> int:
    from detector.train_gbm import DEFAULT_SEED, train_gbm

    seed = DEFAULT_SEED if args.seed is None else args.seed
    train_gbm(args.corpus, args.out, args.run_dir, rounds=args.rounds, seed=seed, n_seeds=args.seeds,
              pooled=args.pooled, oof_folds=args.oof_folds, mlp_seed=args.mlp_seed if args.mlp else None,
              far_per_speaker=args.far_per_speaker)
    return 0


def _train_wavlm(args: argparse.Namespace) -> int:
    try:
        from detector.train_wavlm import TrainSettings, train_wavlm
        from detector.wavlm_model import INPUT_RATE  # noqa: F401  (fails early without torch/transformers)
    except ImportError as exc:
        print(f"callguard train wavlm: the training extra is missing ({exc}); run ./setup --train")
        return 2
    if args.init is not None and not (args.init / "config.json").is_file():
        print(f"callguard train wavlm: {args.init} is not a Hugging Face checkpoint directory (no config.json)")
        return 2
    lr = args.lr if args.lr is not None else (5e-5 if args.init else 5e-4)
    settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, lr=lr, eval_every=args.eval_every,
                             patience=args.patience, checkpoint_every=args.checkpoint_every, seed=args.seed,
                             threads=args.threads, augment=not args.no_augment,
                             balance_alpha=args.balance_alpha, rawboost_p=args.rawboost,
                             upright=not args.as_recorded)
    train_wavlm(args.corpus, args.out, args.run_dir, settings, init=args.init)
    return 0


def _train_fusion(args: argparse.Namespace) -> int:
    from detector.fusion import fit_fusion
    from detector.scoring import ModelError

    try:
        fit_fusion(args.corpus, args.models_dir)
    except ModelError as exc:
        print(f"callguard train fusion: {exc}")
        return 2
    return 0
