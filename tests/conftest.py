"""Session-wide test hooks: counts the inputs the fuzz tests (``-m fuzz``) generated and prints the total.

Every call of a ``@pytest.mark.fuzz`` hypothesis test's inner function is one generated input run through
the code under test; the terminal summary lists them per test and in total, so the dedicated fuzz run
(README, "Tests") reports the real number rather than the configured one.
"""

from __future__ import annotations

import functools
import time
from collections import Counter

import pytest

_counts: Counter[str] = Counter()
_started = time.monotonic()


def _counting(nodeid: str, inner):  # type: ignore[no-untyped-def]
    @functools.wraps(inner)
    def run(*args, **kwargs):  # type: ignore[no-untyped-def]
        _counts[nodeid] += 1
        return inner(*args, **kwargs)

    run._fuzz_counted = True  # type: ignore[attr-defined]
    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "obj", None)
        hyp = getattr(fn, "hypothesis", None)
        if hyp is None or item.get_closest_marker("fuzz") is None:
            continue
        if not getattr(hyp.inner_test, "_fuzz_counted", False):
            hyp.inner_test = _counting(item.nodeid, hyp.inner_test)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not _counts:
        return
    tr = terminalreporter
    tr.section("fuzz inputs")
    for nodeid, n in sorted(_counts.items()):
        tr.write_line(f"{n:>9,d}  {nodeid}")
    tr.write_line(f"{sum(_counts.values()):>9,d}  generated inputs in total "
                  f"({len(_counts)} fuzz tests, {time.monotonic() - _started:.0f} s)")
