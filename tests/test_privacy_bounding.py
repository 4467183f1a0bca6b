"""Sensitivity tests: remove one user from bounded data, measure the change, compare with the bound."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from dprec.privacy import (
    clip_rows_l2,
    clip_values,
    dp_item_selection,
    effective_k,
    gram_sensitivity,
    item_counts_sensitivity,
    item_sums_sensitivity,
    rhs_sensitivity,
    sample_per_user,
    selection_threshold,
    total_count_sensitivity,
    total_sum_sensitivity,
)

K, B, GAMMA, D = 7, 2.0, 1.5, 5
REL = 1e-9  # floating-point slack on the comparisons


def make_data(seed=0, n_users=120, n_items=60):
    rng = np.random.default_rng(seed)
    X = sp.random(n_users, n_items, density=0.15, format="csr", random_state=rng,
                  data_rvs=lambda n: rng.uniform(-4, 4, n))
    X = X.tolil()
    X[0, :] = 4.0  # adversarial heavy user: rates every item with an out-of-bound value
    X[1, :5] = -4.0
    return X.tocsr()


def stats_of(R, U):
    """Item sums, item counts, stacked Gram A_j = Σ u uᵀ and b_j = Σ r u, plus scalar totals."""
    n_items = R.shape[1]
    rows = np.repeat(np.arange(R.shape[0]), np.diff(R.indptr))
    cols, r = R.indices, R.data
    sums = np.bincount(cols, weights=r, minlength=n_items)
    counts = np.bincount(cols, minlength=n_items).astype(float)
    A = np.zeros((n_items, D, D))
    np.add.at(A, cols, np.einsum("ni,nj->nij", U[rows], U[rows]))
    b = np.zeros((n_items, D))
    np.add.at(b, cols, r[:, None] * U[rows])
    return {"sums": sums, "counts": counts, "A": A, "b": b, "total": np.array([r.sum()]), "n": np.array([r.size])}


def drop_user(R, i):
    keep = np.ones(R.shape[0], bool)
    keep[i] = False
    return R[keep]


@pytest.mark.parametrize("method", ["uniform", "least_popular"])
def test_sensitivities_hold_when_removing_users(method):
    rng = np.random.default_rng(42)
    X = make_data()
    noisy_counts = np.bincount(X.indices, minlength=X.shape[1]) + rng.normal(0, 2, X.shape[1])
    Xb = sample_per_user(X, K, rng, method=method, item_counts=noisy_counts if method == "least_popular" else None)
    assert np.diff(Xb.indptr).max() <= K
    Xb = clip_values(Xb, B)
    assert np.abs(Xb.data).max() <= B
    U = clip_rows_l2(rng.normal(0, 3, (X.shape[0], D)), GAMMA)
    U[0] *= GAMMA / np.linalg.norm(U[0]) * (1 - 1e-12)  # heavy user at the norm bound
    assert np.linalg.norm(U, axis=1).max() <= GAMMA
    bounds = {
        "sums": item_sums_sensitivity(K, B),
        "counts": item_counts_sensitivity(K),
        "A": gram_sensitivity(K, GAMMA),
        "b": rhs_sensitivity(K, B, GAMMA),
        "total": total_sum_sensitivity(K, B),
        "n": total_count_sensitivity(K),
    }
    full = stats_of(Xb, U)
    heaviest = int(np.argmax(np.diff(X.indptr)))
    users = [heaviest, 1] + list(rng.choice(X.shape[0], 60, replace=False))
    worst = {k: 0.0 for k in bounds}
    for i in users:
        keep = np.ones(X.shape[0], bool)
        keep[i] = False
        nb = stats_of(drop_user(Xb, i), U[keep])
        for key, bound in bounds.items():
            change = float(np.linalg.norm((full[key] - nb[key]).ravel()))  # Frobenius for A
            assert change <= bound * (1 + REL), f"{key}: removing user {i} changed it by {change} > {bound}"
            worst[key] = max(worst[key], change / bound)
    # the adversarial user (all ratings clipped to B, factor at norm Γ) makes the bounds tight
    for key in ("sums", "counts", "A", "b", "total", "n"):
        assert worst[key] >= 1 - 1e-6, (key, worst[key])


def test_rating_level_k_is_one():
    assert effective_k("rating", 50) == 1
    assert effective_k("user", 50) == 50
    with pytest.raises(ValueError):
        effective_k("user", None)
    assert item_sums_sensitivity(1, 2.0) == 2.0 and gram_sensitivity(1, 3.0) == 9.0
    assert rhs_sensitivity(4, 2.0, 3.0) == 12.0


def test_sample_per_user_properties():
    X = make_data(1)
    Y = sample_per_user(X, 3, 0)
    assert (np.diff(Y.indptr) == np.minimum(np.diff(X.indptr), 3)).all()
    # subset of the original entries with the original values
    Xd, Yd = X.toarray(), Y.toarray()
    mask = Yd != 0
    assert np.array_equal(Yd[mask], Xd[mask])
    assert np.array_equal(sample_per_user(X, 3, 5).toarray(), sample_per_user(X, 3, 5).toarray())
    # uniform: each of user 0's 60 items is kept with probability 3/60
    hits = np.zeros(X.shape[1])
    for s in range(300):
        hits[sample_per_user(X[:1], 3, s).indices] += 1
    assert hits.sum() == 900 and hits.max() < 60  # expectation 15 per item
    # least popular first, ties broken at random
    counts = np.arange(X.shape[1], dtype=float)
    Z = sample_per_user(X[:1], 3, 0, method="least_popular", item_counts=counts)
    assert list(Z.indices) == [0, 1, 2]
    tie = np.zeros(X.shape[1])
    picks = {tuple(sample_per_user(X[:1], 3, s, method="least_popular", item_counts=tie).indices) for s in range(5)}
    assert len(picks) > 1
    with pytest.raises(ValueError, match="item_counts"):
        sample_per_user(X, 3, 0, method="least_popular")
    with pytest.raises(ValueError, match="method"):
        sample_per_user(X, 3, 0, method="popular")
    with pytest.raises(ValueError, match="k"):
        sample_per_user(X, 0, 0)


def test_clip_rows_l2_float32():
    U = np.random.default_rng(0).normal(0, 10, (1000, 16)).astype(np.float32)
    C = clip_rows_l2(U, 1.0)
    assert C.dtype == np.float32
    assert np.linalg.norm(C.astype(np.float64), axis=1).max() <= 1.0
    small = U / 1000
    assert np.array_equal(clip_rows_l2(small, 1.0), small)


def test_dp_item_selection():
    rng = np.random.default_rng(0)
    # 30 popular items rated by everyone (count 500), 30 items each rated by one user only
    n_users = 500
    rows, cols = [], []
    for u in range(n_users):
        its = list(rng.choice(30, 2, replace=False))
        rows += [u] * 2
        cols += its
    for j in range(30, 60):
        rows.append(j)
        cols.append(j)
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, 60))
    X = sample_per_user(X, 3, 0)
    sel = dp_item_selection(X, rho=0.5, delta_sel=1e-6, k=3, rng=1)
    assert set(sel.items.tolist()) == set(range(30))  # popular items survive, singletons do not
    assert sel.delta == 1e-6 and sel.rho <= 0.5
    assert sel.threshold == pytest.approx(selection_threshold(sel.sigma, 3, 1e-6))
    # the threshold bounds the release probability of a singleton item: k * P(1 + N > tau) = delta_sel
    from scipy.stats import norm

    assert 3 * norm.sf((sel.threshold - 1) / sel.sigma) == pytest.approx(1e-6, rel=1e-6)
    with pytest.raises(ValueError, match="sample_per_user"):
        dp_item_selection(sp.csr_matrix(np.ones((2, 5))), rho=1.0, delta_sel=1e-6, k=3)
