"""`callguard retrain`: a challenger GBM from the corpus + reviewed live-call chunks; promoted only if it
earns it (see ``detector.retrain``)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from detector.scoring import DEFAULT_MODELS_DIR


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from detector.retrain import RetrainSettings

    d = RetrainSettings()
    p = subparsers.add_parser(
        "retrain", help="train a challenger GBM with reviewed live-call chunks; promote it only if it is better",
        description="Adds the reviewed items of the review store (bona fide -> bonafide, synthetic/replay -> spoof, "
                    "unsure dropped) to the corpus train split, holds out a fixed share of the reviewed calls, "
                    "continues training the champion GBM, recalibrates on dev and promotes the challenger only if "
                    "it is not worse on the corpus eval split (within the tolerances) and better on the held-out "
                    "reviewed calls. Every decision is appended to <models-dir>/promotions.jsonl; "
                    "`callguard models rollback` undoes a promotion.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--store", type=Path, help="review store directory (default: capture.dir of --config)")
    where.add_argument("--config", help="the service's TOML config (its [capture] dir is the store)")
    p.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="corpus directory (manifest.csv)")
    p.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR, help="champion, versions, promotions log")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="where the reviewed items are exported (default: a temporary directory, removed after)")
    p.add_argument("--rounds", type=int, default=d.rounds, help="at most this many new boosting rounds")
    p.add_argument("--holdout", type=float, default=d.holdout, help="share of reviewed calls held out")
    p.add_argument("--eer-tolerance", type=float, default=d.eer_tolerance,
                   help="largest allowed rise of the eval EER (absolute, 0.005 = 0.5 points)")
    p.add_argument("--far-tolerance", type=float, default=d.far_tolerance,
                   help="largest allowed rise of eval bona fide false alarms at the hang-up threshold")
    p.add_argument("--review-weight", type=float, default=d.review_weight)
    p.add_argument("--from-scratch", action="store_true", help="retrain with the champion's parameters instead "
                   "of continuing its booster")
    p.add_argument("--keep-refused", action="store_true", help="keep a refused challenger in models/versions/")
    p.add_argument("--seed", type=int, default=d.seed)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from detector.retrain import RetrainSettings, retrain
    from detector.versions import VersionError
    from plugin.commands.review import store_dir
    from plugin.review import ReviewStore

    root = store_dir(args)
    if not (root / "review.sqlite").is_file():
        print(f"callguard retrain: no review store in {root}", file=sys.stderr)
        return 2
    settings = RetrainSettings(rounds=args.rounds, holdout=args.holdout, eer_tolerance=args.eer_tolerance,
                               far_tolerance=args.far_tolerance, review_weight=args.review_weight,
                               from_scratch=args.from_scratch, keep_refused=args.keep_refused, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="callguard-retrain-") as tmp:
        work = args.work_dir or Path(tmp)
        with ReviewStore(root) as store:
            _, n = store.export(work / "review")
        if n == 0:
            print("callguard retrain: no labelled items in the review store (label some with `callguard review "
                  "label`)", file=sys.stderr)
            return 2
        try:
            record = retrain(args.corpus, work / "review", args.models_dir, settings)
        except VersionError as exc:
            print(f"callguard retrain: {exc}", file=sys.stderr)
            return 2
    print(json.dumps(record, sort_keys=True))
    return 0
