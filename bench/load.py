"""`callguard bench load`: N concurrent G.711 RTP streams of real speech through the real live path.

What runs is the plugin's own path, unchanged: ``MediaEndpoint`` (one UDP socket) -> ``LegTap`` (RTP parse,
reorder buffer, u-law decode, VAD gate, 2-s chunks) -> ``Guard`` -> ``ScoringService`` (detector processes)
-> policy -> ``Bus`` (a private redis-server on a free loopback port, or the bus's spool file when
redis-server is not installed; the result says which). Only the PBX side is faked: ``BenchAdapter``
"announces" each stream's UDP source address as that leg's tap, as Asterisk's ExternalMedia would.

The streams come from a separate sender process: one UDP socket per leg on 127.0.0.1, a 20 ms u-law packet
per leg every 20 ms (legs spread over four 5 ms phases of each tick; leg i starts i/N of 2 s into the run, as
calls in progress do, so their chunk boundaries are not all at the same instant), audio looped from the speech files of
``tests/fixtures/corpus`` (each leg starts at a different place). The run is bounded (``legs`` streams,
``seconds`` long) and stops by itself.

Reported: whether the plugin kept up in real time (queue depth over time, chunks shed, packets lost or
processed late, event-loop lag), verdict latency p50/p95/p99 from chunk end (the chunk's last packet
received) to its bus message published, CPU use of each process, memory per guarded leg (RSS delta / N
and tracemalloc of the per-leg objects).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import gc
import glob
import logging
import math
import multiprocessing
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.threads import THREAD_VARS

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "corpus" / "chunks"
PTIME = 0.02
PHASES = 4  # legs are spread over this many sub-ticks of each 20 ms tick
GAP_S = 0.3  # silence between corpus files (a pause between phrases)
STAGGER_S = 2.0  # legs start spread over one chunk period
LATE_S = 0.06  # a packet handled this long after it was sent is "late" (3 packets: the reorder window)
CLK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ audio
def speech_ulaw(corpus: Path = CORPUS) -> bytes:
    """The corpus's speech files, joined with short pauses, as one u-law byte string at 8 kHz."""
    from detector.audio import g711_encode, load_audio, to_int16

    files = sorted(glob.glob(str(corpus / "**" / "*.wav"), recursive=True))
    if not files:
        raise FileNotFoundError(f"no speech files under {corpus}")
    gap = np.zeros(int(GAP_S * 8000), np.float32)
    parts = []
    for f in files:
        parts += [load_audio(f), gap]
    signal = to_int16(np.concatenate(parts))
    signal = signal[: len(signal) - len(signal) % 160]
    return g711_encode(signal, "ulaw").tobytes()


# ------------------------------------------------------------------------------ the sender process
def _sender(conn: Any, legs: int, seconds: float, audio: bytes) -> None:
    """Child process: bind one socket per leg, report the addresses, wait for (dest, t0), send, report."""
    os.nice(0)
    socks = []
    for _ in range(legs):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    conn.send([s.getsockname() for s in socks])
    dest, t0 = conn.recv()
    n_ticks = int(round(seconds / PTIME))
    frames = len(audio) // 160
    start = [(i * 7919) % frames for i in range(legs)]  # each leg at its own place in the speech
    hdr = struct.Struct("!BBHII")
    per_phase = math.ceil(legs / PHASES)
    # calls are in progress, not all started at the same instant: leg i joins at its own point of the first
    # chunk period (2 s), so the legs' chunk boundaries are spread as on a real PBX
    first_tick = [int(i * STAGGER_S / PTIME / legs) for i in range(legs)]
    sent = late = 0
    worst = 0.0
    for k in range(n_ticks):
        for ph in range(PHASES):
            due = t0 + k * PTIME + ph * PTIME / PHASES
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                worst = max(worst, -delay)
                if -delay > 0.01:
                    late += min(per_phase, legs - ph * per_phase)
            for i in range(ph * per_phase, min(legs, (ph + 1) * per_phase)):
                if k < first_tick[i]:
                    continue
                f = (start[i] + k) % frames
                pkt = hdr.pack(0x80, 0, k & 0xFFFF, (k * 160) & 0xFFFFFFFF, i + 1) + audio[f * 160: f * 160 + 160]
                try:
                    socks[i].sendto(pkt, dest)
                    sent += 1
                except OSError:
                    pass
    conn.send({"sent": sent, "sender_late_packets": late, "sender_worst_lag_s": round(worst, 4)})
    for s in socks:
        s.close()


