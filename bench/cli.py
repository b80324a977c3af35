"""`callguard bench`: print the per-chunk, per-packet and per-leg costs as JSON and as a table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure CPU cost per chunk/packet and memory per leg")
    p.add_argument("--chunks", type=int, default=100)
    p.add_argument("--models-dir", type=Path, default=None)
    p.add_argument("--json", action="store_true", help="JSON only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # one core: must be set before numpy/lightgbm load their thread pools
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
        print(f"\n{'measure':45s} {'value':>12s}")
        for section, values in results.items():
            for k, v in values.items():
                shown = f"{v:12.3f}" if isinstance(v, float) else f"{v!s:>12}"
                print(f"{section + '.' + k:45s} {shown}")
    return 0
