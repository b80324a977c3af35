import numpy as np
import pytest

from detector.corpus.manifest import load_manifest
from detector.features import feature_group, feature_names
from detector.lofo import feature_mask_without, run_lofo, speaker_folds
from detector.train_gbm import fit_model


def test_speaker_folds_cover_every_bona_fide_group_once_and_balance_chunks():
    rows = ([{"label": "bonafide", "speaker": "a"}] * 50 + [{"label": "bonafide", "speaker": "b"}] * 30
            + [{"label": "bonafide", "speaker": "c"}] * 20 + [{"label": "spoof", "speaker": "tts"}] * 99)
    folds = speaker_folds(rows, 2)
    assert sorted(s for f in folds for s in f) == ["a", "b", "c"]
    assert sorted(map(sorted, folds)) == [["a"], ["b", "c"]]



def test_speaker_folds_keep_groups_that_may_share_a_person_in_one_fold():
    # klettres_da and joe_dalton are tied in splits.SAME_SPLIT (a Tux Paint reader may have recorded the
    # KLettres clips too): dealt by size alone they would land in different folds
    rows = ([{"label": "bonafide", "group": "joe_dalton"}] * 50 + [{"label": "bonafide", "group": "big"}] * 60
            + [{"label": "bonafide", "group": "klettres_da"}] * 20 + [{"label": "bonafide", "group": "c"}] * 30)
    folds = speaker_folds(rows, 2)
    assert sorted(s for f in folds for s in f) == ["big", "c", "joe_dalton", "klettres_da"]
    assert any({"joe_dalton", "klettres_da"} <= set(f) for f in folds)
    assert sorted(map(sorted, folds)) == [["big", "c"], ["joe_dalton", "klettres_da"]]

def test_lofo_reports_every_family_held_out(tiny_corpus, tmp_path):
    summary = run_lofo(tiny_corpus, tmp_path, rounds=20, n_speaker_folds=3)
    families = {r["generator"] for r in load_manifest(tiny_corpus) if r["label"] == "spoof"}
    assert {f["family"] for f in summary["families"]} == families
    assert 0.0 <= summary["mean_eer"] <= summary["worst_eer"] <= 1.0
    report = (tmp_path / "lofo.md").read_text()
    assert all(f in report for f in families)
    # false alarms per held-out speaker, per chunk and on the live policy's rolling windows
    for v in summary["speaker_far"].values():
        assert 0.0 <= v["far_hangup"] <= v["far_warn"] <= 1.0
        assert 0.0 <= v["policy_far_hangup"] <= 1.0 and 0.0 <= v["policy_far_warn"] <= 1.0
    assert "live policy at hangup" in report


def test_feature_mask_without_drops_exactly_the_named_groups():
    mask = feature_mask_without(["bispec", "lpc"])
    groups = np.array([feature_group(n) for n in feature_names()])
    assert not mask[np.isin(groups, ["bispec", "lpc"])].any()
    assert mask[~np.isin(groups, ["bispec", "lpc"])].all()
    with pytest.raises(ValueError, match="unknown feature group"):
        feature_mask_without(["nosuchgroup"])


def test_feature_mask_without_a_prefix_drops_only_the_features_that_start_with_it():
    names = np.array(feature_names())
    mask = feature_mask_without(["bispec_phase"])
    phase = np.char.startswith(names, "bispec_phase_")
    assert phase.sum() >= 4
    assert not mask[phase].any()
    assert mask[~phase].all()
    with pytest.raises(ValueError, match="bispec_nosuch"):
        feature_mask_without(["bispec_nosuch"])


