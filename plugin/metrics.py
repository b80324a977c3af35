"""Process-wide counters (shed chunks, dropped packets, ...): cheap, visible in logs and summaries.

``inc``/``get``/``snapshot``/``reset`` are the whole API the live path uses. On top of that, this module
keeps the verdict-latency histogram and renders everything, plus the service's current state
(``ServiceStatus``), as Prometheus text for ``GET /metrics`` (``plugin.http``). Rendering uses
``prometheus_client`` with a private registry built per scrape, so nothing here is global to the
library and ``reset()`` (tests) really resets.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from threading import Lock

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

_lock = Lock()
_counters: Counter[str] = Counter()

# chunk end (the speech chunker emitted it) -> the bus message with its score and the leg's verdict published
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
_latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)  # last slot: above the largest bucket
_latency_sum = 0.0

VERDICT_PREFIX = "verdict_"  # inc(f"verdict_{verdict}") counts verdict changes published per class


def inc(name: str, n: int = 1) -> None:
    with _lock:
        _counters[name] += n


def get(name: str) -> int:
    with _lock:
        return _counters[name]


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(_counters)


def reset() -> None:
    global _latency_sum
    with _lock:
        _counters.clear()
        _latency_counts[:] = [0] * len(_latency_counts)
        _latency_sum = 0.0


def observe_verdict_latency(seconds: float) -> None:
    """One scored chunk's latency from the end of the chunk to its bus message being published."""
    global _latency_sum
    seconds = max(0.0, float(seconds))
    with _lock:
        _latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        _latency_sum += seconds


def latency_histogram() -> tuple[list[tuple[str, int]], float]:
    """Cumulative (le, count) buckets ending with ``+Inf``, and the sum of observations."""
    with _lock:
        counts, total = list(_latency_counts), _latency_sum
    out, acc = [], 0
    for le, n in zip((*(str(b) for b in LATENCY_BUCKETS), "+Inf"), counts, strict=True):
        acc += n
        out.append((le, acc))
    return out, total


# ------------------------------------------------------------------------------------ Prometheus
@dataclass(frozen=True)
class ServiceStatus:
    """What /health and /metrics report about the running service, gathered at request time."""

    ari_connected: bool = False
    redis_connected: bool = False
    redis_error: str | None = None
    detector_up: bool = False
    detector_name: str | None = None
    detector_version: str | None = None
    legs_guarded: int = 0
    chunks_scored: int = 0
    chunks_shed: int = 0
    chunks_errored: int = 0
    queue_depth: int = 0
    spool_length: int = 0
    uptime_s: float = 0.0


# counters the status reports itself (per service instance) or that get a labelled family below
_NOT_GENERIC = {"chunks_shed", "detector_errors"}
_HELP = {
    "media_unknown_source_packets": "RTP packets dropped because no tap expects their source address",
    "bus_publish_failures": "bus messages Redis did not take at once (spooled)",
    "bus_spool_dropped": "bus messages dropped because the spool file was full",
    "detector_pool_restarts": "detector worker pools restarted after a worker died",
    "rtp_malformed": "RTP packets that could not be parsed",
    "http_auth_failures": "HTTP requests refused for a missing or wrong bearer token",
}


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class _Collector:
    def __init__(self, status: ServiceStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        s = self.status
        yield _gauge("callguard_up", "1 when ARI is connected and the detector is loaded", float(
            s.ari_connected and s.detector_up))
        yield _gauge("callguard_ari_connected", "ARI events websocket connected (0/1)", float(s.ari_connected))
        yield _gauge("callguard_redis_connected", "Redis answered PING (0/1)", float(s.redis_connected))
        yield _gauge("callguard_detector_up", "detector loaded in its worker process(es) (0/1)",
                     float(s.detector_up))
        info = GaugeMetricFamily("callguard_detector_info", "the detector in use", labels=["name", "version"])
        if s.detector_name is not None:
            info.add_metric([s.detector_name, s.detector_version or ""], 1.0)
        yield info
        yield _gauge("callguard_legs_guarded", "call legs being tapped and scored now", s.legs_guarded)
        yield _gauge("callguard_scoring_queue_depth", "chunks waiting for a detector worker", s.queue_depth)
        yield _gauge("callguard_spool_messages", "bus messages waiting in the spool file for Redis",
                     s.spool_length)
        yield _gauge("callguard_uptime_seconds", "seconds since the service started", s.uptime_s)
        yield CounterMetricFamily("callguard_chunks_scored", "speech chunks scored by the detector",
                                  value=s.chunks_scored)
        yield CounterMetricFamily("callguard_chunks_shed", "speech chunks dropped unscored (queue full)",
                                  value=s.chunks_shed)
        yield CounterMetricFamily("callguard_chunks_errored", "speech chunks the detector failed on",
                                  value=s.chunks_errored)
        counters = {**dict.fromkeys(_HELP, 0), **snapshot()}  # known counters exist from the start, at 0
        verdicts = CounterMetricFamily("callguard_verdicts", "verdict changes published, by verdict",
                                       labels=["verdict"])
        for name, value in sorted(counters.items()):
            if name.startswith(VERDICT_PREFIX):
                verdicts.add_metric([name[len(VERDICT_PREFIX):]], value)
        yield verdicts
        for name, value in sorted(counters.items()):
            if name in _NOT_GENERIC or name.startswith(VERDICT_PREFIX):
                continue
            metric = "callguard_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
            yield CounterMetricFamily(metric, _HELP.get(name, f"internal counter {name}"), value=value)
        buckets, total = latency_histogram()
        yield HistogramMetricFamily(
            "callguard_verdict_latency_seconds",
            "end of a speech chunk -> its score and the leg's verdict published on the bus",
            buckets=buckets, sum_value=total)


def render(status: ServiceStatus) -> bytes:
    """Prometheus text exposition of the counters, the latency histogram and ``status``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(status))  # type: ignore[arg-type]
    return generate_latest(registry)
