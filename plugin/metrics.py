"""Process-wide counters (shed chunks, dropped packets, ...): cheap, visible in logs and summaries."""

from __future__ import annotations

from collections import Counter
from threading import Lock

_lock = Lock()
_counters: Counter[str] = Counter()


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
    with _lock:
        _counters.clear()
