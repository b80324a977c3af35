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


def test_pooled_training_calibrates_on_out_of_fold_scores_of_unheard_voices(tiny_corpus, tmp_path):
    from detector.corpus.manifest import load_train_dev
    from detector.oof import fold_ids, train_mask

    train, dev = load_train_dev(tiny_corpus)
    rows = train + dev
    folds = fold_ids(rows, 3)
    for k in range(3):
        fit = train_mask(rows, folds, k)
        held = {r["speaker"] for r, f in zip(rows, folds, strict=True) if f == k and r["label"] == "bonafide"}
        fams = {r["generator"] for r, f in zip(rows, folds, strict=True) if f == k and r["label"] != "bonafide"}
        learnt = [r for r, m in zip(rows, fit, strict=True) if m]
        assert not any(r["speaker"] in held for r in learnt)  # neither the voice nor spoofs made from it
        assert not any(r["generator"] in fams for r in learnt if r["label"] != "bonafide")
    cal = train_gbm(tiny_corpus, tmp_path / "models", tmp_path / "run", rounds=30, pooled=True, oof_folds=3)
    assert cal["best_iteration"] == 30 and cal["calibrated_on"].startswith("out-of-fold")
    assert cal["dev"]["n_bonafide"] == sum(r["label"] == "bonafide" for r in rows)  # every voice scored
    assert cal["thresholds"]["far_0_1pct"] >= cal["thresholds"]["far_1pct"]
    assert "pooled" in (tmp_path / "models" / "gbm.md").read_text()
    from detector.fusion import pooled_gbm_dev_scores

    scores = pooled_gbm_dev_scores(tmp_path / "models", GBMDetector.load(tmp_path / "models"), dev)
    assert scores is not None and scores.shape == (len(dev),) and np.all((scores >= 0) & (scores <= 1))
