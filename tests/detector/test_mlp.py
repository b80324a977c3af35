import numpy as np
import pytest

from detector.mlp import MLP, Blend, fit_mlp


def _two_classes(n=600, dims=12, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scale = rng.uniform(0.1, 50, dims)
    x = rng.normal(size=(n, dims)) * scale + rng.uniform(-100, 100, dims)
    x[:, 0] += 4 * scale[0] * y  # one informative column, its scale unlike the others'
    x[:, 1] += 5 * y * x[:, 2] / (np.abs(x[:, 2]).mean() + 1e-9)
    return x, y


def test_the_numpy_forward_pass_matches_scikit_learns_prediction():
    from sklearn.neural_network import MLPClassifier

    x, y = _two_classes()
    mlp = fit_mlp(x, y, seed=3)
    clf = MLPClassifier((64,), alpha=1e-2, max_iter=60, early_stopping=True, random_state=3).fit(mlp.scale(x), y)
    p = clf.predict_proba(mlp.scale(x))[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-mlp.logit(x))), p, rtol=1e-6, atol=1e-9)


def test_the_mlp_learns_a_separable_feature_and_survives_a_save_and_load(tmp_path):
    x, y = _two_classes()
    mlp = fit_mlp(x, y)
    auc_like = (mlp.logit(x[y == 1])[:, None] > mlp.logit(x[y == 0])[None, :]).mean()
    assert auc_like > 0.9
    mlp.save(tmp_path / "m.npz")
    again = MLP.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.logit(x), mlp.logit(x))


def test_missing_and_wild_feature_values_give_finite_scores():
    x, y = _two_classes()
    mlp = fit_mlp(x, y)
    bad = x[:3].copy()
    bad[0, 0], bad[1, 3], bad[2, :] = np.nan, 1e30, -np.inf
    assert np.all(np.isfinite(mlp.logit(bad)))


def test_a_truncated_mlp_file_is_refused(tmp_path):
    x, y = _two_classes()
    m = fit_mlp(x, y)
    MLP(m.median[:-1], m.iqr[:-1], m.w1, m.b1, m.w2, m.b2).save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="inconsistent"):
        MLP.load(tmp_path / "m.npz")


def test_the_blend_ranks_like_the_mean_of_the_two_z_scores():
    rng = np.random.default_rng(1)
    g, m = rng.normal(size=500) * 3, rng.normal(size=500) * 0.2 + 1
    bona_g, bona_m = rng.normal(size=200) * 3 - 1, rng.normal(size=200) * 0.2
    blend = Blend.from_bonafide(bona_g, bona_m)
    z = (g - bona_g.mean()) / bona_g.std() + (m - bona_m.mean()) / bona_m.std()
    assert np.array_equal(np.argsort(blend.logit(g, m)), np.argsort(z))
    p = blend.probability(g, m)
    assert np.all((p > 0) & (p < 1))
    assert Blend.from_json(blend.to_json()) == blend
