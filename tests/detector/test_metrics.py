import numpy as np
import pytest

from detector.metrics import (
    eer,
    min_dcf,
    policy_evidence,
    policy_outcome,
    rates_at,
    recording_means,
    recordings_in_order,
    threshold_at_far,
)
from plugin.policy import SPOOF, SUSPICIOUS, LegEvidence


def test_eer_is_zero_for_separable_scores_and_half_for_identical():
    labels = np.array([0] * 50 + [1] * 50)
    assert eer(labels, np.r_[np.zeros(50), np.ones(50)])[0] == pytest.approx(0.0)
    assert eer(labels, np.full(100, 0.5))[0] == pytest.approx(0.5, abs=0.01)


def test_eer_matches_known_overlap():
    # bona fide 0..99, spoof 80..179: 20 of 100 overlap -> EER 10 %
    labels = np.array([0] * 100 + [1] * 100)
    scores = np.r_[np.arange(100), np.arange(80, 180)].astype(float)
    value, thr = eer(labels, scores)
    assert value == pytest.approx(0.10, abs=0.01)
    assert 80 <= thr <= 100


def test_threshold_at_far_flags_at_most_that_share_of_bona_fide():
    bona = np.random.default_rng(1).normal(size=10_000)
    for far in (0.01, 0.001):
        t = threshold_at_far(bona, far)
        assert (bona >= t).mean() <= far
        assert (bona >= t).mean() >= far - 0.0005



def test_threshold_at_far_per_speaker_lets_no_small_odd_voice_hide_behind_a_large_easy_one():
    rng = np.random.default_rng(2)
    big, odd = rng.uniform(0.0, 0.5, 1000), rng.uniform(0.9, 0.99, 10)
    bona = np.concatenate([big, odd])
    groups = np.array(["big"] * 1000 + ["odd"] * 10)
    pooled = threshold_at_far(bona, 0.01)
    assert (odd >= pooled).mean() == 1.0  # 10 of 1,010 chunks fit in 1 %: the odd voice is always flagged
    per_speaker = threshold_at_far(bona, 0.01, groups)
    # each voice counts 1/2: one odd chunk (1/10 of its voice) would already be 5 % > 1 %
    assert (odd >= per_speaker).mean() == 0.0
    assert np.mean([(big >= per_speaker).mean(), (odd >= per_speaker).mean()]) <= 0.01
    # with one group it is the pooled threshold
    assert threshold_at_far(big, 0.01, np.zeros(1000)) == threshold_at_far(big, 0.01)

def test_rates_and_min_dcf_penalise_false_alarms():
    labels = np.array([0, 0, 1, 1])
    r = rates_at(labels, np.array([0.1, 0.9, 0.8, 0.2]), 0.5)
    assert (r["fp"], r["fn"], r["accuracy"]) == (1, 1, 0.5)
    assert min_dcf(labels, np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(0.0)


def test_recording_means_average_each_recordings_chunks_and_keep_its_label():
    rows = [{"job": "a", "path": "a0"}, {"job": "b", "path": "b0"}, {"job": "a", "path": "a1"},
            {"job": "", "path": "lone"}]
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.2, 0.5, 0.4])
    rec_labels, means = recording_means(rows, labels, scores)
    got = dict(zip(["a", "b", "lone"], zip(rec_labels.tolist(), means.round(6).tolist(), strict=True), strict=True))
    assert got == {"a": (True, 0.7), "b": (False, 0.2), "lone": (False, 0.4)}


@pytest.mark.parametrize(("window", "hangup_window", "min_chunks"), [(3, 5, 2), (3, 3, 2), (3, 2, 4), (1, 1, 1)])
def test_policy_evidence_replays_the_live_policys_decisions(window, hangup_window, min_chunks):
    rng = np.random.default_rng(window * 100 + hangup_window * 10 + min_chunks)
    for _ in range(50):
        scores = rng.beta(2, 2, size=int(rng.integers(1, 12)))
        warn, hangup = 0.6, 0.7
        leg = LegEvidence(window=window, min_chunks=min_chunks, warn=warn, hangup=hangup,
                          hangup_window=hangup_window)
        verdicts = []
        for i, s in enumerate(scores):
            leg.add(i, float(s))
            verdicts.append(leg.verdict)
        warn_ev, hang_ev = policy_evidence(scores, window, hangup_window, min_chunks)
        assert len(warn_ev) == len(scores) and len(hang_ev) == max(len(scores) - max(min_chunks, hangup_window) + 1, 0)
        assert (SPOOF in verdicts) == bool((hang_ev >= hangup).any())
        assert any(v in (SUSPICIOUS, SPOOF) for v in verdicts) == bool((warn_ev >= warn).any() or
                                                                     (hang_ev >= hangup).any())
        outcome = policy_outcome(scores, warn, hangup, window, hangup_window, min_chunks)
        assert outcome.warned == any(v in (SUSPICIOUS, SPOOF) for v in verdicts)
        assert outcome.hung_up == ((SPOOF in verdicts) if len(scores) >= max(min_chunks, hangup_window) else None)
        if outcome.first_warning is not None:  # the plugin is suspicious (or spoof) from that chunk's verdict on
            assert verdicts[outcome.first_warning - 1] in (SUSPICIOUS, SPOOF)


def test_recordings_in_order_groups_rows_by_recording_in_time_order():
    rows = [{"job": "b", "start_s": 4.0}, {"job": "a", "start_s": 2.0}, {"job": "b", "start_s": 0.0},
            {"job": "a", "start_s": 0.0}, {"call": "x", "job": "", "path": "p", "start_s": 1.0}]
    assert recordings_in_order(rows) == [[2, 0], [3, 1], [4]]
    assert recordings_in_order(rows[:4], key=lambda r: "one") == [[2, 3, 1, 0]]
