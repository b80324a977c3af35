"""`callguard bench recv`: CPU cost of receiving RTP on the media endpoint, per datagram.

The sender process of ``bench load`` (one UDP socket per leg, a 20 ms u-law packet per leg every 20 ms,
legs spread over four 5 ms phases of each tick) sends to the plugin's real ``MediaEndpoint``. By default
each leg's tap is a stand-in that only counts its datagrams, so what is measured is the endpoint's own
work: event-loop wake-ups, ``recvfrom`` and the demultiplexing by source address. ``real_taps=True``
uses real ``LegTap`` objects (RTP parse, reorder buffer, G.711 decode, VAD, chunking; ``on_chunk`` a
no-op), the whole media path of a live plugin without scoring.

``reader="protocol"`` runs the same endpoint behind ``loop.create_datagram_endpoint`` (an
``asyncio.DatagramProtocol``: one datagram per event-loop pass, how ``plugin.media`` read before issue #7),
for a side-by-side comparison under the same machine load (``--compare`` alternates the two).

Reported: datagrams sent and received, the receiving process's CPU time (user + system, from
``/proc/self/stat``) per datagram, its share of one core, the mean datagrams handled per read pass of the
endpoint (``MediaEndpoint.read_passes``, when the endpoint counts them) and the event-loop lag.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from typing import Any

from bench.load import _cpu_s, _loadavg, _pct, _sender, speech_ulaw


class _CountingTap:
    """Stands in for a ``LegTap``: counts datagrams, does nothing else."""

    def __init__(self) -> None:
        self.n = 0

    def feed(self, data: bytes) -> None:
        self.n += 1

    def flush(self) -> None: ...


def protocol_reader(base: type) -> type:
    """``base`` (a ``MediaEndpoint`` class) fed by an ``asyncio.DatagramProtocol`` instead of its batch
    reader: one datagram per event-loop pass, the reading path before issue #7. For comparisons only."""

    class ProtocolEndpoint(base):  # type: ignore[misc, valid-type]
        async def start(self, host: str, port: int) -> tuple[str, int]:
            ep = self

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: Any) -> None:
                    ep.read_passes += 1
                    ep.datagram_received(data, addr)

            loop = asyncio.get_running_loop()
            self.transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=(host, port))
            name = self.transport.get_extra_info("sockname")
            return name[0], name[1]

        def close(self) -> None:
            if self.transport is not None:
                self.transport.close()

    ProtocolEndpoint.__name__ = f"Protocol{base.__name__}"
    return ProtocolEndpoint


async def _receive(legs: int, seconds: float, conn: Any, addrs: list[tuple[str, int]], real_taps: bool,
                   sender_pid: int, reader: str = "batch") -> dict[str, Any]:
    from plugin.media import LegTap, MediaEndpoint

    loop = asyncio.get_running_loop()
    ep = MediaEndpoint() if reader == "batch" else protocol_reader(MediaEndpoint)()
    host, port = await ep.start("127.0.0.1", 0)
    taps: list[Any] = []
    for i, a in enumerate(addrs):
        tap = LegTap(key=f"r{i}", fmt="ulaw", on_chunk=lambda k, c: None) if real_taps else _CountingTap()
        ep.add_tap(a, tap)
        taps.append(tap)
    lags: list[float] = []

    async def lag_probe() -> None:
        while True:
            a = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - a - 0.01)

    t0 = time.time() + 0.3
    conn.send(((host, port), t0))
    await asyncio.sleep(max(0.0, t0 - time.time()))
    probe = asyncio.create_task(lag_probe())
    pid = os.getpid()
    cpu0, snd0, w0 = _cpu_s(pid), _cpu_s(sender_pid), time.time()
    passes0 = getattr(ep, "read_passes", 0)
    await asyncio.sleep(seconds)
    cpu1, snd1, w1 = _cpu_s(pid), _cpu_s(sender_pid), time.time()
    passes1 = getattr(ep, "read_passes", 0)
    probe.cancel()
    sender_stats = await loop.run_in_executor(None, conn.recv)
    received = sum(t.stats.packets if real_taps else t.n for t in taps)
    ep.close()
    wall = w1 - w0
    # the window is the sender's: it sends from t0 for ``seconds``; a few datagrams handled just after
    # the window closes are counted, not their CPU (well under 1 % at these durations)
    cpu = cpu1 - cpu0
    out: dict[str, Any] = {
        "reader": reader, "legs": legs, "seconds": seconds, "taps": "real LegTap" if real_taps else "counting stand-in",
        "packets_sent": sender_stats["sent"], "packets_received": received,
        "receiver_cpu_s": round(cpu, 3), "receiver_cpu_cores": round(cpu / wall, 3),
        "receiver_us_per_packet": round(1e6 * cpu / received, 2) if received else None,
        "sender_cpu_cores": round((snd1 - snd0) / wall, 3),
        "sender_late_packets": sender_stats["sender_late_packets"],
        "event_loop_lag_p50_ms": _pct([x * 1000 for x in lags], 50),
        "event_loop_lag_p99_ms": _pct([x * 1000 for x in lags], 99),
        "loadavg": _loadavg(),
    }
    if passes1 > passes0:
        out["read_passes"] = passes1 - passes0
        out["datagrams_per_read_pass"] = round(received / (passes1 - passes0), 2)
    return out


def bench_media_recv(legs: int = 200, seconds: float = 10.0, real_taps: bool = False,
                     reader: str = "batch") -> dict[str, Any]:
    """One bounded run (see the module doc); ``reader``: ``batch`` (plugin.media) or ``protocol``."""
    if reader not in ("batch", "protocol"):
        raise ValueError(f"reader {reader!r}: batch or protocol")
    audio = speech_ulaw()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    sender = ctx.Process(target=_sender, args=(child, legs, seconds, audio), daemon=True)
    sender.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the sender process did not start")
        addrs = parent.recv()
        return asyncio.run(_receive(legs, seconds, parent, addrs, real_taps, sender.pid or 0, reader))
    finally:
        sender.join(5)
        if sender.is_alive():
            sender.kill()


def expected_packets(legs: int, seconds: float) -> int:
    """What ``bench.load._sender`` sends: leg i joins at i/N of the first 2 s."""
    from bench.load import PTIME, STAGGER_S

    ticks = int(round(seconds / PTIME))
    return sum(ticks - int(i * STAGGER_S / PTIME / legs) for i in range(legs))



def compare(legs: int, seconds: float, real_taps: bool = False, rounds: int = 3) -> dict[str, Any]:
    """``rounds`` runs of each reader, alternating (protocol, batch, protocol, ...), so that a change in the
    machine's load hits both; medians of the per-datagram CPU."""
    runs: list[dict[str, Any]] = []
    for _ in range(rounds):
        for reader in ("protocol", "batch"):
            runs.append(bench_media_recv(legs, seconds, real_taps=real_taps, reader=reader))
    out: dict[str, Any] = {"legs": legs, "seconds": seconds, "rounds": rounds, "runs": runs}
    for reader in ("protocol", "batch"):
        vals = sorted(r["receiver_us_per_packet"] for r in runs if r["reader"] == reader)
        out[f"{reader}_us_per_packet_median"] = vals[len(vals) // 2]
    return out