# ------------------------------------------------------------------------------ process accounting
def _cpu_s(pid: int) -> float:
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def _rss_bytes(pid: int | None = None) -> int:
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _loadavg() -> str:
    """The 1, 5 and 15 minute load averages (figures from a busy machine must say so)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _pct(values: list[float] | array.array, q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values), q)), 4) if len(values) else None


# ------------------------------------------------------------------------------ plugin side, PBX faked
def _plugin_classes() -> tuple[type, type, type]:
    from plugin.bus import Bus
    from plugin.media import MediaEndpoint
    from plugin.telephony import Leg

    class BenchEndpoint(MediaEndpoint):
        """The real endpoint, plus one timestamp check per packet: how long after it was sent was it
        handled (the RTP timestamp says when the sender sent it)."""

        def __init__(self) -> None:
            super().__init__()
            self.t0 = 0.0
            self.per_phase = 1
            self.lateness = array.array("f")

        def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
            super().datagram_received(data, addr)
            if len(data) >= 12:
                ts = int.from_bytes(data[4:8], "big")
                ssrc = int.from_bytes(data[8:12], "big")
                sent = self.t0 + ts / 8000 + ((ssrc - 1) // self.per_phase) * PTIME / PHASES
                self.lateness.append(time.time() - sent)

    class TimedBus(Bus):
        """The real bus; records when each chunk's message was published, from the chunk's end."""

        def __init__(self, *a: Any, chunk_end: dict[tuple[str, int], float], **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.chunk_end = chunk_end
            self.latency: list[float] = []
            self.verdicts = 0

        async def publish(self, msg: dict[str, Any]) -> bool:
            ok = await super().publish(msg)
            if msg.get("type") == "chunk":
                end = self.chunk_end.pop((f"{msg['call_id']}:{msg['leg']}", msg["chunk_index"]), None)
                if end is not None:
                    self.latency.append(time.time() - end)
            elif msg.get("type") == "verdict":
                self.verdicts += 1
            return ok

    class BenchAdapter:
        """A TelephonyAdapter without a PBX: a leg's tap is the sender socket announced for its call."""

        def __init__(self, addrs: dict[str, tuple[str, int]]) -> None:
            self.addrs = addrs

        async def start(self, events: Any) -> None: ...

        async def close(self) -> None: ...

        def legs_of(self, call: Any, guarded: tuple[str, ...]) -> list[Any]:
            return [Leg(call.call_id, "caller", call.caller_channel, call.caller_channel, "in")]

        async def tap(self, leg: Any, register: Callable[[tuple[str, int]], None]) -> float:
            register(self.addrs[leg.call_id])
            return 0.0

        async def stop_tap(self, leg: Any) -> None: ...

        async def annotate(self, leg: Any, variables: dict[str, str]) -> None: ...

        async def warn(self, leg: Any, media: str) -> None: ...

        async def hangup(self, leg: Any, reason: str = "normal") -> None: ...

        def find_leg(self, call_id: str, leg: str) -> Any:
            return None

    return BenchEndpoint, TimedBus, BenchAdapter


@dataclass
class BusTarget:
    kind: str  # "redis" (private redis-server) or "spool"
    url: str = "redis://127.0.0.1:1/0"
    password: str = ""
    lab: Any = None
    tmp: Any = None

    def close(self) -> None:
        if self.lab is not None:
            with contextlib.suppress(Exception):
                self.lab.stop_redis()
        if self.tmp is not None:
            self.tmp.cleanup()