def test_rawboost_copies_are_cached_reproducible_and_differ_from_the_clean_features(tiny_corpus, tmp_path):
    import shutil

    from detector.featcache import corpus_features

    rows = load_manifest(tiny_corpus)[:12]
    clean = corpus_features(tiny_corpus, rows)
    aug = corpus_features(tiny_corpus, rows, augment="rawboost")
    assert aug.shape == clean.shape and not np.allclose(aug, clean)
    cached = sorted(p.name for p in (tiny_corpus / "features").glob("*rawboost*.npy"))
    assert len(cached) == 1
    shutil.rmtree(tiny_corpus / "features")  # recomputed from scratch: the same perturbations
    np.testing.assert_array_equal(corpus_features(tiny_corpus, rows, augment="rawboost"), aug)
    channel = corpus_features(tiny_corpus, rows, augment="channel")
    assert channel.shape == clean.shape and not np.allclose(channel, clean) and not np.allclose(channel, aug)
    with pytest.raises(ValueError, match="unknown augmentation"):
        corpus_features(tiny_corpus, rows, augment="nosuch")


def test_the_invert_augmentation_extracts_features_of_the_negated_chunks(tiny_corpus, monkeypatch):
    from detector import featcache
    from detector.corpus.manifest import load_chunks

    rows = load_manifest(tiny_corpus)[:6]
    seen = []
    monkeypatch.setattr(featcache, "extract_matrix", lambda chunks: seen.append(chunks) or np.zeros((len(chunks), 1)))
    featcache._features_of_paths((str(tiny_corpus), [r["path"] for r in rows], "invert"))
    np.testing.assert_array_equal(seen[0], -load_chunks(tiny_corpus, rows))


def test_inverted_copies_have_the_features_of_the_chunks_as_recorded(tiny_corpus):
    """Schema 3 takes every chunk upright, so a corpus heard upside down has the same feature matrix."""
    from detector.featcache import corpus_features

    rows = load_manifest(tiny_corpus)[:6]
    np.testing.assert_array_equal(corpus_features(tiny_corpus, rows, augment="invert"),
                                  corpus_features(tiny_corpus, rows))


def test_lofo_with_rawboost_copies_reports_every_family(tiny_corpus):
    summary = run_lofo(tiny_corpus, None, rounds=20, n_speaker_folds=3, augment="rawboost")
    families = {r["generator"] for r in load_manifest(tiny_corpus) if r["label"] == "spoof"}
    assert {f["family"] for f in summary["families"]} == families
    assert 0.0 <= summary["mean_eer"] <= summary["worst_eer"] <= 1.0


def test_excluded_family_never_trains_is_not_held_out_and_leaves_the_other_folds_alone(tiny_corpus):
    rows = load_manifest(tiny_corpus)
    families = sorted({r["generator"] for r in rows if r["label"] == "spoof"})
    full = run_lofo(tiny_corpus, None, rounds=5, n_speaker_folds=3)
    without = run_lofo(tiny_corpus, None, rounds=5, n_speaker_folds=3, exclude_families=(families[0],))
    assert {f["family"] for f in without["families"]} == set(families[1:])
    assert without["excluded_families"] == [families[0]]
    speakers = {f["family"]: f["held_out_speakers"] for f in full["families"]}
    assert all(f["held_out_speakers"] == speakers[f["family"]] for f in without["families"])
    with pytest.raises(ValueError, match="unknown generator family"):
        run_lofo(tiny_corpus, None, rounds=5, exclude_families=("nosuch",))


def test_excluded_and_train_only_speaker_groups_are_never_held_out_and_give_the_same_folds(tiny_corpus):
    from detector.train_gbm import speaker_group

    rows = load_manifest(tiny_corpus)
    bona = sorted({speaker_group(r) for r in rows if r["label"] == "bonafide"})
    group = bona[0]
    kept = run_lofo(tiny_corpus, None, rounds=5, n_speaker_folds=2, train_only_groups=(group,))
    gone = run_lofo(tiny_corpus, None, rounds=5, n_speaker_folds=2, exclude_groups=(group,))
    for summary in (kept, gone):
        held = {s for f in summary["families"] for s in f["held_out_speakers"]}
        assert group not in held and held  # the other groups are still held out
        assert group not in summary["speaker_far"]
    # same test folds in both runs: only the training side differs (on this tiny corpus a fold can lose
    # its last training bona fide speaker without the group, and is then skipped)
    held_kept = {f["family"]: f["held_out_speakers"] for f in kept["families"]}
    held_gone = {f["family"]: f["held_out_speakers"] for f in gone["families"]}
    assert held_gone and all(held_kept[fam] == spk for fam, spk in held_gone.items())
    assert kept["train_only_groups"] == [group] and gone["excluded_groups"] == [group]
    with pytest.raises(ValueError, match="unknown speaker group"):
        run_lofo(tiny_corpus, None, rounds=5, exclude_groups=("nosuch",))


