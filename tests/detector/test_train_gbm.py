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



def test_balance_alpha_moves_from_equal_voices_to_equal_chunks():
    rows = ([{"label": "bonafide", "speaker": "a"}] * 90 + [{"label": "bonafide", "speaker": "b"}] * 10
            + [{"label": "spoof", "generator": "g", "speaker": "x"}] * 20)
    half = balanced_weights(rows, 0.5)
    # a voice's mass ∝ sqrt(chunks): 90 chunks weigh 3x as much as 10, not 1x (alpha 0) or 9x (alpha 1)
    assert half[:90].sum() / half[90:100].sum() == pytest.approx(3.0)
    assert half[:100].sum() == pytest.approx(half[100:].sum())
    flat = balanced_weights(rows, 1.0)
    assert np.allclose(flat[:100], flat[0])

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
    assert (tmp_path / "run" / "gbm.ckpt-7.txt").is_file()
    assert not (tmp_path / "models" / "gbm.txt").exists()
    cal = train_gbm(tiny_corpus, tmp_path / "models", tmp_path / "run", rounds=60, checkpoint_every=10,
                    early_stopping=1000)
    assert cal["resumed_from_round"] == 30
    saved = json.loads((tmp_path / "models" / "gbm.calibration.json").read_text())
    assert saved["best_iteration"] == 60
    assert not list((tmp_path / "run").glob("gbm.*"))  # checkpoint, finished member and state cleaned up


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


def test_warn_and_hangup_thresholds_are_set_on_the_policys_rolling_evidence_per_recording():
    from detector.train_gbm import calibrate, evidence_scores

    # one bona fide recording with a single loud chunk among quiet ones, one spoof recording
    rows = ([{"job": "b1", "start_s": str(2 * i), "path": f"b1-{i}"} for i in range(5)]
            + [{"job": "s1", "start_s": str(2 * i), "path": f"s1-{i}"} for i in range(4)])
    labels = np.array([0] * 5 + [1] * 4)
    scores = np.array([0.1, 0.1, 0.9, 0.1, 0.1, 0.8, 0.9, 0.7, 0.9])
    ev_y, ev = evidence_scores(rows, labels, scores, window=3)
    assert ev_y.tolist() == [0, 0, 0, 1, 1]
    assert np.allclose(ev, [1.1 / 3, 1.1 / 3, 1.1 / 3, 0.8, 2.5 / 3])
    # the lone 0.9 chunk sets the per-chunk threshold; averaged over the window it is 0.37
    assert calibrate(labels, scores)["far_1pct"] > 0.8
    assert calibrate(labels, scores, rows)["far_1pct"] < 0.4


def test_hangup_threshold_is_measured_on_the_longer_hangup_window_and_the_calibration_says_so(tmp_path):
    from detector.scoring import Thresholds
    from detector.train_gbm import HANGUP_WINDOW, calibrate, evidence_windows

    # a bona fide recording of 12 chunks with two loud chunks three apart: the 3-chunk mean peaks at 0.63,
    # the 5-chunk mean at 0.46, so the hang-up threshold (taken on 5-chunk windows) sits lower
    bona = [0.1] * 12
    bona[4] = bona[7] = 0.9
    rows = [{"job": "b1", "start_s": str(2 * i), "path": f"b1-{i}"} for i in range(12)]
    rows += [{"job": "s1", "start_s": str(2 * i), "path": f"s1-{i}"} for i in range(6)]
    labels = np.array([0] * 12 + [1] * 6)
    scores = np.array(bona + [0.95] * 6)
    th = calibrate(labels, scores, rows)
    assert (th["warn_window"], th["hangup_window"]) == (3, HANGUP_WINDOW) and HANGUP_WINDOW > 3
    assert th["far_0_1pct"] == pytest.approx((0.9 * 2 + 0.1 * 3) / 5, abs=1e-6)
    per_chunk = calibrate(labels, scores)
    assert (per_chunk["warn_window"], per_chunk["hangup_window"]) == (1, 1)

    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"thresholds": {"eer": 0.5, "far_1pct": 0.9, "far_0_1pct": 0.99},
                               "evidence_windows": evidence_windows(th)}))
    t = Thresholds.from_calibration(cal)
    assert (t.warn_window, t.hangup_window) == (3, HANGUP_WINDOW)
    cal.write_text(json.dumps({"thresholds": {"eer": 0.5, "far_1pct": 0.9, "far_0_1pct": 0.99}}))
    assert Thresholds.from_calibration(cal).hangup_window is None  # an older calibration: the policy decides


