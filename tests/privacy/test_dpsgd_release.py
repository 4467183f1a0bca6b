"""DP-SGD's clipped item gradient (:class:`dprec.models.releases.ClippedItemGradient`) on neighbouring batches.

The released item side ``θ = [V, c]`` is held fixed (joint DP); the batch is fixed (the sampling is the
accountant's part). User unit: removing the heaviest sampled user moves the summed gradient by exactly its
clipped norm, C (ratio ≥ 0.999: a sensitivity claimed 1% too small fails). Rating unit: removing one sampled
rating changes its user's whole group (the local user solve reads the group's ratings); the measured change
exceeds C, so a claim of C instead of 2C fails, and never exceeds 2C.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from dprec.models import releases as R

N_USERS, N_ITEMS, D = 30, 12, 3


def _data(seed=0):
    g = np.random.default_rng(seed)
    rows, cols, vals = [], [], []
    for u in range(N_USERS):
        n = 1 + (u % 6) if u else N_ITEMS  # user 0 is the heaviest: rates every item
        items = g.choice(N_ITEMS, n, replace=False)
        rows += [u] * n
        cols += list(items)
        vals += list(g.choice([1.0, 2.0, 3.0, 4.0, 5.0], n))
    X = sp.csr_matrix((vals, (rows, cols)), shape=(N_USERS, N_ITEMS))
    ctx = {"item_factors": g.normal(0, 0.5, (N_ITEMS, D)), "item_bias": g.normal(0, 0.3, N_ITEMS), "mu": 3.0}
    return X, ctx


def _drop_row(X, u):
    X = X.tolil(copy=True)
    X[u, :] = 0
    return sp.csr_matrix(X)


def _drop_entry(X, p):
    X = sp.csr_matrix(X, copy=True)
    keep = np.ones(X.nnz, bool)
    keep[p] = False
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    return sp.csr_matrix((X.data[keep], (rows[keep], X.indices[keep])), shape=X.shape)


def test_user_unit_bound_holds_and_is_attained():
    X, ctx = _data()
    rel = R.ClippedItemGradient("user", clip_norm=0.5, factors=D, user_regularization=0.05, bias_regularization=1.0)
    base = rel.statistic(X, **ctx)
    ratios = []
    for u in range(N_USERS):
        ratios.append(np.linalg.norm(base - rel.statistic(_drop_row(X, u), **ctx)) / rel.sensitivity())
    assert max(ratios) <= 1.0
    heaviest = int(np.argmax(np.diff(X.indptr)))
    assert ratios[heaviest] >= 0.999  # nearly attained: a 1% smaller claim would be violated
    assert max(ratios) * rel.sensitivity() > 0.99 * rel.sensitivity()
    # a mutant claiming C/2 is violated
    assert max(ratios) * 2 > 1.0


def test_rating_unit_needs_twice_the_clip():
    X, ctx = _data(1)
    rel = R.ClippedItemGradient("rating", clip_norm=0.5, factors=D, user_regularization=0.01, bias_regularization=0.1)
    assert rel.sensitivity() == 1.0
    base = rel.statistic(X, **ctx)
    worst = 0.0
    for p in range(X.nnz):
        worst = max(worst, np.linalg.norm(base - rel.statistic(_drop_entry(X, p), **ctx)))
    assert worst <= rel.sensitivity() * (1 + 1e-12)
    assert worst > rel.clip_norm  # the user-level claim C would be violated: the factor 2 is needed


def test_user_unit_matches_dense_reference():
    """The kernel's clipped sum equals a direct numpy computation (local ridge solve, clip per user)."""
    X, ctx = _data(2)
    C, lu, lb = 0.7, 0.05, 1.0
    rel = R.ClippedItemGradient("user", clip_norm=C, factors=D, user_regularization=lu, bias_regularization=lb)
    got = rel.statistic(X, **ctx).reshape(N_ITEMS, D + 1)
    V, c, mu = ctx["item_factors"], ctx["item_bias"], ctx["mu"]
    want = np.zeros((N_ITEMS, D + 1))
    for u in range(N_USERS):
        s = slice(X.indptr[u], X.indptr[u + 1])
        j, r = X.indices[s], X.data[s]
        Y = np.hstack([V[j], np.ones((len(j), 1))])
        reg = np.r_[np.full(D, lu * (len(j) + 1.0)), lb]
        x = np.linalg.solve(Y.T @ Y + np.diag(reg), Y.T @ (r - mu - c[j]))
        e = r - mu - c[j] - Y @ x
        g = -e[:, None] * np.r_[x[:D], 1.0][None, :]
        g *= min(1.0, C / np.linalg.norm(g))
        want[j] += g
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_poisson_batch_rates():
    X, _ = _data()
    g = np.random.default_rng(0)
    for unit, total in (("user", N_USERS), ("rating", X.nnz)):
        rel = R.ClippedItemGradient(unit, factors=D)
        n = [rel.sample_batch(X, 0.3, g) for _ in range(300)]
        kept = np.mean([np.count_nonzero(np.diff(b.indptr)) if unit == "user" else b.nnz for b in n])
        assert abs(kept / total - 0.3) < 0.03
        if unit == "user":  # whole users, all of their ratings
            b = n[0]
            rows = np.flatnonzero(np.diff(b.indptr))
            assert all(b[r].nnz == X[r].nnz for r in rows)
