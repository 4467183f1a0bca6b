"""The fused release-statistic kernels (``kernels.als.global_mean_stats``, ``item_bias_stats``,
``spectral_moment``, ``clip_rows_into``) against the numpy/scipy expressions they replaced, on random ratings
with empty users, users with one rating and users above the contribution cap ``k``.

Equality is to float64 rounding: the kernels sum per-chunk partials (a different order of the same float64
terms), so each value agrees within a few ulps of the sum of the terms' magnitudes (``rtol=1e-12`` on these
sizes, far below any statistic's noise); the clip is a select and is checked exactly where it applies."""

import numpy as np
import pytest
import scipy.sparse as sp

from dprec.kernels import als as K
from dprec.models._biased_als import _norm_sq_upper, clip_rows
from dprec.models.releases import GlobalMean, ItemBiases, SpectralMoment, segment_sums


def _ratings(seed, n_users=400, n_items=60):
    g = np.random.default_rng(seed)
    n_u = g.integers(0, 40, n_users)
    n_u[::9] = 0  # empty users
    n_u[1::11] = 1  # single-rating users
    rows, cols = [], []
    for u, n in enumerate(n_u):
        c = g.choice(n_items, size=min(n, n_items), replace=False)
        rows += [u] * len(c)
        cols += list(c)
    vals = g.integers(1, 6, len(rows)).astype(np.float64) + g.normal(0, 0.3, len(rows))
    X = sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items))
    X.sort_indices()
    return X, g


# ------------------------------------------------------------------ the replaced expressions (references)
def _weights(X, k, unit, scalar):
    n_u = np.diff(X.indptr)
    if unit == "rating":
        return np.ones(X.nnz)
    nu = np.maximum(n_u, 1).astype(np.float64)
    return np.repeat(np.minimum(1.0, k / nu) if scalar else np.minimum(1.0, np.sqrt(k / nu)), n_u)


def _ref_global_mean(X, k, unit, lo, hi):
    wm = _weights(X, k, unit, scalar=True)
    return np.array([np.sum(wm * (X.data - (lo + hi) / 2.0)), np.sum(wm)])


def _ref_item_biases(X, mu, k, unit, B, user_reg):
    indptr, idx, val = X.indptr, X.indices, X.data
    n_u = np.diff(indptr)
    offset = segment_sums(val - mu, indptr) / (n_u + user_reg) if unit == "user" else np.zeros(len(n_u))
    e = np.clip(val - mu - np.repeat(offset, n_u), -B, B)
    w = _weights(X, k, unit, scalar=False)
    m = X.shape[1]
    return np.concatenate([np.bincount(idx, weights=w * e, minlength=m), np.bincount(idx, weights=w, minlength=m)])


def _ref_spectral(X, mu, item_bias, items, bias_reg, bound, k):
    n_u = np.diff(X.indptr)
    t = X.data - mu - item_bias[X.indices]
    e = t - np.repeat(segment_sums(t, X.indptr) / (n_u + bias_reg), n_u)
    E = sp.csr_matrix((np.clip(e, -bound, bound), X.indices, X.indptr), shape=X.shape)[:, items].tocsr()
    E = sp.diags(np.minimum(1.0, np.sqrt(k / np.maximum(np.diff(E.indptr), 1)))) @ E
    C = np.asarray((E.T @ E).todense(), dtype=np.float64)
    np.fill_diagonal(C, 0.0)
    return C