def test_training_with_an_mlp_ships_a_blend_that_scores_differently_from_the_trees(tiny_corpus, tmp_path):
    from detector.corpus.manifest import load_manifest
    from detector.featcache import corpus_features
    from detector.scoring import ModelError

    cal = train_gbm(tiny_corpus, tmp_path / "models", tmp_path / "run", rounds=30, pooled=True, oof_folds=3,
                    mlp_seed=0)
    assert cal["blend"]["gbm_logit_sd"] > 0 and cal["blend"]["mlp_logit_sd"] > 0
    det = GBMDetector.load(tmp_path / "models")
    assert det.mlp is not None
    rows = [r for r in load_manifest(tiny_corpus) if r["split"] == "eval"]
    x = corpus_features(tiny_corpus, rows)
    labels = np.array([r["label"] == "spoof" for r in rows])
    blended, trees = det.score_features(x), det.booster.predict(x)
    assert not np.allclose(blended, trees)
    assert blended[labels].mean() > blended[~labels].mean() + 0.3
    (tmp_path / "models" / "gbm.mlp.npz").unlink()
    with pytest.raises(ModelError, match="gbm.mlp.npz"):
        GBMDetector.load(tmp_path / "models")


def test_training_without_an_mlp_removes_a_stale_mlp_file(tiny_corpus, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "gbm.mlp.npz").write_bytes(b"stale")
    cal = train_gbm(tiny_corpus, tmp_path / "models", tmp_path / "run", rounds=20, early_stopping=1000)
    assert "blend" not in cal and not (tmp_path / "models" / "gbm.mlp.npz").exists()
    assert GBMDetector.load(tmp_path / "models").mlp is None


def test_retraining_keeps_the_hand_written_notes_of_the_previous_card(tiny_corpus, tmp_path):
    models = tmp_path / "models"
    train_gbm(tiny_corpus, models, tmp_path / "run", rounds=20, checkpoint_every=10, early_stopping=1000)
    card = models / "gbm.md"
    first = card.read_text().splitlines()[0].split("`")[1]
    notes = "\n## Results and changes (hand-written, 2026-12-06)\n\nEER fell by 1.6 points.\n"
    card.write_text(card.read_text() + notes)
    train_gbm(tiny_corpus, models, tmp_path / "run2", rounds=20, checkpoint_every=10, early_stopping=1000)
    text = card.read_text()
    assert text.startswith("# Model card: GBM detector")
    assert f"## Notes kept from the card of `{first}`" in text
    assert "### Results and changes (hand-written, 2026-12-06)" in text and "EER fell by 1.6 points." in text
    # a third training keeps the notes once, still attributed to the model they were written for
    train_gbm(tiny_corpus, models, tmp_path / "run3", rounds=20, checkpoint_every=10, early_stopping=1000)
    text = card.read_text()
    assert text.count("EER fell by 1.6 points.") == 1
    assert f"### Notes kept from the card of `{first}`" in text


def test_per_speaker_calibration_keeps_a_small_odd_voice_under_the_warn_threshold():
    from detector.train_gbm import calibrate

    # one large calm voice (300 chunks in 30 recordings) and one small voice whose 10 chunks all score high:
    # pooled over chunks, 1 % of 310 lets 3 of the small voice's windows through; per speaker, none
    rows, scores, labels = [], [], []
    for rec in range(30):
        rows += [{"job": f"big{rec}", "group": "big", "start_s": str(2 * i), "path": f"big{rec}-{i}"}
                 for i in range(10)]
        scores += list(np.linspace(0.05, 0.3, 10))
    rows += [{"job": f"odd{rec}", "group": "odd", "start_s": "0", "path": f"odd{rec}"} for rec in range(10)]
    scores += list(np.linspace(0.8, 0.9, 10))
    labels = [0] * len(rows)
    rows += [{"job": "s", "group": "tts", "start_s": str(2 * i), "path": f"s-{i}"} for i in range(10)]
    scores += [0.99] * 10
    labels = np.array(labels + [1] * 10)
    scores = np.array(scores)
    pooled = calibrate(labels, scores, rows, policy_windows=False)
    fair = calibrate(labels, scores, rows, per_speaker=True, policy_windows=False)
    odd = scores[300:310]
    assert (odd >= pooled["far_1pct"]).sum() == 3
    assert (odd >= fair["far_1pct"]).sum() == 0
    assert fair["far_averaged_over"] == "speakers" and pooled["far_averaged_over"] == "chunks"
    with pytest.raises(ValueError):
        calibrate(labels, scores, None, per_speaker=True)


