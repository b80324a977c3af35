"""`callguard corpus build|report|train-vocoders`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_OUT = "data/corpus"
# the shipped corpus (v8) is built without corpus v7's two train-only voice changers and without corpus v11's
# three pretrained neural families: in training, each set made the held-out families worse
# (docs/generalisation.md); `--skip psola,wsola` builds v11
DEFAULT_SKIP = ("psola", "wsola", "kokoro", "hibari", "hifigan16k")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("corpus", help="build or report the training/evaluation corpus")
    sub = p.add_subparsers(dest="corpus_command", metavar="ACTION")
    b = sub.add_parser("build", help="generate spoofs, run everything through a telephone channel, cut chunks")
    b.add_argument("--out", default=DEFAULT_OUT, help=f"corpus directory (default {DEFAULT_OUT})")
    b.add_argument("--size", choices=["small", "full"], default="full",
                   help="small: a few hundred chunks in under 3 minutes (tests); full: the training corpus")
    b.add_argument("--seed", type=int, default=1, help="same seed, same manifest (default 1)")
    b.add_argument("--workers", type=int, default=2, help="worker processes (default 2, the machine has 2 cores)")
    b.add_argument("--skip", default=",".join(DEFAULT_SKIP),
                   help=f"comma-separated generator families to leave out (default {','.join(DEFAULT_SKIP)}: "
                        "corpus v7's voice changers and corpus v11's pretrained neural TTS and vocoder, which made "
                        "the detector worse on held-out families, see docs/generalisation.md; --skip '' builds "
                        "every family)")
    b.add_argument("--packages-dir", default=None,
                   help="folder of unpacked extra packages (default data/packages; env CALLGUARD_PACKAGES_DIR)")
    b.add_argument("--balance-rooms", action="store_true",
                   help="a capture room as common in bona fide speech as in spoofs, half of the rooms from the "
                        "replay families' simulator (an experiment: measured in docs/generalisation.md)")
    b.add_argument("--train-vocoders", action="store_true",
                   help="first train the neural vocoder families whose weights are missing (needs the train "
                        "extra; about 14 minutes each), so that one command builds the whole corpus on a clean "
                        "machine")
    b.set_defaults(func=run_build)
    r = sub.add_parser("report", help="summarise a built corpus")
    r.add_argument("--out", default=DEFAULT_OUT, help=f"corpus directory (default {DEFAULT_OUT})")
    r.add_argument("--audit", type=int, default=0, metavar="N",
                   help="also run the trivial-cue audit on up to N chunks per split (e.g. 2000)")
    r.set_defaults(func=run_report)
    t = sub.add_parser("train-vocoders",
                       help="train the small neural vocoders (hifigan, nsf, mbmelgan, wavernn) used as neural spoof "
                            "families")
    from detector.corpus.neural_vocoders.train import add_arguments

    add_arguments(t)
    t.set_defaults(func=run_train_vocoders)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_build(args: argparse.Namespace) -> int:
    from detector.corpus.build import set_single_thread_env

    set_single_thread_env()
    from detector.corpus.build import build, summary_text

    skip = tuple(s.strip() for s in args.skip.split(",") if s.strip())
    if args.train_vocoders and _train_missing_vocoders(args.seed, skip) != 0:
        return 1
    info = build(Path(args.out), seed=args.seed, size=args.size, workers=args.workers, skip=skip,
                 packages_dir=Path(args.packages_dir) if args.packages_dir else None,
                 balance_rooms=args.balance_rooms)
    print(summary_text(info))
    if info["chunks"] == 0:
        logging.getLogger("callguard.corpus").error("the build produced no chunks")
        return 1
    return 0


def _train_missing_vocoders(seed: int, skip: tuple[str, ...]) -> int:
    from detector.corpus.neural_vocoders import FAMILIES, vocoders_dir, weights_path

    missing = [f for f in FAMILIES if f not in skip and not weights_path(f).is_file()]
    if not missing:
        return 0
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        print("callguard corpus build --train-vocoders needs torch: run ./setup --train", file=sys.stderr)
        return 1
    from detector.corpus.neural_vocoders.train import train

    for fam in missing:
        logging.getLogger("callguard.corpus").info("training the missing neural vocoder %s first", fam)
        train(fam, vocoders_dir(), seed=seed)
    return 0


def run_train_vocoders(args: argparse.Namespace) -> int:
    from detector.corpus.build import set_single_thread_env

    set_single_thread_env()
    from detector.corpus.neural_vocoders.train import run

    return run(args)


def run_report(args: argparse.Namespace) -> int:
    from detector.corpus.report import report

    try:
        print(report(args.out, audit_sample=args.audit))
    except FileNotFoundError as exc:
        print(f"callguard corpus report: {exc}", file=sys.stderr)
        return 1
    return 0