def test_extra_feature_columns_reach_every_fold(tiny_corpus):
    def label_column(corpus_dir, rows):  # a perfect cue: every held-out family must then be separated
        return np.array([[float(r["label"] != "bonafide")] for r in rows])

    summary = run_lofo(tiny_corpus, None, rounds=20, n_speaker_folds=3, extra_features=label_column,
                       feature_mask=np.zeros(len(feature_names()), dtype=bool),
                       params={"min_data_in_leaf": 2, "min_data_in_bin": 1})  # a tiny corpus: small folds
    assert summary["worst_eer"] == 0.0
    with pytest.raises(ValueError, match="augment"):
        run_lofo(tiny_corpus, None, rounds=5, augment="rawboost", extra_features=label_column)


def test_crossed_folds_hold_each_family_out_against_every_speaker_fold(tiny_corpus, tmp_path):
    single = run_lofo(tiny_corpus, None, rounds=5, n_speaker_folds=3)
    crossed = run_lofo(tiny_corpus, tmp_path, rounds=5, n_speaker_folds=3, cross_folds=True)
    assert {f["family"] for f in crossed["families"]} == {f["family"] for f in single["families"]}
    for fam in crossed["families"]:
        assert sorted(f["fold"] for f in fam["by_fold"]) == [0, 1, 2]
        assert fam["eer"] == pytest.approx(np.mean([f["eer"] for f in fam["by_fold"]]))
        held = [f["held_out_speakers"] for f in fam["by_fold"]]
        assert not set(held[0]) & set(held[1])  # each fold its own voices
        # the uncrossed run's one fold for this family is among the crossed ones, with the same result
        one = next(f for f in single["families"] if f["family"] == fam["family"])
        same = next(f for f in fam["by_fold"] if f["held_out_speakers"] == one["held_out_speakers"])
        assert same["eer"] == pytest.approx(one["eer"])
    report = (tmp_path / "lofo.md").read_text()
    assert "EER by speaker fold" in report and "## Speaker folds" in report
    assert all(0.0 <= fam["miss_hangup"] <= 1.0 for fam in crossed["families"])
    assert "missed at hang-up" in report


def test_per_speaker_thresholds_change_no_score_and_say_how_they_were_set(tiny_corpus):
    pooled = run_lofo(tiny_corpus, None, rounds=5, n_speaker_folds=3)
    fair = run_lofo(tiny_corpus, None, rounds=5, n_speaker_folds=3, per_speaker_far=True)
    assert [f["eer"] for f in fair["families"]] == [f["eer"] for f in pooled["families"]]  # scores unchanged
    assert fair["thresholds_far_over"] == "speakers" and pooled["thresholds_far_over"] == "chunks"
    assert set(fair["speaker_far"]) == set(pooled["speaker_far"])


def test_lofo_with_a_seed_ensemble_trains_ensembles_in_every_fold_and_says_so(tiny_corpus, tmp_path, monkeypatch):
    import detector.lofo as lofo

    single = run_lofo(tiny_corpus, None, rounds=10, n_speaker_folds=3)
    members = []

    def recording_fit(*args, **kwargs):
        model = fit_model(*args, **kwargs)
        members.append((kwargs.get("n_seeds"), model.booster.num_trees()))
        return model

    monkeypatch.setattr(lofo, "fit_model", recording_fit)
    ensemble = run_lofo(tiny_corpus, tmp_path, rounds=10, n_speaker_folds=3, n_seeds=2)
    assert members and all(n == 2 and trees == 20 for n, trees in members)
    assert ensemble["n_seeds"] == 2
    assert [f["family"] for f in ensemble["families"]] == [f["family"] for f in single["families"]]
    assert "the mean of 2 boosters" in (tmp_path / "lofo.md").read_text()