def test_a_seed_ensemble_ships_one_model_scoring_the_members_mean(tiny_corpus, tmp_path):
    from detector.corpus.manifest import load_manifest
    from detector.featcache import corpus_features

    cal = train_gbm(tiny_corpus, tmp_path / "models", tmp_path / "run", rounds=30, pooled=True, oof_folds=3,
                    seed=3, n_seeds=3)
    assert cal["ensemble"]["seeds"] == [3, 4, 5] and cal["ensemble"]["rounds"] == [30, 30, 30]
    assert "The mean of 3 boosters" in (tmp_path / "models" / "gbm.md").read_text()
    assert not list((tmp_path / "run").glob("gbm.*"))  # members are removed once the model is saved
    rows = [r for r in load_manifest(tiny_corpus) if r["split"] == "eval"]
    x = corpus_features(tiny_corpus, rows)
    singles = []
    for seed in (3, 4, 5):
        one = train_gbm(tiny_corpus, tmp_path / f"one{seed}", tmp_path / f"run{seed}", rounds=30, pooled=True,
                        oof_folds=3, seed=seed)
        assert "ensemble" not in one
        singles.append(GBMDetector.load(tmp_path / f"one{seed}").booster.predict(x, raw_score=True))
    shipped = GBMDetector.load(tmp_path / "models")
    merged = shipped.booster.predict(x, raw_score=True)
    assert np.allclose(merged, np.mean(singles, axis=0), atol=1e-9)
    assert not np.allclose(singles[0], singles[1])  # the seeds really draw different models
    contrib = shipped.booster.predict(x, pred_contrib=True)
    assert np.allclose(contrib.sum(axis=1), merged)  # explanations add up to the ensemble's log-odds


@pytest.mark.parametrize("stop_member", [1, 2])
def test_an_interrupted_ensemble_keeps_its_finished_members_and_resumes_the_current_one(tiny_corpus, tmp_path,
                                                                                         capsys, stop_member):
    calls = []

    def stop_in_member(env):
        calls.append(env.iteration)
        if env.iteration + 1 == 35 and calls.count(34) == stop_member:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_gbm(tiny_corpus, tmp_path / "models", tmp_path / "run", rounds=60, checkpoint_every=10,
                  early_stopping=1000, n_seeds=3, callbacks=[stop_in_member])
    seed = 6 + stop_member
    assert (tmp_path / "run" / f"gbm.ckpt-{seed}.txt").is_file()
    assert not (tmp_path / "run" / f"gbm.member-{seed}.txt").exists()
    capsys.readouterr()
    cal = train_gbm(tiny_corpus, tmp_path / "models", tmp_path / "run", rounds=60, checkpoint_every=10,
                    early_stopping=1000, n_seeds=3)
    err = capsys.readouterr().err
    assert f"member {stop_member}/3 (seed {seed}) resuming from" in err
    assert ("member 1/3 (seed 7) already trained" in err) == (stop_member == 2)
    assert cal["resumed_from_round"] == 30 and cal["ensemble"]["seeds"] == [7, 8, 9]
    assert not list((tmp_path / "run").glob("gbm.*"))
    assert GBMDetector.load(tmp_path / "models").booster.num_trees() == sum(cal["ensemble"]["rounds"])
    # the member after the resumed one is the model its seed gives alone (a resumed member's initial score
    # must not leak into the next member's datasets)
    from detector.corpus.manifest import load_manifest
    from detector.featcache import corpus_features

    fresh = train_gbm(tiny_corpus, tmp_path / "fresh", tmp_path / "run_fresh", rounds=60, early_stopping=1000,
                      seed=9)
    x = corpus_features(tiny_corpus, [r for r in load_manifest(tiny_corpus) if r["split"] == "eval"])
    merged = GBMDetector.load(tmp_path / "models").booster
    start = merged.num_trees() - fresh["best_iteration"]
    last_member = 3 * merged.predict(x, start_iteration=start, raw_score=True)
    alone = GBMDetector.load(tmp_path / "fresh").booster.predict(x, raw_score=True)
    assert np.allclose(last_member, alone, atol=1e-6)