def start_bus_target(use_redis: bool = True) -> BusTarget:
    """A private redis-server on a free loopback port (as ``plugin.lab`` does), or the spool when it
    is not installed."""
    tmp = tempfile.TemporaryDirectory(prefix="cg-bench-")
    if use_redis and shutil.which("redis-server"):
        from plugin.lab import Lab, LabPorts, free_port

        lab = Lab(root=Path(tmp.name) / "redis", ports=LabPorts(http=0, sip=0, sip2=0, rtp_start=0, rtp_end=0,
                                                                 redis=free_port(), media=0, sipp_base=0))
        for d in ("run", "lib", "log"):
            (lab.root / d).mkdir(parents=True, exist_ok=True)
        lab.start_redis()
        return BusTarget("redis", lab.redis_url, lab.redis_password, lab, tmp)
    return BusTarget("spool", tmp=tmp)


def _config(detector: str, workers: int, queue_size: int, models_dir: str | None, loader: str | None,
            bus: BusTarget, tmp: Path, remote: bool = False) -> Any:
    from plugin.config import parse_config

    det: dict[str, Any] = {"name": detector, "workers": workers, "queue_size": queue_size}
    if remote:
        det.update(mode="redis", stream=f"bench:chunks:{os.getpid()}")
    if models_dir:
        det["models_dir"] = str(models_dir)
    if loader:
        det["loader"] = loader
    raw = {"ari": {"password": "bench-unused"}, "media": {"port": 0},
           "http": {"enabled": False}, "detector": det,
           "redis": {"url": bus.url, "spool_path": str(tmp / "spool.jsonl"), "summary_log": str(tmp / "summary.jsonl"),
                     "spool_max_bytes": 500_000_000},
           "policies": {"default": {"legs": ["caller"]}}}
    return parse_config(raw, env={"CALLGUARD_REDIS_PASSWORD": bus.password} if bus.password else {},
                        check_port=False)


