"""The matrix-free CG kernel of explicit ALS (``dprec.kernels.cg``) against the exact Cholesky solve."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from dprec.kernels import als as K
from dprec.kernels import cg as KCG


def _problem(n_rows=40, n_cols=30, k=5, density=0.3, seed=0):
    """Random CSR rows (one of them empty), float32 factors ``Y`` (k columns; the kernel adds the constant bias
    regressor), targets and a per-row diagonal ridge on ``[x; xb]`` — explicit ALS's user and item systems."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_rows, n_cols, density=density, format="lil", random_state=seed)
    X[3, :] = 0.0
    X = X.tocsr()
    X.eliminate_zeros()
    X.sort_indices()
    Y = rng.standard_normal((n_cols, k)).astype(np.float32)
    target = rng.normal(0.0, 1.0, X.nnz).astype(np.float32)
    reg = np.empty((n_rows, k + 1))
    reg[:, :-1] = 0.1 * (np.diff(X.indptr)[:, None] + 1.0)
    reg[:, -1] = 2.0
    return X, Y, target, reg


def _augment(Y):
    return np.hstack([Y, np.ones((Y.shape[0], 1), Y.dtype)])


def _zeros(X, Y):
    return np.zeros((X.shape[0], Y.shape[1]), np.float32), np.zeros(X.shape[0], np.float32)


def _cholesky(X, Y, target, reg):
    """The exact float64 reference ``[x, xb]`` (n_rows, k+1): the user step's fused Gram + Cholesky kernel on
    the augmented ``[Y, 1]``."""
    Y = _augment(Y)
    out = np.empty((X.shape[0], Y.shape[1]))
    fails = K.solve_rows(
        X.indptr,
        X.indices,
        np.ones(X.nnz),
        target.astype(np.float64),
        Y.astype(np.float64),
        np.zeros((Y.shape[1],) * 2),
        reg,
        out,
    )
    assert fails == 0
    return out


def _split(z):
    return np.ascontiguousarray(z[:, :-1], dtype=np.float32), np.ascontiguousarray(z[:, -1], dtype=np.float32)


def _residuals(X, Y, target, reg, x, xb):
    return KCG.ridge_residual_norms(X.indptr, X.indices, target, Y, reg, x, xb)


def test_cg_with_enough_steps_equals_cholesky():
    X, Y, target, reg = _problem()
    x, xb = _zeros(X, Y)
    KCG.cg_ridge_rows(X.indptr, X.indices, target, Y, reg, x, xb, cg_steps=4 * Y.shape[1])
    ref = _cholesky(X, Y, target, reg)
    z = np.column_stack([x, xb])
    np.testing.assert_allclose(z, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    np.testing.assert_array_equal(z[3], 0.0)  # an empty row's solution is 0


def test_residual_norms_vanish_at_the_exact_solution():
    X, Y, target, reg = _problem(seed=1)
    ref = _split(_cholesky(X, Y, target, reg))
    b = _residuals(X, Y, target, reg, *_zeros(X, Y))  # ‖b‖ at x = 0
    assert np.all(_residuals(X, Y, target, reg, *ref) <= 1e-5 * np.maximum(b, 1.0))


def test_warm_start_reduces_the_residual():
    """From the exact solution of a nearby system (Y perturbed by 5 %, as the previous ALS iteration's), the same
    number of steps leaves a residual 2× smaller than from zero on every non-empty row, 10× in the median."""
    X, Y, target, reg = _problem(seed=2)
    rng = np.random.default_rng(3)
    Y_prev = (Y * (1 + 0.05 * rng.standard_normal(Y.shape))).astype(np.float32)
    warm = _split(_cholesky(X, Y_prev, target, reg))
    cold = _zeros(X, Y)
    r0 = _residuals(X, Y, target, reg, *warm)
    for x, xb in (warm, cold):
        KCG.cg_ridge_rows(X.indptr, X.indices, target, Y, reg, x, xb, cg_steps=2)
    r_warm, r_cold = _residuals(X, Y, target, reg, *warm), _residuals(X, Y, target, reg, *cold)
    rows = np.diff(X.indptr) > 0
    ratio = r_warm[rows] / r_cold[rows]
    assert ratio.max() < 0.5 and np.median(ratio) < 0.1, ratio
    assert np.all(r_warm[rows] < r0[rows])  # the steps improve on the warm start itself


@pytest.mark.parametrize("k", [9, 16, 64])
def test_bit_identical_run_to_run_and_across_thread_counts(k):
    """The same bits for any thread count and heap state. Between runs the heap is disturbed by allocations of
    random sizes: with per-array scratch buffers the vectorised loops' run-time overlap checks chose a
    differently-summing scalar path depending on where the buffers landed (seen on 2-core AMD EPYC: 484 of 2700
    entries off by up to 1.2e-7), which this catches in most runs of 12."""
    X, Y, target, reg = _problem(n_rows=300, n_cols=80, k=k, seed=4)
    rng = np.random.default_rng(5)
    results, junk = [], []
    before = numba.get_num_threads()
    try:
        for run in range(12):
            numba.set_num_threads(1 + run % before)
            junk.append(np.empty(int(rng.integers(1, 5000)), dtype=np.uint8))
            x, xb = _zeros(X, Y)
            results.append(KCG.cg_ridge_rows(X.indptr, X.indices, target, Y, reg, x, xb, cg_steps=3))
    finally:
        numba.set_num_threads(before)
    for other in results[1:]:
        np.testing.assert_array_equal(other[0], results[0][0])
        np.testing.assert_array_equal(other[1], results[0][1])


def test_bad_buffers_are_rejected():
    X, Y, target, reg = _problem()
    x, xb = _zeros(X, Y)
    with pytest.raises(ValueError, match="X must be a contiguous float32"):
        KCG.cg_ridge_rows(X.indptr, X.indices, target, Y, reg, x.astype(np.float64), xb)
    with pytest.raises(ValueError, match="XB must be a float32"):
        KCG.cg_ridge_rows(X.indptr, X.indices, target, Y, reg, x, xb[:-1])
    with pytest.raises(ValueError, match="target must align"):
        KCG.cg_ridge_rows(X.indptr, X.indices, target[:-1], Y, reg, x, xb)
    with pytest.raises(ValueError, match="cg_steps"):
        KCG.cg_ridge_rows(X.indptr, X.indices, target, Y, reg, x, xb, 0)
