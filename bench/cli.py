"""`callguard bench [load|workers]`: costs per chunk/packet/leg; live-path load; remote worker throughput.

Each prints JSON and a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from detector.threads import limit_native_threads


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure CPU cost per chunk/packet and memory per leg; `bench load`: "
                                     "N concurrent RTP streams through the live path; `bench workers`: remote "
                                     "worker throughput")
    p.add_argument("--chunks", type=int, default=100)
    p.add_argument("--models-dir", type=Path, default=None)
    p.add_argument("--json", action="store_true", help="JSON only")
    p.set_defaults(func=run)
    what = p.add_subparsers(dest="bench_what", metavar="{load,workers,recv,calls}")
    load = what.add_parser("load", help="N concurrent G.711 RTP streams of real speech through the real "
                                        "media/guard/scoring/bus path (the PBX side faked)")
    load.add_argument("--legs", type=int, default=100, help="concurrent streams (guarded legs)")
    load.add_argument("--seconds", type=float, default=30.0, help="how long the streams run")
    load.add_argument("--detector", choices=("gbm", "wavlm", "fused"), default="gbm")
    load.add_argument("--workers", type=int, default=1, help="local scoring processes")
    load.add_argument("--remote-workers", type=int, default=0,
                      help="score in K `callguard worker` processes over Redis Streams ([detector] mode = redis)")
    load.add_argument("--queue-size", type=int, default=None, help="scoring queue bound (default max(16, legs/2))")
    load.add_argument("--find-max", action="store_true",
                      help="step the leg count 25, 50, 100, 150, 200, 250, 300, ... and report the highest sustained")
    load.add_argument("--memory-legs", type=int, default=100, help="legs for the tracemalloc measurement")
    load.add_argument("--reader", choices=("batch", "protocol"), default="batch",
                      help="media socket reading: batch (plugin.media) or protocol (one datagram per loop pass, "
                           "as before issue #7; comparison only)")
    load.add_argument("--models-dir", type=Path, default=None)
    load.add_argument("--loader", default=None, help=argparse.SUPPRESS)
    load.add_argument("--json", action="store_true", help="JSON only")
    load.set_defaults(func=run_load_cmd)
    wk = what.add_parser("workers", help="chunk throughput with 1 and 2 remote `callguard worker` processes")
    wk.add_argument("--chunks", type=int, default=400)
    wk.add_argument("--detector", choices=("gbm", "wavlm", "fused"), default="gbm")
    wk.add_argument("--max-pending", type=int, default=32)
    wk.add_argument("--models-dir", type=Path, default=None)
    wk.add_argument("--loader", default=None, help=argparse.SUPPRESS)
    wk.add_argument("--json", action="store_true", help="JSON only")
    wk.set_defaults(func=run_workers_cmd)
    cl = what.add_parser("calls", help="end to end with a real Asterisk 16: N concurrent sipp calls through "
                                       "`callguard serve` (private lab on loopback)")
    cl.add_argument("--calls", type=int, default=20, help="concurrent SIP calls")
    cl.add_argument("--seconds", type=float, default=20.0, help="seconds of speech each call plays")
    cl.add_argument("--detector", choices=("gbm", "wavlm", "fused"), default="gbm")
    cl.add_argument("--synthetic-every", type=int, default=5,
                    help="every K-th call plays espeak-ng speech, the others a human recording (0: none)")
    cl.add_argument("--exten", default="100",
                    help="extension(s) to dial, comma-separated, used in turn: 100 = callguard bridges, 200 = Dial()")
    cl.add_argument("--guard", choices=("caller", "both"), default="caller", help="legs the policy guards")
    cl.add_argument("--stagger", type=float, default=2.0, help="call starts spread over this many seconds")
    cl.add_argument("--workers", type=int, default=1, help="the plugin's detector processes")
    cl.add_argument("--queue-size", type=int, default=None, help="scoring queue bound (default max(16, calls/2))")
    cl.add_argument("--models-dir", default="")
    cl.add_argument("--keep", default=None, metavar="DIR", help="run in DIR and keep it (logs, configs)")
    cl.add_argument("--loader", default="", help=argparse.SUPPRESS)
    cl.add_argument("--json", action="store_true", help="JSON only")
    cl.set_defaults(func=run_calls_cmd)
    rc = what.add_parser("recv", help="CPU per received RTP datagram on the media endpoint (N legs at 50 packets/s)")
    rc.add_argument("--legs", type=int, default=200)
    rc.add_argument("--seconds", type=float, default=10.0)
    rc.add_argument("--real-taps", action="store_true",
                    help="real LegTaps (RTP parse, decode, VAD, chunking) instead of counting stand-ins")
    rc.add_argument("--reader", choices=("batch", "protocol"), default="batch",
                    help="batch: plugin.media as it is; protocol: the same behind an asyncio.DatagramProtocol")
    rc.add_argument("--compare", type=int, default=0, metavar="ROUNDS",
                    help="alternate protocol and batch ROUNDS times each and report both")
    rc.add_argument("--json", action="store_true", help="JSON only")
    rc.set_defaults(func=run_recv_cmd)


def _table(rows: list[tuple[str, Any]]) -> None:
    print(f"\n{'measure':45s} {'value':>14s}")
    for k, v in rows:
        shown = f"{v:14.3f}" if isinstance(v, float) else f"{v!s:>14}"
        print(f"{k:45s} {shown}")


def run(args: argparse.Namespace) -> int:
    limit_native_threads(1)
    from bench.chunk_cost import bench_chunk_cost, bench_leg_memory, bench_packet_cost

    results: dict[str, dict] = {
        "chunk": bench_chunk_cost(args.chunks, args.models_dir),
        "packet": bench_packet_cost(),
        "leg": bench_leg_memory(),
    }
    try:
        from bench.wavlm_bench import bench_wavlm

        results["wavlm"] = bench_wavlm(min(args.chunks, 50))
    except Exception as exc:  # model or module not there yet
        results["wavlm"] = {"error": str(exc)}
    print(json.dumps(results, indent=1))
    if not args.json:
        _table([(f"{section}.{k}", v) for section, values in results.items() for k, v in values.items()])
    return 0


_LOAD_COLUMNS = ("legs", "kept_up", "chunks_per_s", "chunks_shed", "packets_lost_pct", "packets_late_gt_60ms",
                 "event_loop_lag_p99_ms", "queue_depth_max", "verdict_latency_p50_ms", "verdict_latency_p95_ms",
                 "verdict_latency_p99_ms", "cpu_cores_total", "plugin_cpu_us_per_packet", "rss_per_leg_kb")


def _load_row(r: dict[str, Any]) -> str:
    return " ".join(f"{str(r.get(c)):>{max(len(c), 6)}s}" for c in _LOAD_COLUMNS)


def run_load_cmd(args: argparse.Namespace) -> int:
    limit_native_threads(1)
    from bench.load import find_max, leg_memory, run_load

    kw = {"workers": args.workers, "queue_size": args.queue_size, "remote_workers": args.remote_workers,
          "reader": args.reader,
          "models_dir": str(args.models_dir) if args.models_dir else None, "loader": args.loader}

    def progress(r: dict[str, Any]) -> None:
        print(f"  {r['legs']} legs: {'kept up' if r['kept_up'] else 'did not keep up: ' + '; '.join(r['why_not'])}",
              file=sys.stderr)

    if args.find_max:
        out = find_max(args.seconds, args.detector, log=progress, **kw)
        runs = out["runs"]
    else:
        out = run_load(args.legs, args.seconds, args.detector, **kw)
        runs = [out]
    out = {"load": out, "memory": leg_memory(args.memory_legs)}
    print(json.dumps(out, indent=1))
    if not args.json:
        print("\n" + " ".join(f"{c:>{max(len(c), 6)}s}" for c in _LOAD_COLUMNS))
        for r in runs:
            print(_load_row(r))
        if args.find_max:
            print(f"\nhighest leg count sustained in real time ({args.detector}): {out['load']['max_legs_sustained']}")
        per_leg = out["memory"]["tracemalloc_bytes_per_leg"] / 1024
        print(f"tracemalloc of the per-leg objects: {per_leg:.1f} KiB per leg")
    return 0


def run_workers_cmd(args: argparse.Namespace) -> int:
    limit_native_threads(1)
    from bench.workers import bench_workers

    out = bench_workers(args.chunks, args.detector, max_pending=args.max_pending,
                        models_dir=str(args.models_dir) if args.models_dir else None, loader=args.loader)
    print(json.dumps(out, indent=1))
    if not args.json and "runs" in out:
        print(f"\n{'workers':>8s} {'chunks/s':>10s} {'wall s':>8s} {'worker cpu cores':>17s}  by worker")
        for r in out["runs"]:
            print(f"{r['workers']:>8d} {r['chunks_per_s']:>10.1f} {r['wall_s']:>8.2f} {r['worker_cpu_cores']:>17.2f}  "
                  f"{r['by_worker']}")
        if "speedup_2_vs_1" in out:
            print(f"speed-up with 2 workers: x{out['speedup_2_vs_1']}")
    return 0 if "runs" in out else 1


def run_recv_cmd(args: argparse.Namespace) -> int:
    limit_native_threads(1)
    from bench.media_recv import bench_media_recv, compare

    if args.compare:
        out = compare(args.legs, args.seconds, real_taps=args.real_taps, rounds=args.compare)
        print(json.dumps(out, indent=1))
        if not args.json:
            cols = ("reader", "legs", "packets_received", "receiver_us_per_packet", "receiver_cpu_cores",
                    "datagrams_per_read_pass", "event_loop_lag_p99_ms", "loadavg")
            print("\n" + " ".join(f"{c:>{max(len(c), 8)}s}" for c in cols))
            for r in out["runs"]:
                print(" ".join(f"{str(r.get(c)):>{max(len(c), 8)}s}" for c in cols))
            print(f"median CPU per datagram: protocol {out['protocol_us_per_packet_median']} us, "
                  f"batch {out['batch_us_per_packet_median']} us")
        return 0
    out = bench_media_recv(args.legs, args.seconds, real_taps=args.real_taps, reader=args.reader)
    print(json.dumps(out, indent=1))
    if not args.json:
        _table(list(out.items()))
    return 0


def run_calls_cmd(args: argparse.Namespace) -> int:
    from bench.calls import run_calls, table_rows

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        out = run_calls(args.calls, args.seconds, args.detector, synthetic_every=args.synthetic_every,
                        exten=args.exten, guard=args.guard, stagger=args.stagger, workers=args.workers,
                        queue_size=args.queue_size, loader=args.loader, models_dir=args.models_dir,
                        keep=args.keep, log=None if args.json else say)
    except Exception as exc:  # the lab could not start (tools missing, ports, Asterisk): one line, status 1
        print(f"callguard bench calls: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=1))
    if not args.json:
        _table(table_rows(out))
        if not out["ok"]:
            print("not all calls were fully guarded: " + "; ".join(out["why_not"]))
    return 0 if out["ok"] else 1
