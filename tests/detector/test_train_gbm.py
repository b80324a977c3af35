import json

import numpy as np
import pytest

from detector.gbm import GBMDetector
from detector.train_gbm import balanced_weights, train_gbm


class _Interrupt(Exception):
    pass


def _stop_at(round_no):
    def callback(env):
        if env.iteration + 1 == round_no:
            raise _Interrupt
    return callback


def test_balanced_weights_give_each_class_and_voice_equal_mass():
    rows = ([{"label": "bonafide", "speaker": "a"}] * 90 + [{"label": "bonafide", "speaker": "b"}] * 10
            + [{"label": "spoof", "generator": "g", "speaker": "x"}] * 20)
    w = balanced_weights(rows)
    assert w[:90].sum() == pytest.approx(w[90:100].sum())
    assert w[:100].sum() == pytest.approx(w[100:].sum())


def test_training_writes_a_loadable_calibrated_model(tiny_corpus, tmp_path):
    cal = train_gbm(tiny_corpus, tmp_path / "models", tmp_path / "run", rounds=60, checkpoint_every=10,
                    early_stopping=1000)
    t = cal["thresholds"]
    assert t["far_0_1pct"] >= t["far_1pct"]
    det = GBMDetector.load(tmp_path / "models")
    from detector.corpus.manifest import load_chunks, load_manifest

    rows = [r for r in load_manifest(tiny_corpus) if r["split"] == "eval"]
    scores = det.score(list(load_chunks(tiny_corpus, rows)))
    labels = np.array([r["label"] == "spoof" for r in rows])
    # unseen speaker and unseen espeak language: still separable on this easy pair
    assert scores[labels].mean() > scores[~labels].mean() + 0.3
    explanation = det.explain(list(load_chunks(tiny_corpus, rows[:2])))
    assert len(explanation) == 2 and len(explanation[0]) == 3


def test_interrupted_training_resumes_from_its_checkpoint(tiny_corpus, tmp_path):
    with pytest.raises(_Interrupt):
        train_gbm(tiny_corpus, tmp_path / "models", tmp_path / "run", rounds=60, checkpoint_every=10,
                  early_stopping=1000, callbacks=[_stop_at(35)])
    assert (tmp_path / "run" / "gbm.ckpt.txt").is_file()
    assert not (tmp_path / "models" / "gbm.txt").exists()
    cal = train_gbm(tiny_corpus, tmp_path / "models", tmp_path / "run", rounds=60, checkpoint_every=10,
                    early_stopping=1000)
    assert cal["resumed_from_round"] == 30
    saved = json.loads((tmp_path / "models" / "gbm.calibration.json").read_text())
    assert saved["best_iteration"] == 60
    assert not (tmp_path / "run" / "gbm.ckpt.txt").exists()
