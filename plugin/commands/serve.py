"""`callguard serve --config FILE`: guard live calls on Asterisk over ARI."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("serve", help="guard live calls on Asterisk over ARI",
                              description="Guard live calls: tap legs over ARI, score speech, publish verdicts "
                                          "to Redis and react (annotate, warn, hang up) as the policy says. "
                                          "Secrets may come from CALLGUARD_ARI_PASSWORD / "
                                          "CALLGUARD_REDIS_PASSWORD.")
    p.add_argument("--config", required=True, help="TOML configuration file")
    p.add_argument("--check", action="store_true", help="validate the configuration and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plugin.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"callguard: config error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"config OK: {config.ari!r} {config.redis!r}")
        return 0
    from plugin.service import run_forever

    try:
        asyncio.run(run_forever(config))
    except Exception as exc:  # start-up failures (detector missing, ARI refused) as one line
        log.debug("serve failed", exc_info=True)
        print(f"callguard: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
