"""`callguard` console command: a thin dispatcher over sub-command modules.

Each sub-command lives in its own module exposing ``register(subparsers)``; the module's parser sets
``func`` to a callable taking the parsed args and returning an exit status. Modules are imported lazily
by name so that `callguard scan` never imports aiohttp/redis and `callguard serve` never imports
training code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (command name, module that registers it, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("scan", "detector.commands.scan", "score audio files for synthetic or replayed speech"),
    ("corpus", "detector.commands.corpus", "build or report the training/evaluation corpus"),
    ("train", "detector.commands.train", "train a detector (gbm, wavlm, fusion)"),
    ("eval", "detector.commands.evaluate", "evaluate detectors on a corpus split, write a report"),
    ("bench", "bench.cli", "measure per-chunk cost and capacity"),
    ("serve", "plugin.commands.serve", "guard live calls on Asterisk over ARI"),
    ("worker", "plugin.commands.worker", "score chunks from the Redis chunk stream (remote scoring workers)"),
    ("lab", "plugin.commands.lab", "run a private Asterisk + Redis + plugin lab; `lab demo` places real calls"),
    ("review", "plugin.commands.review", "list, label and export chunks captured from live calls"),
    ("retrain", "plugin.commands.retrain", "train a challenger GBM with reviewed chunks; promote it if better"),
    ("models", "detector.commands.models", "list model versions, roll back a promotion"),
]


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callguard", description="Real-time voice-deepfake guard for PBXs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-format", choices=["text", "json"], default=None,
                        help="log lines as text (default) or JSON with call ids (env CALLGUARD_LOG_FORMAT)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        if selected is not None and name == selected:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {name for name, _, _ in COMMANDS}
    selected = next((a for i, a in enumerate(argv)
                     if not a.startswith("-") and (i == 0 or argv[i - 1] != "--log-format")), None)
    parser = build_parser(selected if selected in names else None)
    args = parser.parse_args(argv)
    from plugin.logs import setup

    setup(args.verbose, args.log_format)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
