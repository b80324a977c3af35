"""`callguard review list|show|label|export`: the administrator's side of the review store (issue #9)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("review", help="list, label and export chunks captured from live calls",
                              description="Captured chunks of live calls (see [capture] in the config) wait here "
                                          "for a label: bona fide, synthetic, replay or unsure. Labels keep who "
                                          "and when; relabelling keeps the history.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--store", type=Path, help="review store directory (default: capture.dir of --config)")
    where.add_argument("--config", help="the service's TOML config (its [capture] dir is the store)")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="captured items, unlabelled first, newest first")
    state = ls.add_mutually_exclusive_group()
    state.add_argument("--unlabelled", action="store_true", help="only items without a label")
    state.add_argument("--labelled", action="store_true", help="only labelled items")
    state.add_argument("--label", help="only items with this label")
    ls.add_argument("--verdict", choices=("bonafide", "suspicious", "spoof"))
    ls.add_argument("--call", help="only this call id")
    ls.add_argument("--policy")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=_list)

    sh = sub.add_parser("show", help="one item with its label history and audio file")
    sh.add_argument("item", type=int)
    sh.add_argument("--wav", type=Path, help="also copy its audio to this file (to listen to it)")
    sh.set_defaults(func=_show)

    lb = sub.add_parser("label", help="label items: bonafide (or 'bona fide'), synthetic, replay, unsure")
    lb.add_argument("items", type=int, nargs="+", metavar="ITEM")
    lb.add_argument("label")
    lb.add_argument("--reviewer", default=None,
                    help="who labels (default: $CALLGUARD_REVIEWER, else the login name)")
    lb.add_argument("--note", default="")
    lb.set_defaults(func=_label)

    ex = sub.add_parser("export", help="write labelled items (not unsure) as a corpus-like manifest + WAVs")
    ex.add_argument("out", type=Path)
    ex.set_defaults(func=_export)


def store_dir(args: argparse.Namespace) -> Path:
    """--store, else [capture] dir of --config, else the default capture dir."""
    if getattr(args, "store", None):
        return Path(args.store)
    if getattr(args, "config", None):
        from plugin.config import ConfigError, load_config

        try:
            cfg = load_config(args.config, check_port=False)
        except ConfigError as exc:
            raise SystemExit(f"callguard: config error: {exc} (or give --store DIR)") from None
        return Path(cfg.capture.dir)
    from plugin.review import CaptureConfig

    return Path(CaptureConfig().dir)


def _open(args: argparse.Namespace):  # noqa: ANN202
    from plugin.review import ReviewStore

    root = store_dir(args)
    if not (root / "review.sqlite").is_file():
        raise SystemExit(f"callguard review: no review store in {root} (enable [capture] in the config, or "
                         "give --store DIR)")
    return ReviewStore(root)


def _when(ts: float | None) -> str:
    return "" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _list(args: argparse.Namespace) -> int:
    from plugin.review import ReviewError

    labelled = True if args.labelled else False if args.unlabelled else None
    with _open(args) as store:
        try:
            items = store.items(labelled=labelled, label=args.label, verdict=args.verdict, call_id=args.call,
                                policy=args.policy, limit=args.limit)
        except ReviewError as exc:
            print(f"callguard review: {exc}", file=sys.stderr)
            return 2
        counts = store.counts()
    if args.json:
        for it in items:
            print(json.dumps(it, sort_keys=True))
        return 0
    print(f"{'id':>6}  {'captured (UTC)':19}  {'call':22} {'leg':6} {'chunk':>5} {'score':>6} {'verdict':10} "
          f"{'reason':10} {'label':10} by")
    for it in items:
        score = "" if it["score"] is None else f"{it['score']:.3f}"
        print(f"{it['id']:>6}  {_when(it['created_at']):19}  {it['call_id'][:22]:22} {it['leg'] or '':6} "
              f"{it['chunk_index'] if it['chunk_index'] is not None else '':>5} {score:>6} {it['verdict'] or '':10} "
              f"{it['reason'] or '':10} {it['label'] or '-':10} {it['labelled_by'] or ''}")
    print(f"{len(items)} shown; store: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    import shutil

    with _open(args) as store:
        item = store.get(args.item)
    if item is None:
        print(f"callguard review: no item {args.item}", file=sys.stderr)
        return 1
    item["created"] = _when(item["created_at"])
    for h in item["history"]:
        h["when"] = _when(h["at"])
    if args.wav:
        shutil.copyfile(item["audio_path"], args.wav)
        item["copied_to"] = str(args.wav)
    print(json.dumps(item, indent=1, sort_keys=True))
    return 0


def _label(args: argparse.Namespace) -> int:
    from plugin.review import ReviewError, normalise_label

    reviewer = args.reviewer or os.environ.get("CALLGUARD_REVIEWER") or getpass.getuser()
    try:
        label = normalise_label(args.label)
    except ReviewError as exc:
        print(f"callguard review: {exc}", file=sys.stderr)
        return 2
    status = 0
    with _open(args) as store:
        for item_id in args.items:
            try:
                item = store.label(item_id, label, reviewer, note=args.note)
            except ReviewError as exc:
                print(f"callguard review: {exc}", file=sys.stderr)
                status = 1
                continue
            print(f"item {item_id}: {item['label']} (by {item['labelled_by']}; "
                  f"{len(item['history'])} label(s) in its history)")
    return status


def _export(args: argparse.Namespace) -> int:
    with _open(args) as store:
        manifest, n = store.export(args.out)
    print(f"exported {n} labelled item(s) to {manifest}")
    return 0
