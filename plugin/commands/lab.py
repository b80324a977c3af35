"""`callguard lab start|stop|demo`: a private Asterisk + Redis + callguard on loopback.

``start`` generates a config dir (templates in ``dialplan/lab/``), starts Asterisk, redis-server and
``callguard serve`` in the background; ``stop`` ends exactly those processes. ``demo`` starts the lab,
places real SIP calls with sipp (one recorded human voice, one espeak-ng synthetic voice, generated into
the run dir), prints the verdict bus live, shows a per-call result table and stops everything, also on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("lab", help="run a private Asterisk + Redis + plugin lab; `lab demo` places real calls",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("start", "stop", "demo"))
    p.add_argument("--dir", default=".lab", help="run directory (default: .lab)")
    p.add_argument("--format", default="ulaw", choices=("ulaw", "slin16"), help="tap audio format")
    p.add_argument("--detector", default="gbm", help="detector name (gbm, wavlm, fused)")
    p.add_argument("--models-dir", default="", help="models directory (default: the repository's models/)")
    p.add_argument("--loader", default="", help=argparse.SUPPRESS)  # tests: a stand-in detector
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plugin.lab import LabError

    root = Path(args.dir).resolve()
    try:
        if args.action == "stop":
            return _stop(root)
        if args.action == "start":
            lab = _start(root, args)
            print(f"lab running in {root}\n  ARI   {lab.ari_url} (user {lab.ari_user}; password in {lab.state_file})\n"
                  f"  Redis {lab.redis_url} (channel callguard:verdicts)\n  SIP   udp 127.0.0.1:{lab.ports.sip}"
                  f" (ext 100: callguard bridges, ext 200: Dial() way)\n  logs  {lab.log_dir}\n"
                  f"stop with: callguard lab stop --dir {args.dir}")
            return 0
        return _demo(root, args)
    except LabError as exc:
        print(f"callguard lab: {exc}", file=sys.stderr)
        with contextlib.suppress(Exception):
            _stop(root, quiet=True)
        return 1


def _start(root: Path, args: argparse.Namespace) -> Any:
    from plugin.lab import Lab, start_plugin

    if (root / "lab.json").exists():
        _stop(root, quiet=True)
    if root.exists():
        shutil.rmtree(root)
    lab = Lab(root=root)
    lab.write(media_format=args.format, detector=args.detector, models_dir=args.models_dir, loader=args.loader)
    lab.start_redis()
    lab.start_asterisk()
    start_plugin(lab)
    return lab


def _stop(root: Path, quiet: bool = False) -> int:
    from plugin.lab import Lab, stop_plugin

    if not (root / "lab.json").exists():
        if not quiet:
            print(f"no lab in {root}")
        return 0
    lab = Lab.load(root)
    stop_plugin(lab)
    lab.stop_asterisk()
    lab.stop_redis()
    if not quiet:
        print(f"lab in {root} stopped")
    return 0


def _fmt(msg: dict[str, Any]) -> str:
    who = msg.get("caller_name") or msg.get("call_id")
    if msg["type"] == "chunk":
        score = "error" if msg.get("score") is None else f"{msg['score']:.3f}"
        return (f"  {who:<10} {msg['leg']:<6} chunk {msg['chunk_index']:>2} @ {msg['chunk_start_s']:6.2f}s  "
                f"score {score:>6}  evidence {msg.get('evidence') or 0:.3f}  -> {msg['verdict']}")
    if msg["type"] == "verdict":
        return (f"* {who:<10} {msg['leg']:<6} VERDICT {msg.get('previous_verdict')} -> {msg['verdict'].upper()}"
                f"  (evidence {msg['score']:.3f}; policy {msg['policy']} allows {', '.join(msg['actions'])})")
    s = msg["summary"]
    return (f"= {who:<10} {msg['leg']:<6} SUMMARY final {s['final_verdict']}, {s['scored']} chunks, max "
            f"{s['max_score'] if s['max_score'] is None else round(s['max_score'], 3)}, ended by {s['ended_by']}")


async def _watch(lab: Any, stop: asyncio.Event, out: list[dict[str, Any]]) -> None:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(lab.redis_url, password=lab.redis_password, decode_responses=True)
    async with r.pubsub() as ps:
        await ps.subscribe("callguard:verdicts")
        while not stop.is_set():
            raw = await ps.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if raw and raw.get("type") == "message":
                msg = json.loads(raw["data"])
                out.append(msg)
                print(_fmt(msg), flush=True)
    await r.aclose()


def _demo(root: Path, args: argparse.Namespace) -> int:
    from plugin.lab import audio_seconds, make_bonafide, make_synthetic, stop_plugin

    t0 = time.monotonic()
    print("starting a private Asterisk, Redis and callguard ...", flush=True)
    lab = _start(root, args)
    calls: list[tuple[str, str, Any]] = []
    try:
        print(f"  up in {time.monotonic() - t0:.1f} s ({lab.ari_url}); generating test speech ...", flush=True)
        bona = make_bonafide(root / "media" / "bonafide.ulaw", seconds=14)
        synth = make_synthetic(root / "media" / "synthetic.ulaw")
        plan = [("bonafide", "100", bona), ("synthetic", "200", synth)]
        messages: list[dict[str, Any]] = []

        async def main() -> None:
            stop = asyncio.Event()
            watcher = asyncio.create_task(_watch(lab, stop, messages))
            await asyncio.sleep(0.3)
            for i, (label, exten, audio) in enumerate(plan):
                print(f"calling ext {exten} as '{label}' playing {audio.name} ({audio_seconds(audio):.1f} s)")
                calls.append((label, exten, lab.sipp_call(exten, audio, duration_s=audio_seconds(audio) + 0.5,
                                                          index=i, caller_name=label)))
            while any(c.proc.poll() is None for _, _, c in calls):
                await asyncio.sleep(0.2)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and sum(m["type"] == "summary" for m in messages) < len(calls):
                await asyncio.sleep(0.2)
            stop.set()
            await watcher

        asyncio.run(main())
        print("\nresult")
        for label, exten, call in calls:
            summ = next((m for m in messages if m["type"] == "summary" and m.get("caller_name") == label), None)
            s = summ["summary"] if summ else {}
            mx = s.get("max_score")
            print(f"  {label:<10} ext {exten}: final verdict {s.get('final_verdict', '?'):<10} "
                  f"max score {'-' if mx is None else f'{mx:.3f}'}  "
                  f"hung up by callguard: {'yes' if call.hung_up_by_pbx else 'no'}  "
                  f"tap set-up {s.get('tap_setup_s')} s, first verdict {s.get('speech_onset_to_first_verdict_s')} s"
                  " after speech onset")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the lab", file=sys.stderr)
        return 130
    finally:
        for _, _, call in calls:
            call.stop()
        stop_plugin(lab)
        lab.stop_asterisk()
        lab.stop_redis()
        print(f"lab stopped (logs kept in {lab.log_dir})")