async def _run_async(legs: int, seconds: float, cfg: Any, bus_target: BusTarget, conn: Any,
                     addrs: list[tuple[str, int]], sender_pid: int,
                     remote_pids: tuple[int, ...] = (), reader: str = "batch") -> dict[str, Any]:
    from plugin.guard import Guard
    from plugin.scoring import make_scoring
    from plugin.telephony import Call, CallInfo

    BenchEndpoint, TimedBus, BenchAdapter = _plugin_classes()
    logging.getLogger("plugin.guard").setLevel(logging.WARNING)  # per-call and per-verdict lines: N of each
    loop = asyncio.get_running_loop()
    if reader == "protocol":  # the reading path before issue #7, for a side-by-side comparison
        from bench.media_recv import protocol_reader

        BenchEndpoint = protocol_reader(BenchEndpoint)  # noqa: N806
    media = BenchEndpoint()
    host, port = await media.start("127.0.0.1", 0)
    media.per_phase = math.ceil(legs / PHASES)
    with contextlib.suppress(OSError):  # a burst of N packets must fit in the socket buffer
        media.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    scoring = make_scoring(cfg)
    info = await scoring.start()
    r = cfg.redis
    chunk_end: dict[tuple[str, int], float] = {}
    bus = TimedBus(r.url, r.password, r.channel, r.stream, r.stream_maxlen, r.spool_path, r.spool_max_bytes,
                   r.summary_log, chunk_end=chunk_end)
    await bus.start()
    calls = [Call(call_id=f"bench-{i}", mode="bridge", caller_channel=f"chan-{i}", info=CallInfo())
             for i in range(legs)]
    adapter = BenchAdapter({c.call_id: addrs[i] for i, c in enumerate(calls)})
    guard = Guard(cfg, adapter, media, scoring, bus)  # type: ignore[arg-type]
    submit = scoring.submit

    def timed_submit(job: Any) -> None:  # chunk end = now: the chunk's last packet was just handled
        chunk_end[(job.leg, job.chunk.index)] = time.time()
        submit(job)

    scoring.submit = timed_submit  # type: ignore[method-assign]

    gc.collect()
    rss0 = _rss_bytes()
    loadavg0 = _loadavg()
    for c in calls:
        await guard.call_started(c)
    t0 = time.time() + 0.5
    media.t0 = t0
    conn.send(((host, port), t0))
    pids = {"plugin": os.getpid(), "sender": sender_pid}
    for n, pid in enumerate(getattr(scoring, "worker_pids", list)()):
        pids[f"scoring_worker_{n}"] = pid
    for n, pid in enumerate(remote_pids):
        pids[f"remote_worker_{n}"] = pid
    if bus_target.lab is not None and bus_target.lab.redis_pid():
        pids["redis"] = bus_target.lab.redis_pid()
    cpu0 = {k: _cpu_s(p) for k, p in pids.items()}
    w0 = time.time()

    samples: list[dict[str, Any]] = []
    lags: list[float] = []

    async def lag_probe() -> None:
        while True:
            a = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - a - 0.01)

    async def sampler() -> None:
        while True:
            samples.append({"t": round(time.time() - t0, 2), "queued": scoring.queued,
                            "in_flight": scoring.in_flight, "shed": scoring.shed, "scored": scoring.scored})
            await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(lag_probe()), asyncio.create_task(sampler())]
    await asyncio.sleep(max(0.0, t0 - time.time()) + seconds)
    rss_run = _rss_bytes()
    sender_stats = await loop.run_in_executor(None, conn.recv)
    end_wall = time.time()
    # drain: what was queued when the streams stopped is scored (how long it takes says how far behind)
    drain_started = time.time()

    def produced() -> int:
        return sum(st.tap.stats.chunks for st in guard.legs.values())

    while scoring.scored + scoring.errors + scoring.shed < produced() and time.time() - drain_started < 20:
        await asyncio.sleep(0.05)
    drain_s = time.time() - drain_started
    cpu1 = {k: _cpu_s(p) for k, p in pids.items()}
    wall = end_wall - w0
    for t in tasks:
        t.cancel()
    taps = [st.tap for st in guard.legs.values()]
    received = sum(tp.stats.packets for tp in taps)
    chunks = sum(tp.stats.chunks for tp in taps)
    rtp_lost = sum(tp.rtp_stats.lost for tp in taps)
    rtp_late = sum(tp.rtp_stats.late for tp in taps)
    for c in calls:
        c.ended = True
        await guard.call_ended(c, "bench")
    await scoring.close()
    await bus.close()
    media.close()

    late = np.asarray(media.lateness)
    lat = bus.latency
    depth = [s["queued"] + s["in_flight"] for s in samples if 0 <= s["t"] <= seconds]
    third = max(1, len(depth) // 3)
    sent = sender_stats["sent"]
    cpu = {k: round((cpu1[k] - cpu0[k]) / wall, 3) for k in pids}
    result: dict[str, Any] = {
        "legs": legs, "seconds": seconds, "detector": info.name, "detector_version": info.version,
        "media_reader": reader, "loadavg_start": loadavg0, "loadavg_end": _loadavg(),
        "scoring": cfg.detector.mode, "scoring_workers": len(remote_pids) or cfg.detector.workers,
        "queue_size": cfg.detector.queue_size,
        "bus": bus_target.kind,
        "packets_sent": sent, "packets_received": received,
        "packets_lost_pct": round(100 * (1 - received / sent), 3) if sent else None,
        "packets_late_gt_60ms": int((late > LATE_S).sum()),
        "packet_lateness_p50_ms": _pct(late * 1000, 50), "packet_lateness_p99_ms": _pct(late * 1000, 99),
        "packet_lateness_max_ms": round(float(late.max()) * 1000, 2) if late.size else None,
        "rtp_concealed_lost": rtp_lost, "rtp_too_late": rtp_late, **sender_stats,
        "event_loop_lag_p99_ms": _pct([x * 1000 for x in lags], 99),
        "event_loop_lag_max_ms": round(max(lags) * 1000, 2) if lags else None,
        "chunks": chunks, "chunks_scored": scoring.scored, "chunks_shed": scoring.shed,
        "chunk_errors": scoring.errors, "chunks_per_s": round(chunks / wall, 2),
        "verdict_latency_p50_ms": _pct([x * 1000 for x in lat], 50),
        "verdict_latency_p95_ms": _pct([x * 1000 for x in lat], 95),
        "verdict_latency_p99_ms": _pct([x * 1000 for x in lat], 99),
        "verdict_latency_max_ms": round(max(lat) * 1000, 1) if lat else None,
        "verdict_changes_published": bus.verdicts,
        "queue_depth_max": max(depth, default=0),
        "queue_depth_mean_first_third": round(float(np.mean(depth[:third])), 2) if depth else 0,
        "queue_depth_mean_last_third": round(float(np.mean(depth[-third:])), 2) if depth else 0,
        "queue_depth_series": " ".join(f"{s['t']:g}s:{s['queued'] + s['in_flight']}" for s in samples[::2]),
        "drain_after_end_s": round(drain_s, 2),
        "cpu_cores": cpu, "cpu_cores_total": round(sum(cpu.values()), 3),
        # the plugin's CPU (media, guard, bus; scoring runs elsewhere) per datagram received
        "plugin_cpu_us_per_packet": round(1e6 * cpu["plugin"] * wall / received, 2) if received else None,
        "datagrams_per_read_pass": round(received / media.read_passes, 2) if media.read_passes else None,
        "rss_per_leg_kb": round((rss_run - rss0) / legs / 1024, 1),
    }
    result["kept_up"], result["why_not"] = judge(result)
    return result


def judge(r: dict[str, Any]) -> tuple[bool, list[str]]:
    """Real time, no growing backlog: nothing shed, (almost) no packet lost or late, the queue at the end
    no deeper than at the start, the chunk latency below one chunk (2 s), the backlog gone within 2 s."""
    why = []
    if r["chunks_shed"]:
        why.append(f"{r['chunks_shed']} chunks shed")
    if r["packets_lost_pct"] is None or r["packets_lost_pct"] > 0.5:
        why.append(f"{r['packets_lost_pct']} % packets lost")
    if r["packets_late_gt_60ms"] > 0.005 * max(r["packets_received"], 1):
        why.append(f"{r['packets_late_gt_60ms']} packets handled > 60 ms late")
    if r["sender_late_packets"] > 0.01 * max(r["sent"], 1):
        why.append(f"the sender itself fell behind ({r['sender_late_packets']} packets late)")
    if r["queue_depth_mean_last_third"] > r["queue_depth_mean_first_third"] + 2 + 0.05 * r["legs"]:
        why.append(f"backlog grew ({r['queue_depth_mean_first_third']} -> {r['queue_depth_mean_last_third']})")
    if r["verdict_latency_p95_ms"] is None or r["verdict_latency_p95_ms"] > 2000:
        why.append(f"verdict latency p95 {r['verdict_latency_p95_ms']} ms > one chunk")
    if r["drain_after_end_s"] > 2.0:
        why.append(f"{r['drain_after_end_s']} s to drain the backlog")
    return not why, why


def leg_memory(n: int = 100, audio: bytes | None = None) -> dict[str, Any]:
    """tracemalloc of the per-leg objects (LegState: LegTap with its reorder buffer, decoder and VAD chunker
    holding 1.9 s of speech, LegEvidence), built and fed like the live path, divided by ``n``."""
    from plugin.config import Policy
    from plugin.guard import LegState
    from plugin.policy import LegEvidence
    from plugin.telephony import Leg

    audio = audio or speech_ulaw()
    hdr = struct.Struct("!BBHII")
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.take_snapshot()
    held = []
    for i in range(n):
        from plugin.media import LegTap

        tap = LegTap(key=f"m-{i}:caller", fmt="ulaw", on_chunk=lambda k, c: None)
        st = LegState(leg=Leg(f"m-{i}", "caller", f"c-{i}", f"c-{i}", "in"), policy=Policy("default"),
                      evidence=LegEvidence(window=3, min_chunks=2, warn=0.5, hangup=0.9), tap=tap)
        base = (i * 7919) % (len(audio) // 160 - 100)
        for k in range(95):  # 1.9 s: the chunker's buffer is nearly full, the worst moment
            f = base + k
            tap.feed(hdr.pack(0x80, 0, k, k * 160, i + 1) + audio[f * 160: f * 160 + 160], now=0.0)
        held.append(st)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return {"legs": n, "tracemalloc_bytes_per_leg": round(total / n), "held": len(held)}


def run_load(legs: int, seconds: float, detector: str = "gbm", *, workers: int = 1, queue_size: int | None = None,
             models_dir: str | None = None, loader: str | None = None, bus_target: BusTarget | None = None,
             audio: bytes | None = None, remote_workers: int = 0, reader: str = "batch") -> dict[str, Any]:
    """One bounded run: ``legs`` streams for ``seconds``; returns the measurements (see module doc).
    ``reader="protocol"`` reads the media socket the way it was read before issue #7 (comparison only).

    ``remote_workers`` > 0: scoring runs in that many ``callguard worker`` processes over Redis Streams
    (``[detector] mode = "redis"``) instead of the local pool."""
    for var in THREAD_VARS:
        os.environ.setdefault(var, "1")
    audio = audio or speech_ulaw()
    own_target = bus_target is None
    target = bus_target or start_bus_target()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    sender = ctx.Process(target=_sender, args=(child, legs, seconds, audio), daemon=True)
    sender.start()
    tmp = tempfile.TemporaryDirectory(prefix="cg-load-")
    remote: list[subprocess.Popen[bytes]] = []
    try:
        if not parent.poll(60):
            raise RuntimeError("the sender process did not start")
        addrs = parent.recv()
        cfg = _config(detector, workers, queue_size or max(16, legs // 2), models_dir, loader, target, Path(tmp.name),
                      remote=remote_workers > 0)
        if remote_workers:
            if target.kind != "redis":
                raise RuntimeError("remote workers need redis-server")
            remote = _start_workers(remote_workers, cfg, target, Path(tmp.name))
        return asyncio.run(_run_async(legs, seconds, cfg, target, parent, addrs, sender.pid or 0,
                                      tuple(p.pid for p in remote), reader))
    finally:
        for p in remote:
            p.terminate()
        for p in remote:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        sender.join(5)
        if sender.is_alive():
            sender.kill()
        tmp.cleanup()
        if own_target:
            target.close()


def _start_workers(n: int, cfg: Any, target: BusTarget, tmp: Path) -> list[subprocess.Popen[bytes]]:
    """``callguard worker`` processes for the run's chunk stream (the real command)."""
    import sys

    det = cfg.detector
    conf = tmp / "worker.toml"
    lines = [f'name = "{det.name}"', f'stream = "{det.stream}"', f'loader = "{det.loader}"']
    if det.models_dir:
        lines.append(f'models_dir = "{det.models_dir}"')
    conf.write_text(f'[redis]\nurl = "{target.url}"\n\n[detector]\n' + "\n".join(lines) + "\n")
    env = {**os.environ, "CALLGUARD_REDIS_PASSWORD": target.password, "OMP_NUM_THREADS": "1"}
    return [subprocess.Popen([sys.executable, "-m", "plugin.cli", "worker", "--config", str(conf), "--consumer",
                              f"load-{k}"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for k in range(n)]


STEPS = (25, 50, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000)


def find_max(seconds: float, detector: str = "gbm", steps: tuple[int, ...] = STEPS,
             log: Callable[[dict[str, Any]], None] | None = None, **kw: Any) -> dict[str, Any]:
    """Step N up until a run does not keep up; the highest N that did is the sustained capacity."""
    audio = speech_ulaw()
    target = start_bus_target()
    runs = []
    best = 0
    try:
        for n in steps:
            r = run_load(n, seconds, detector, bus_target=target, audio=audio, **kw)
            runs.append(r)
            if log:
                log(r)
            if not r["kept_up"]:
                break
            best = n
    finally:
        target.close()
    return {"max_legs_sustained": best, "detector": detector, "seconds_per_step": seconds, "runs": runs}
