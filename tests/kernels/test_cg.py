"""The matrix-free CG kernel of explicit ALS (``dprec.kernels.cg``) against the exact Cholesky solve."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from dprec.kernels import als as K
from dprec.kernels import cg as KCG


def _problem(n_rows=40, n_cols=30, k=5, density=0.3, seed=0):
    """Random CSR rows (one of them empty), float32 factors ``Y`` with a constant last column (the bias), targets
    and a per-row diagonal ridge — the shape of explicit ALS's user and item systems."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_rows, n_cols, density=density, format="lil", random_state=seed)
    X[3, :] = 0.0
    X = X.tocsr()
    X.eliminate_zeros()
    X.sort_indices()
    Y = rng.standard_normal((n_cols, k)).astype(np.float32)
    Y[:, -1] = 1.0
    target = rng.normal(0.0, 1.0, X.nnz).astype(np.float32)
    reg = np.empty((n_rows, k))
    reg[:, :-1] = 0.1 * (np.diff(X.indptr)[:, None] + 1.0)
    reg[:, -1] = 2.0
    return X, Y, target, reg


def _cholesky(X, Y, target, reg):
    """The exact float64 reference: the user step's fused Gram + Cholesky kernel."""
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


def _residuals(X, Y, target, reg, x):
    return KCG.ridge_residual_norms(X.indptr, X.indices, target, Y, reg, x)


def test_cg_with_enough_steps_equals_cholesky():
    X, Y, target, reg = _problem()
    x = np.zeros((X.shape[0], Y.shape[1]), np.float32)
    KCG.cg_ridge_rows(X.indptr, X.indices, target, Y, reg, x, cg_steps=4 * Y.shape[1])
    ref = _cholesky(X, Y, target, reg)
    np.testing.assert_allclose(x, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    np.testing.assert_array_equal(x[3], 0.0)  # an empty row's solution is 0


def test_residual_norms_vanish_at_the_exact_solution():
    X, Y, target, reg = _problem(seed=1)
    ref = _cholesky(X, Y, target, reg).astype(np.float32)
    b = KCG.ridge_residual_norms(X.indptr, X.indices, target, Y, reg, np.zeros_like(ref))  # ‖b‖ at x = 0
    assert np.all(_residuals(X, Y, target, reg, ref) <= 1e-5 * np.maximum(b, 1.0))


def test_warm_start_reduces_the_residual():
    """From the exact solution of a nearby system (Y perturbed by 5 %, as the previous ALS iteration's), the same
    number of steps leaves a residual 4× smaller than from zero on every non-empty row, 10× in the median."""
    X, Y, target, reg = _problem(seed=2)
    rng = np.random.default_rng(3)
    Y_prev = (Y * (1 + 0.05 * rng.standard_normal(Y.shape))).astype(np.float32)
    Y_prev[:, -1] = 1.0
    warm = _cholesky(X, Y_prev, target, reg).astype(np.float32)
    cold = np.zeros_like(warm)
    r0 = _residuals(X, Y, target, reg, warm)
    for x in (warm, cold):
        KCG.cg_ridge_rows(X.indptr, X.indices, target, Y, reg, x, cg_steps=2)
    r_warm, r_cold = _residuals(X, Y, target, reg, warm), _residuals(X, Y, target, reg, cold)
    rows = np.diff(X.indptr) > 0
    ratio = r_warm[rows] / r_cold[rows]
    assert ratio.max() < 0.25 and np.median(ratio) < 0.1, ratio
    assert np.all(r_warm[rows] < r0[rows])  # the steps improve on the warm start itself


def test_bit_identical_run_to_run_and_across_thread_counts():
    X, Y, target, reg = _problem(n_rows=300, n_cols=80, k=9, seed=4)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (before, 1, before):
            numba.set_num_threads(threads)
            x = np.zeros((X.shape[0], Y.shape[1]), np.float32)
            results.append(KCG.cg_ridge_rows(X.indptr, X.indices, target, Y, reg, x, cg_steps=3))
    finally:
        numba.set_num_threads(before)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_bad_buffers_are_rejected():
    X, Y, target, reg = _problem()
    with pytest.raises(ValueError, match="X must be a contiguous float32"):
        KCG.cg_ridge_rows(X.indptr, X.indices, target, Y, reg, np.zeros((X.shape[0], Y.shape[1])))
    with pytest.raises(ValueError, match="target must align"):
        KCG.cg_ridge_rows(X.indptr, X.indices, target[:-1], Y, reg, np.zeros((X.shape[0], Y.shape[1]), np.float32))
    with pytest.raises(ValueError, match="cg_steps"):
        KCG.cg_ridge_rows(X.indptr, X.indices, target, Y, reg, np.zeros((X.shape[0], Y.shape[1]), np.float32), 0)
