"""Rolling evidence -> verdicts; minimum chunks before spoof; errors are never evidence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.policy import LegEvidence


def ev(window=3, min_chunks=2, warn=0.5, hangup=0.8) -> LegEvidence:
    return LegEvidence(window=window, min_chunks=min_chunks, warn=warn, hangup=hangup)


def test_first_scored_chunk_sets_a_verdict_and_reports_a_change():
    e = ev()
    assert e.verdict is None
    assert e.add(0, 0.1) is True and e.verdict == "bonafide"
    assert e.add(1, 0.2) is False


def test_strong_evidence_is_only_suspicious_until_min_chunks():
    e = ev(min_chunks=3)
    e.add(0, 0.99)
    assert e.verdict == "suspicious"
    e.add(1, 0.99)
    assert e.verdict == "suspicious"
    assert e.add(2, 0.99) and e.verdict == "spoof"
    assert [v for _, v in e.history] == ["suspicious", "spoof"]


def test_rolling_mean_over_the_window_decides():
    e = ev(window=2, min_chunks=1, warn=0.5, hangup=0.8)
    e.add(0, 0.9)
    assert e.verdict == "spoof"
    e.add(1, 0.1)  # mean 0.5
    assert e.verdict == "suspicious"
    e.add(2, 0.1)  # mean 0.1
    assert e.verdict == "bonafide"


def test_errors_do_not_count_as_chunks_or_evidence():
    e = ev(min_chunks=2)
    e.add(0, 0.95)
    assert e.add(1, None) is False and e.add(2, float("nan")) is False
    assert e.verdict == "suspicious" and e.n_scored == 1 and e.n_errors == 2


SCORES = st.floats(0, 1, allow_subnormal=False)  # a fast-math library in the test process flushes subnormals


@given(st.lists(st.one_of(st.none(), SCORES), max_size=40), st.integers(1, 5), st.integers(1, 5))
def test_errors_never_change_the_outcome(results, window, min_chunks):
    with_errors, without = ev(window, min_chunks), ev(window, min_chunks)
    for i, r in enumerate(results):
        with_errors.add(i, r)
        if r is not None:
            without.add(i, r)
    assert with_errors.verdict == without.verdict
    assert [v for _, v in with_errors.history] == [v for _, v in without.history]


@given(st.lists(st.none(), min_size=1, max_size=30))
def test_only_errors_never_produce_any_verdict(results):
    e = ev(min_chunks=1)
    for i, r in enumerate(results):
        e.add(i, r)
    assert e.verdict is None


def test_inconsistent_thresholds_are_rejected():
    with pytest.raises(ValueError):
        ev(warn=0.9, hangup=0.5)


def test_hangup_is_decided_on_the_longer_hangup_window_once_it_is_full():
    e = LegEvidence(window=3, min_chunks=2, warn=0.5, hangup=0.8, hangup_window=5)
    for i, s in enumerate([0.3, 0.95, 0.95, 0.95]):
        e.add(i, s)
    # the 3-chunk mean (0.95) is above hang-up, but only 4 chunks back it: still suspicious
    assert e.verdict == "suspicious" and e.evidence == pytest.approx(0.95)
    e.add(4, 0.95)  # 5-chunk mean 0.82
    assert e.verdict == "spoof" and e.hangup_evidence == pytest.approx(0.82)
    e.add(5, 0.3)  # 5-chunk mean (4 * 0.95 + 0.3) / 5 = 0.82: still spoof
    assert e.verdict == "spoof"
    e.add(6, 0.3)  # 5-chunk mean (3 * 0.95 + 2 * 0.3) / 5 = 0.69; 3-chunk mean 0.52
    assert e.verdict == "suspicious"


def test_a_low_chunk_inside_the_hangup_window_holds_back_a_hangup_the_warn_window_would_allow():
    e = LegEvidence(window=3, min_chunks=2, warn=0.5, hangup=0.8, hangup_window=5)
    for i, s in enumerate([0.1, 0.1, 0.95, 0.95, 0.95]):
        e.add(i, s)
    assert e.evidence == pytest.approx(0.95) and e.hangup_evidence == pytest.approx(0.61)
    assert e.verdict == "suspicious"


def test_new_thresholds_may_bring_a_new_hangup_window_and_keep_the_scores():
    e = ev(window=3, min_chunks=2, warn=0.5, hangup=0.8)
    for i in range(3):
        e.add(i, 0.9)
    assert e.verdict == "spoof"
    e.set_thresholds(0.5, 0.8, hangup_window=5)
    assert list(e.scores) == [0.9, 0.9, 0.9] and e.hangup_window == 5
    e.add(3, 0.9)
    assert e.verdict == "suspicious"  # four chunks cannot back a 5-chunk hang-up decision
    e.add(4, 0.9)
    assert e.verdict == "spoof"
    with pytest.raises(ValueError):
        e.set_thresholds(0.5, 0.8, hangup_window=0)
