"""DP spectral initialisation: the release :class:`dprec.models.releases.SpectralMoment` (exact statistic against a
dense reference, sensitivity by removing users / changing a rating) and the post-processing of
``dprec.models._spectral``. The generic neighbour checks of every release are in tests/privacy/test_releases.py."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from dprec.datasets import synthetic
from dprec.models import releases as R
from dprec.models._spectral import (
    SPECTRAL_BOUND,
    SPECTRAL_BOUND_RATING,
    SPECTRAL_K,
    SPECTRAL_K_RATING,
    spectral_item_factors,
    spike_weights,
)

K, B = 10, 0.5
BIAS_REG = 5.0


def _setup(seed=0):
    data = synthetic(400, 80, 3, mean_ratings_per_user=25, rng=seed)
    X = data.matrix
    g = np.random.default_rng(seed)
    mu, c = 3.5, g.normal(0, 0.3, X.shape[1])  # stand-ins for the released global effects (public here)
    items = np.argsort(-np.bincount(X.indices, minlength=X.shape[1]))[:40]
    return X, mu, c, items


def _release(unit="user", n_selected=40):
    return R.SpectralMoment(unit, k=K, bound=B, n_selected=n_selected)


def _stat(rel, X, mu, c, items):
    return rel.statistic(X, mu=mu, item_bias=c, items=items, bias_reg=BIAS_REG)


def _without_row(X, i):
    keep = np.r_[0:i, i + 1 : X.shape[0]]
    return X[keep].tocsr()


def test_declared_sensitivity_and_size():
    assert _release().sensitivity() == pytest.approx(K * B**2 / math.sqrt(2))
    assert _release("rating").sensitivity() == pytest.approx(math.sqrt(K - 1) * B**2)  # k ≥ 3
    assert _release(n_selected=40).size(80) == 40 * 39 // 2
    assert _release(n_selected=200).size(80) == 80 * 79 // 2  # capped by the catalog
    # the defaults DP-ALS uses
    assert (SPECTRAL_K, SPECTRAL_BOUND) == (10, 0.5)
    assert (SPECTRAL_K_RATING, SPECTRAL_BOUND_RATING) == (100, 0.5)


def test_removing_any_user_moves_the_release_by_at_most_the_sensitivity():
    X, mu, c, items = _setup()
    rel = _release()
    full = _stat(rel, X, mu, c, items)
    assert full.shape == (rel.size(X.shape[1]),)
    bound = rel.sensitivity()
    n_s = np.asarray((X[:, items] != 0).sum(1)).ravel()
    heavy = [int(np.argmax(n_s))] + list(np.argsort(-n_s)[1:30])
    worst = 0.0
    for i in heavy:
        # the statistic recomputes the other users' local biases from their own rows: they do not depend on user i
        minus = _stat(rel, _without_row(X, i), mu, c, items)
        worst = max(worst, np.linalg.norm(full - minus))
    assert 0 < worst <= bound * (1 + 1e-12)
    # the bound is attained up to the diagonal terms when a user's clipped residuals all sit at ±B
    assert worst > 0.3 * bound


def test_rating_level_change_stays_within_twice_the_rating_bound():
    X, mu, c, items = _setup(1)
    rel = _release("rating")
    full = _stat(rel, X, mu, c, items)
    X2 = X.copy()
    # change one rating of the heaviest user on a selected item (no local bias at this unit: a rating outside
    # the selected items changes nothing)
    i = int(np.argmax(np.diff(X.indptr)))
    t = X.indptr[i] + int(np.flatnonzero(np.isin(X.indices[X.indptr[i] : X.indptr[i + 1]], items))[0])
    X2.data[t] = 1.0 if X2.data[t] > 3 else 5.0
    moved = _stat(rel, X2, mu, c, items)
    assert np.linalg.norm(full - moved) > 0
    # a change is a removal plus an addition: ≤ 2Δ of the rating unit
    assert np.linalg.norm(full - moved) <= 2 * rel.sensitivity() * (1 + 1e-12)
    # removing that rating: ≤ Δ
    C = X.tocoo()
    keep = np.ones(C.nnz, bool)
    keep[np.flatnonzero((C.row == i) & np.isin(C.col, items))[0]] = False
    X3 = sp.csr_matrix((C.data[keep], (C.row[keep], C.col[keep])), shape=X.shape)
    X3.sort_indices()
    assert np.linalg.norm(full - _stat(rel, X3, mu, c, items)) <= rel.sensitivity() * (1 + 1e-12)


def test_second_moment_matches_a_dense_reference():
    X, mu, c, items = _setup(2)
    D = X.toarray()
    M = D != 0
    n_u = M.sum(1)
    # each user's own local bias over all of the user's ratings, damped by bias_reg
    ub = np.where(M, D - mu - c[None, :], 0.0).sum(1) / (n_u + BIAS_REG)
    E = np.where(M, np.clip(D - mu - c[None, :] - ub[:, None], -B, B), 0.0)[:, items]
    n_s = M[:, items].sum(1)
    x = E * np.minimum(1.0, np.sqrt(K / np.maximum(n_s, 1)))[:, None]
    ref = x.T @ x
    np.fill_diagonal(ref, 0.0)
    rel = _release()
    Cm = rel.matrix(X, mu=mu, item_bias=c, items=items, bias_reg=BIAS_REG)
    assert Cm.dtype == np.float64 and Cm.shape == (len(items), len(items))
    np.testing.assert_allclose(Cm, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_stat(rel, X, mu, c, items), ref[np.triu_indices(len(items), 1)], rtol=1e-12, atol=1e-12)
    assert np.all(np.sum(x**2, 1) <= K * B**2 + 1e-12)


def test_spike_weights_zero_below_the_bulk_edge_and_exact_without_noise():
    lam = np.array([100.0, 50.0, 20.0, 5.0])
    sigma, m = 2.0, 16  # edge = 2σ√m = 16
    w = spike_weights(lam, sigma, m)
    assert w[0] == pytest.approx(1.0) and w[3] == 0.0 and np.all(np.diff(w) <= 0)
    theta = (lam[:3] + np.sqrt(lam[:3] ** 2 - 16.0**2)) / 2
    strength = theta * (1 - sigma**2 * m / theta**2)
    np.testing.assert_allclose(w[:3], np.sqrt(strength / strength[0]))
    np.testing.assert_allclose(spike_weights(lam, 0.0, m), np.sqrt(lam / lam[0]))
    assert np.all(spike_weights(np.array([1.0, 0.5]), 10.0, 4) == 0)


def test_noise_free_spectral_factors_recover_a_planted_subspace():
    g = np.random.default_rng(5)
    m, d = 30, 3
    Q, _ = np.linalg.qr(g.standard_normal((m, d)))
    C = Q @ np.diag([9.0, 4.0, 1.0]) @ Q.T
    items = np.arange(10, 10 + m)
    V, lam, wts = spectral_item_factors(C, items, 50, d, sigma=0.0, scale=2.0)
    np.testing.assert_allclose(lam, [9.0, 4.0, 1.0], atol=1e-10)
    assert np.all(V[:10] == 0) and np.all(V[40:] == 0)
    # same column space as the planted one, column norms scale·√m·weight
    P = Q @ Q.T
    np.testing.assert_allclose(P @ V[items], V[items], atol=1e-10)
    np.testing.assert_allclose(
        np.linalg.norm(V[items], axis=0), 2.0 * math.sqrt(m) * np.sqrt([1.0, 4 / 9, 1 / 9]), rtol=1e-10
    )
