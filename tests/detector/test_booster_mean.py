import lightgbm as lgb
import numpy as np
import pytest

from detector.booster_mean import mean_booster

PARAMS = {"objective": "binary", "verbose": -1, "num_threads": 1, "bagging_fraction": 0.7, "bagging_freq": 1,
          "feature_fraction": 0.6, "num_leaves": 7}


def _data(n_features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, n_features))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(scale=0.5, size=600) > 0).astype(int)
    return x, y


def _boosters(x, y, seeds, rounds=30):
    return [lgb.train(dict(PARAMS, seed=s), lgb.Dataset(x, y), num_boost_round=rounds) for s in seeds]


def test_the_merged_booster_scores_the_mean_log_odds_of_its_members():
    x, y = _data()
    members = _boosters(x, y, [1, 2, 3])
    merged = mean_booster(members)
    want = np.mean([b.predict(x, raw_score=True) for b in members], axis=0)
    assert merged.num_trees() == sum(b.num_trees() for b in members)
    assert np.allclose(merged.predict(x, raw_score=True), want, atol=1e-9)
    # the seeds really differ, so the mean is not just any member's score
    assert np.abs(members[0].predict(x, raw_score=True) - want).max() > 1e-3
    assert np.allclose(merged.predict(x), 1.0 / (1.0 + np.exp(-want)), atol=1e-9)


def test_the_merged_explanations_are_the_members_mean_contributions():
    x, y = _data()
    members = _boosters(x, y, [4, 5])
    contrib = mean_booster(members).predict(x[:50], pred_contrib=True)
    want = np.mean([b.predict(x[:50], pred_contrib=True) for b in members], axis=0)
    assert np.allclose(contrib, want, atol=1e-9)


def test_the_merged_booster_survives_a_save_and_load_round_trip(tmp_path):
    x, y = _data()
    members = _boosters(x, y, [1, 2])
    mean_booster(members).save_model(str(tmp_path / "m.txt"))
    loaded = lgb.Booster(model_file=str(tmp_path / "m.txt"))
    want = np.mean([b.predict(x, raw_score=True) for b in members], axis=0)
    assert np.allclose(loaded.predict(x, raw_score=True), want, atol=1e-9)


def test_one_member_is_returned_unchanged_and_none_is_an_error():
    x, y = _data()
    (b,) = _boosters(x, y, [1])
    assert mean_booster([b]) is b
    with pytest.raises(ValueError):
        mean_booster([])


def test_boosters_on_different_features_are_refused():
    x, y = _data()
    x8, y8 = _data(n_features=8)
    with pytest.raises(ValueError, match="only seeds may differ"):
        mean_booster(_boosters(x, y, [1]) + _boosters(x8, y8, [1]))


def test_linear_trees_are_refused_because_scaling_leaves_would_not_scale_their_slopes():
    x, y = _data()
    members = [lgb.train(dict(PARAMS, seed=s, linear_tree=True), lgb.Dataset(x, y), num_boost_round=5)
               for s in (1, 2)]
    with pytest.raises(ValueError, match="linear trees"):
        mean_booster(members)
