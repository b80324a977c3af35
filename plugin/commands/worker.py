"""`callguard worker --config FILE`: score chunks from the plugin's Redis Stream (``[detector] mode = "redis"``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import sys

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "worker", help="score chunks from the Redis chunk stream (remote scoring workers)",
        description="Consume the chunk stream of [detector] stream through consumer group [detector] group on "
                    "the Redis of [redis], score each chunk with the detector of [detector] and send the result "
                    "back to the plugin that sent it. Run as many as you like, on any machines; a chunk whose "
                    "worker died is claimed by another after [detector] claim_idle_ms. The password may come "
                    "from CALLGUARD_REDIS_PASSWORD.")
    p.add_argument("--config", required=True, help="TOML configuration file (only [redis] and [detector] are read)")
    p.add_argument("--processes", type=int, default=1, help="worker processes to run (one per core)")
    p.add_argument("--consumer", default=None, help="consumer name (default: host-pid-random)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plugin.config import ConfigError
    from plugin.worker import load_worker_config, run_worker

    try:
        cfg = load_worker_config(args.config)
    except ConfigError as exc:
        print(f"callguard: config error: {exc}", file=sys.stderr)
        return 2
    if args.processes > 1:
        return _run_many(args)
    try:
        asyncio.run(run_worker(cfg, consumer=args.consumer))
    except Exception as exc:
        log.debug("worker failed", exc_info=True)
        print(f"callguard: worker: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_many(args: argparse.Namespace) -> int:
    """N single-process workers as children; SIGTERM/SIGINT stops them all."""
    cmd = [sys.executable, "-m", "plugin.cli", "worker", "--config", args.config, "--processes", "1"]
    children = [subprocess.Popen(cmd) for _ in range(args.processes)]

    def stop(signum: int, _frame: object) -> None:
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    codes = [c.wait() for c in children]
    return max(codes, default=0)
