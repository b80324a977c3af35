"""GBM + WavLM fusion: the logistic fit, the fused detector, fitting from a models dir on dev."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from detector.fusion import FusedDetector, _group_folds, fit_logistic, to_logit
from detector.scoring import ModelError, Thresholds


def test_logistic_fit_recovers_known_weights():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 2))
    true_w, true_b = np.array([1.5, -0.7]), 0.3
    y = (rng.random(20000) < 1 / (1 + np.exp(-(x @ true_w + true_b)))).astype(int)
    w, b = fit_logistic(x, y, l2=0.0)
    assert np.allclose(w, true_w, atol=0.08) and abs(b - true_b) < 0.08


def test_weights_balance_the_classes():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-1, 1, 900), rng.normal(1, 1, 100)])[:, None]
    y = np.r_[np.zeros(900), np.ones(100)]
    _, b_plain = fit_logistic(x, y)
    _, b_bal = fit_logistic(x, y, weights=np.where(y == 1, 9.0, 1.0))
    assert b_plain < -1.0 and abs(b_bal) < 0.3  # balanced: the boundary sits between the classes


def test_fused_score_follows_the_stronger_input():
    class Fixed:
        def __init__(self, p):
            self.p = np.asarray(p)

        def score(self, chunks):
            return self.p[: len(chunks)]

    det = FusedDetector(gbm=Fixed([0.5, 0.5]), wavlm=Fixed([0.1, 0.9]), weights=np.array([0.2, 2.0]), bias=0.0,
                        thresholds=Thresholds(0.5, 0.6, 0.7), version="t")
    parts = det.score_parts([np.zeros(16000)] * 2)
    assert parts["fused"][0] < 0.1 < 0.9 < parts["fused"][1]
    assert np.allclose(to_logit(np.array([0.5])), 0.0)
    assert det.score([]).shape == (0,)


def test_group_folds_keep_each_speaker_and_generator_in_one_fold():
    rows = [{"label": "bonafide", "speaker": f"s{i % 7}", "generator": ""} for i in range(70)] + \
           [{"label": "spoof", "speaker": "x", "generator": f"g{i % 6}"} for i in range(60)]
    folds = _group_folds(rows, 5)
    for key in ("s3", "g2"):
        members = [f for r, f in zip(rows, folds, strict=True) if key in (r["speaker"], r["generator"])]
        assert len(set(members)) == 1


def test_fusion_fitted_on_dev_loads_and_checks_its_input_versions(tiny_corpus, tiny_models, tmp_path):
    pytest.importorskip("torch")
    from detector.fusion import fit_fusion
    from detector.train_wavlm import TrainSettings, train_wavlm

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models, ignore=shutil.ignore_patterns("run"))
    tiny = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
            "conv_dim": (16, 16, 16, 16, 16, 32), "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 4}
    train_wavlm(tiny_corpus, models, tmp_path / "run", TrainSettings(
        steps=4, batch_size=4, eval_every=2, warmup_steps=1, threads=1, dev_max=24, config_overrides=tiny))
    cal = fit_fusion(tiny_corpus, models)
    assert set(cal["thresholds"]) == {"eer", "far_1pct", "far_0_1pct"}
    assert cal["thresholds"]["far_0_1pct"] >= cal["thresholds"]["far_1pct"]
    assert set(cal["weights"]) == {"gbm", "wavlm"}
    det = FusedDetector.load(models)
    from detector.train_gbm import EVIDENCE_WINDOW, HANGUP_WINDOW

    # warn and hang-up measured on the live policy's evidence windows, as the GBM's thresholds are
    assert (det.thresholds.warn_window, det.thresholds.hangup_window) == (EVIDENCE_WINDOW, HANGUP_WINDOW)
    from detector.corpus.manifest import load_chunks, load_manifest

    rows = [r for r in load_manifest(tiny_corpus) if r["split"] == "dev"]
    parts = det.score_parts(list(load_chunks(tiny_corpus, rows[:6])))
    assert parts["fused"].shape == (6,) and np.all((parts["fused"] > 0) & (parts["fused"] < 1))
    # the GBM on the tiny corpus separates dev well, so the fusion must lean on it
    assert cal["weights"]["gbm"] > 0
    # a retrained input model makes the fusion stale: refuse to load it
    wcal = json.loads((models / "wavlm.calibration.json").read_text())
    wcal["version"] = "wavlm-other"
    (models / "wavlm.calibration.json").write_text(json.dumps(wcal))
    with pytest.raises(ModelError, match="refit"):
        FusedDetector.load(models)
