"""DPItemItem: ε = ∞ is the non-private EASE (dense numpy reference), the releases and their noise, serving."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from dprec import Interactions
from dprec.datasets import synthetic
from dprec.models import DPItemItem, DPPopularity
from dprec.models.itemitem import default_alpha, ease_weights
from dprec.models.releases import ItemCooccurrence

DELTA = 1e-5


@pytest.fixture(scope="module")
def data():
    return synthetic(200, 60, 4, mean_ratings_per_user=15, rng=3)


def _ease_reference(X: np.ndarray, lam: float) -> np.ndarray:
    """EASE (Steck 2019) in dense numpy: B = I − P diag(1/diag P), P = (XᵀX + λI)⁻¹."""
    G = X.T @ X
    P = np.linalg.inv(G + lam * np.eye(G.shape[0]))
    B = np.eye(G.shape[0]) - P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    return B


def test_epsilon_inf_equals_nonprivate_ease(data):
    m = DPItemItem(epsilon=math.inf, regularization=30.0).fit(data)
    X = (data.matrix.toarray() != 0).astype(float)
    assert m.alpha_ == 1.0 and m.lambda_ == 30.0
    np.testing.assert_array_equal(m.selected_, np.arange(data.n_items))
    B = _ease_reference(X, 30.0)
    np.testing.assert_allclose(m.weights_, B, atol=1e-10)
    # the ranking is x_u B with the user's seen items removed
    users = data.user_ids[:5]
    ids, _ = m.recommend(users, n=5)
    for u, recs in zip(users, ids):
        row = int(np.flatnonzero(data.user_ids == u)[0])
        s = X[row] @ B
        s[X[row] > 0] = -np.inf
        expect = data.item_ids[np.argsort(-s, kind="stable")[:5]]
        assert set(np.asarray(recs).tolist()) == set(expect.tolist())


def test_ease_weights_zero_diagonal():
    rng = np.random.default_rng(0)
    X = (rng.random((50, 12)) < 0.3).astype(float)
    B = ease_weights(X.T @ X, 5.0)
    assert np.all(np.diag(B) == 0)
    np.testing.assert_allclose(B, _ease_reference(X, 5.0), atol=1e-12)


def test_release_noise_and_lambda(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = DPItemItem(epsilon=5.0, delta=DELTA, rng=0).fit(data)
    assert m.alpha_ > 0  # ε·ñ ≈ 1000 ≥ 700: personalised
    rep = m.privacy_report()
    steps = {s["name"]: s for s in rep["steps"]}
    assert set(steps) == {"n_users", "item_counts", "item_cooccurrence"}
    k = m._bounds["k"]
    assert steps["item_cooccurrence"]["sensitivity_l2"] == pytest.approx(math.sqrt(k * (k + 1) / 2))
    sigma = steps["item_cooccurrence"]["sigma"]
    M = len(m.selected_)
    assert m.lambda_ == pytest.approx(m.noise_regularization * sigma * math.sqrt(M) + m.regularization)
    assert rep["verified_epsilon"] <= 5.0 * (1 + 1e-12)


def test_low_signal_falls_back_to_dp_popularity(data):
    """ε·ñ < 700: only the counts are released, with the budget DP popularity gives them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = DPItemItem(epsilon=1.0, delta=DELTA, rng=0).fit(data)
        p = DPPopularity(epsilon=1.0, delta=DELTA, rng=0).fit(data)
    assert m.alpha_ == 0.0 and len(m.selected_) == 0
    steps = {s["name"]: s for s in m.privacy_report()["steps"]}
    assert set(steps) == {"n_users", "item_counts"}
    ps = {s["name"]: s for s in p.privacy_report()["steps"]}
    assert steps["item_counts"]["sigma"] == pytest.approx(ps["item_counts"]["sigma"], rel=1e-12)
    s = m._scores(np.arange(2))
    assert np.all(np.argsort(-s[0], kind="stable") == np.argsort(-m.item_counts_, kind="stable"))


def test_selected_items_are_top_dp_counts(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = DPItemItem(epsilon=1.0, delta=DELTA, n_selected=20, alpha=0.5, rng=0).fit(data)
    top = np.sort(np.argsort(-m.item_counts_, kind="stable")[:20])
    np.testing.assert_array_equal(m.selected_, top)
    assert m.weights_.shape == (20, 20)


def test_alpha_rule_and_popularity_fallback(data):
    assert default_alpha(math.inf, 10.0) == 1.0
    assert default_alpha(0.1, 100.0) == 0.0  # ε·ñ too small: DP popularity
    assert 0 < default_alpha(1.0, 943.0) < default_alpha(2.0, 943.0) < default_alpha(10.0, 943.0) == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = DPItemItem(epsilon=1.0, delta=DELTA, alpha=0.0, rng=0).fit(data)
        p = DPPopularity(epsilon=1.0, delta=DELTA, rng=0).fit(data)
    u = data.user_ids[:3]
    # α = 0 ranks by the released counts alone, like DP popularity (same order of the count vector)
    s = m._scores(np.arange(3))
    assert np.all(np.argsort(-s[0], kind="stable") == np.argsort(-m.item_counts_, kind="stable"))
    assert m.recommend(u, n=5)[0].shape == p.recommend(u, n=5)[0].shape


def test_fold_in_and_export_public(tmp_path, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = DPItemItem(epsilon=4.0, delta=DELTA, rng=0).fit(data)
    path = m.export_public(tmp_path / "pub.npz")
    pub = DPItemItem.load_public(path)
    np.testing.assert_allclose(pub.weights_, m.weights_)
    row = data.matrix[0]
    items = data.item_ids[row.indices]
    pub.fold_in((items, np.ones(len(items))), user=10_000)
    a, _ = pub.recommend(10_000, n=5)
    b, _ = m.recommend(data.user_ids[0], n=5)
    assert list(a) == list(b)


def test_ratings_are_binarised():
    d = synthetic(80, 30, 3, mean_ratings_per_user=8, rng=0)
    rel = ItemCooccurrence("user", k=100, n_selected=30)
    G = rel.matrix(d.matrix, items=np.arange(30), weighted=False)
    X = (d.matrix.toarray() != 0).astype(float)
    np.testing.assert_allclose(G, X.T @ X)
    ones = Interactions.from_csr(d.matrix.copy(), rating_bounds=(1.0, 5.0), public_items=True)
    ones.matrix.data[:] = 1.0
    m1 = DPItemItem(epsilon=math.inf).fit(d)
    m2 = DPItemItem(epsilon=math.inf).fit(ones)
    np.testing.assert_allclose(m1.weights_, m2.weights_)
