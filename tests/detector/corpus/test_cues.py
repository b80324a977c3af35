"""The label must not be predictable from trivial cues (level, duration, leading silence, noise floor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.corpus.cues import auc, audit, cue_auc, trivial_features
from detector.corpus.manifest import load_manifest


def test_auc_and_logistic_regression_detect_a_real_cue() -> None:
    # the audit must be able to fail: a level cue is found when it exists
    rng = np.random.default_rng(0)
    n = 400
    labels = (np.arange(n) % 2).astype(float)
    feats = rng.standard_normal((n, 3))
    feats[:, 1] += 1.5 * labels
    groups = [str(i) for i in range(n)]
    assert cue_auc(feats, labels, groups) > 0.8
    assert abs(cue_auc(rng.standard_normal((n, 3)), labels, groups) - 0.5) < 0.1
    assert auc(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 0, 1, 1])) == 1.0


def test_trivial_features_see_level_and_leading_silence() -> None:
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    quiet = x * 0.1
    late = x.copy()
    late[:4000] *= 0.001
    f, fq, fl = trivial_features(x), trivial_features(quiet), trivial_features(late)
    assert abs((f[0] - fq[0]) - 20) < 0.5
    assert fl[3] >= 0.45 and f[3] == 0


def test_label_not_predictable_from_trivial_cues(small_corpus: Path) -> None:
    rows = load_manifest(small_corpus)
    overall, single = audit(small_corpus, rows)
    assert overall < 0.65, (overall, single)
