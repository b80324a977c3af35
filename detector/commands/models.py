"""`callguard models list|promote|rollback`: the versioned GBM models (see ``detector.versions``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detector.scoring import DEFAULT_MODELS_DIR


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("models", help="list model versions, promote one by hand, roll back a promotion")
    p.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="versions with their retrain metrics; * marks the installed one")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    pr = sub.add_parser("promote", help="install a stored version by hand (e.g. a challenger `retrain "
                                        "--keep-refused` kept); logged in promotions.jsonl")
    pr.add_argument("version", help="a name from `callguard models list`")
    pr.add_argument("--reason", required=True, help="why the retrain decision is overridden (logged)")
    pr.set_defaults(func=_promote)
    rb = sub.add_parser("rollback", help="reinstall the version that was installed before the current one")
    rb.add_argument("--reason", default="", help="recorded in promotions.jsonl")
    rb.set_defaults(func=_rollback)


def _pct(v: object) -> str:
    return f"{100 * float(v):.2f} %" if isinstance(v, int | float) else "-"


def _list(args: argparse.Namespace) -> int:
    from detector.versions import list_versions

    rows = list_versions(args.models_dir)
    if args.json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        return 0
    if not rows:
        print(f"no versions in {args.models_dir} yet (the first `callguard retrain` snapshots the current model)")
        return 0
    print(f"  {'version':20} {'model':24} {'decision':9} {'eval EER':>9} {'FA@hangup':>10} "
          f"{'held-out err':>12}  parent")
    for r in rows:
        m = r.get("metrics") or {}
        ev = (m.get("eval") or {}).get("challenger") or {}
        ho = (m.get("held_out") or {}).get("challenger") or {}
        print(f"{'*' if r['current'] else ' '} {r['name']:20} {str(r.get('model_version', ''))[:24]:24} "
              f"{r.get('decision', r.get('source', ''))[:9]:9} {_pct(ev.get('eer')):>9} "
              f"{_pct(ev.get('far_hangup')):>10} "
              f"{_pct(ho.get('balanced_error')):>12}  {r.get('parent', '')}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from detector.versions import VersionError, rollback

    try:
        left, restored = rollback(args.models_dir, reason=args.reason)
    except VersionError as exc:
        print(f"callguard models rollback: {exc}", file=sys.stderr)
        return 1
    print(f"rolled back: {left} -> {restored.name} (installed in {args.models_dir}; logged in promotions.jsonl)")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from detector.versions import VersionError, ensure_versioned, log_event, promote

    try:
        before = ensure_versioned(args.models_dir)
    except VersionError as exc:
        print(f"callguard models promote: {exc}", file=sys.stderr)
        return 1
    if before.name == args.version:
        print(f"callguard models promote: {args.version} is already installed", file=sys.stderr)
        return 1
    try:
        installed = promote(args.models_dir, args.version)
    except VersionError as exc:
        print(f"callguard models promote: {exc}", file=sys.stderr)
        return 1
    log_event(args.models_dir, {"event": "manual_promotion", "from": before.name, "to": installed.name,
                                "reason": args.reason})
    print(f"promoted by hand: {before.name} -> {installed.name} (installed in "
          f"{args.models_dir}; logged in promotions.jsonl; `callguard models rollback` undoes it)")
    return 0