def _ref_clip_rows(U, gamma, out):
    eps = float(np.finfo(np.float64).eps)
    k = U.shape[1]
    margin = 2.0 * float(np.finfo(out.dtype).eps) + 8.0 * (k + 2) * eps
    U64 = U.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", U64, U64))
    scale = np.where(norms > gamma, gamma / np.where(norms > 0, norms, 1.0) * (1.0 - margin), 1.0)
    np.multiply(U64, scale[:, None], out=out, casting="same_kind")
    limit = gamma * gamma * (1.0 - 4.0 * eps)
    bad = np.flatnonzero(_norm_sq_upper(out) > limit)
    while bad.size:
        out[bad] = (out[bad].astype(np.float64) * (1.0 - margin)).astype(out.dtype)
        bad = bad[_norm_sq_upper(out[bad]) > limit]
    return out


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("unit", ["user", "rating"])
@pytest.mark.parametrize("seed", [0, 1])
def test_global_mean_kernel_matches_numpy(unit, seed):
    X, _ = _ratings(seed)
    got = GlobalMean(unit, k=7, rating_bounds=(1.0, 5.0)).statistic(X)
    np.testing.assert_allclose(got, _ref_global_mean(X, 7, unit, 1.0, 5.0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("unit", ["user", "rating"])
@pytest.mark.parametrize("seed", [0, 1])
def test_item_bias_kernel_matches_numpy(unit, seed):
    X, _ = _ratings(seed)
    rel = ItemBiases(unit, k=9, residual_bound=1.2, user_reg=10.0)
    got = rel.statistic(X, mu=3.1)
    ref = _ref_item_biases(X, 3.1, 9, unit, 1.2, 10.0)
    scale = _ref_item_biases(abs(X), 0.0, 9, unit, np.inf, 10.0)  # the sums of the terms' magnitudes
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13 * max(1.0, scale.max()))
    assert got.shape == (2 * X.shape[1],) and got[X.shape[1] :].min() >= 0  # unrated items: exact zeros
    np.testing.assert_array_equal(got == 0, ref == 0)


@pytest.mark.parametrize("n_sel", [1, 2, 25, 60])
@pytest.mark.parametrize("seed", [0, 1])
def test_spectral_moment_kernel_matches_scipy(n_sel, seed):
    X, g = _ratings(seed)
    items = g.permutation(X.shape[1])[:n_sel]  # not sorted: positions follow the given order
    c = g.normal(0, 0.3, X.shape[1])
    rel = SpectralMoment("user", k=5, bound=0.5, n_selected=n_sel)
    got = rel.matrix(X, mu=3.0, item_bias=c, items=items, bias_reg=10.0)
    ref = _ref_spectral(X, 3.0, c, items, 10.0, 0.5, 5)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got, got.T)
    assert np.all(np.diag(got) == 0)
    stat = rel.statistic(X, mu=3.0, item_bias=c, items=items, bias_reg=10.0)
    np.testing.assert_allclose(stat, ref[np.triu_indices(n_sel, 1)], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("unsorted", [False, True])
def test_spectral_moment_with_repeated_items_or_unsorted_rows_keeps_the_scipy_path(unsorted):
    X, g = _ratings(2)
    if unsorted:  # reverse each row's entries: the same matrix with unsorted column indices
        perm = np.concatenate([np.arange(X.indptr[u + 1] - 1, X.indptr[u] - 1, -1) for u in range(X.shape[0])])
        X = sp.csr_matrix((X.data[perm], X.indices[perm], X.indptr), shape=X.shape)
        X.has_sorted_indices = False
    items = np.array([3, 5, 7]) if unsorted else np.array([3, 5, 3])
    c = np.zeros(X.shape[1])
    got = SpectralMoment("user", k=5, bound=0.5, n_selected=3).matrix(X, mu=3.0, item_bias=c, items=items, bias_reg=1.0)
    np.testing.assert_allclose(got, _ref_spectral(X, 3.0, c, items, 1.0, 0.5, 5), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 8, 64])
def test_clip_rows_kernel_matches_numpy_and_bounds_the_stored_rows(dtype, d):
    g = np.random.default_rng(d)
    U = (g.standard_normal((500, d)) * g.choice([0.01, 0.5, 3.0], (500, 1))).astype(dtype)
    U[0] = 0.0  # a zero row
    gamma = float(np.median(np.linalg.norm(U.astype(np.float64), axis=1)))
    U[1] = U[1] / np.linalg.norm(U[1].astype(np.float64)) * gamma  # a row at the bound (within rounding)
    got = clip_rows(U, gamma, np.empty_like(U))
    ref = _ref_clip_rows(U, gamma, np.empty_like(U))
    # the norm is summed in another order: the scale differs by ≤ (d + 2)·eps64 relative, then one rounding
    tol = 2 * np.spacing(np.abs(ref).astype(dtype)) + 4 * (d + 2) * np.finfo(np.float64).eps * np.abs(ref)
    assert np.all(np.abs(got.astype(np.float64) - ref) <= tol)
    assert np.all(_norm_sq_upper(got) <= gamma * gamma)  # the stored rows obey the bound exactly
    small = np.linalg.norm(U.astype(np.float64), axis=1) < 0.99 * gamma
    np.testing.assert_array_equal(got[small], U[small])  # rows inside the bound keep their exact values
    # a non-contiguous input (the user solve's [U, b] columns) gives the same rows
    Ub = np.concatenate([U, np.ones((500, 1), dtype)], axis=1)
    np.testing.assert_array_equal(clip_rows(Ub[:, :d], gamma, np.empty_like(U)), got)
    # ... also into a column block of a wider output (the item statistics' [ũ, 1]); its last column untouched
    Ua = np.full((500, d + 1), 7.0, dtype)
    clip_rows(Ub[:, :d], gamma, Ua[:, :d])
    np.testing.assert_array_equal(Ua[:, :d], got)
    assert np.all(Ua[:, d] == 7.0)


def test_wrappers_compile_one_specialisation_per_dtype():
    """Read-only or writable inputs, column blocks or contiguous arrays: one compiled kernel per dtype (numba
    would otherwise compile a specialisation per mix of layouts and flags)."""
    g = np.random.default_rng(0)
    U = g.standard_normal((50, 4))
    ro = U.copy()
    ro.flags.writeable = False
    Ub = np.concatenate([U, np.ones((50, 1))], axis=1)
    before = None
    for src, out in ((U, np.empty_like(U)), (ro, np.empty_like(U)), (Ub[:, :4], np.empty((50, 5))[:, :4])):
        K.clip_rows_into(src, 1.0, 1e-6, 0.99, out)
        n = len(K._clip_rows_nb.signatures)
        assert before is None or n == before, K._clip_rows_nb.signatures
        before = n
    X = sp.random(30, 20, density=0.3, format="csr", random_state=1)
    Xro = X.copy()
    for a in (Xro.indptr, Xro.indices, Xro.data):
        a.flags.writeable = False
    before = None
    for M in (X, Xro):
        K.item_bias_stats(M.indptr, M.indices, M.data, 20, 0.5, 1.0, 1.0, 5.0, rating_unit=False)
        n = len(K._item_bias_nb.signatures)
        assert before is None or n == before, K._item_bias_nb.signatures
        before = n


def test_kernels_on_a_matrix_without_ratings_return_zeros():
    X = sp.csr_matrix((5, 4))
    np.testing.assert_array_equal(K.global_mean_stats(X.indptr, X.data, 3, 3.0, rating_unit=False), [0.0, 0.0])
    np.testing.assert_array_equal(
        K.item_bias_stats(X.indptr, X.indices, X.data, 4, 3.0, 10.0, 1.0, 3, rating_unit=False), np.zeros(8)
    )
    C = K.spectral_moment(X.indptr, X.indices, X.data, 3.0, np.zeros(4), np.array([2, 0]), 10.0, 0.5, 3)
    np.testing.assert_array_equal(C, np.zeros((2, 2)))


@pytest.mark.parametrize("seed", [0, 1])
def test_gathered_item_major_weights_equal_the_scattered_ones(seed):
    from dprec.models import _biased_als as E
    from dprec.models.releases import FactorStats

    X, _ = _ratings(seed)
    Xt, _ = E.item_major(X)
    # the gathered item-major weights are the scattered ones, value for value
    rel = FactorStats("user", k=6)
    np.testing.assert_array_equal(rel.item_major_weights(X, item_major_users=Xt.indices), rel.item_major_weights(X))
