"""Implicit ALS's blocked CG kernel (``cg_rows``) against a plain per-row reference of the same algorithm."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from dprec.kernels import als as K


def _reference_cg(indptr, indices, conf, Y, YtY, reg, X, cg_steps):
    """The per-row algorithm in float64 numpy: warm-started CG on
    ``(YᵀY + reg I + Σ_j (c_j − 1) y_j y_jᵀ) x = Σ_j c_j y_j``, stopping a row when ``rᵀr < 1e-20`` or
    ``pᵀAp ≤ 0``."""
    Y = Y.astype(np.float64)
    S = YtY + reg * np.eye(Y.shape[1])
    out = X.astype(np.float64)
    for u in range(len(indptr) - 1):
        s = slice(indptr[u], indptr[u + 1])
        Yu, c = Y[indices[s]], conf[s].astype(np.float64)
        x = out[u].copy()
        r = Yu.T @ (c - (c - 1) * (Yu @ x)) - S @ x
        p, rs = r.copy(), r @ r
        if rs < 1e-20:
            continue
        for _ in range(cg_steps):
            Ap = S @ p + Yu.T @ ((c - 1) * (Yu @ p))
            pAp = p @ Ap
            if not pAp > 0:
                break
            alpha = rs / pAp
            x += alpha * p
            r -= alpha * Ap
            rs_new = r @ r
            if rs_new < 1e-20:
                break
            p = r + (rs_new / rs) * p
            rs = rs_new
        out[u] = x
    return out


def _problem(n_rows, n_cols, k, seed, density=0.1):
    g = np.random.default_rng(seed)
    X = sp.random(n_rows, n_cols, density=density, format="csr", random_state=seed, dtype=np.float32)
    X.data[:] = g.integers(1, 4, X.nnz)
    X = sp.lil_matrix(X)
    X[0, :] = 1.0  # a dense row: longer than the small block cap below (its own block)
    X[1, :] = 0.0  # an empty row: only the dense part, from a non-zero warm start
    X = sp.csr_matrix(X, dtype=np.float32)
    X.eliminate_zeros()
    X.sort_indices()
    Y = (g.standard_normal((n_cols, k)) / np.sqrt(k)).astype(np.float32)
    conf = (1.0 + 3.0 * X.data).astype(np.float32)
    X0 = (0.1 * g.standard_normal((n_rows, k))).astype(np.float32)
    return X, Y, conf, X0


@pytest.mark.parametrize("k", [5, 16, 64])
@pytest.mark.parametrize("blocks", [None, (3, 20)])
def test_cg_rows_equals_per_row_reference(k, blocks, monkeypatch):
    """Default blocks and tiny ones (3 rows / 20 entries: many blocks, rows longer than the cap, partial
    four-entry sweeps): equal to the float64 reference to float32 tolerance, rows with no entries included."""
    if blocks is not None:
        monkeypatch.setattr(K, "_CG_BLOCK_ROWS", blocks[0])
        monkeypatch.setattr(K, "_cg_block_entries", lambda k: blocks[1])
    X, Y, conf, X0 = _problem(n_rows=200, n_cols=60, k=k, seed=k)
    YtY = Y.astype(np.float64).T @ Y.astype(np.float64)
    for steps in (1, 3):
        out = X0.copy()
        K.cg_rows(X.indptr, X.indices, conf, Y, YtY, 0.05, out, steps)
        ref = _reference_cg(X.indptr, X.indices, conf, Y, YtY, 0.05, X0, steps)
        assert not np.allclose(ref, X0, atol=1e-3)  # the steps move the rows
        np.testing.assert_allclose(out, ref, rtol=2e-3, atol=2e-4 * np.abs(ref).max())


def test_cg_rows_float64_unaligned_inputs_and_stopped_rows():
    """``Y`` given as a float64 view (read as float32, as before), a zero row with no entries stays zero
    (``r = 0``: stopped before the first step), and a row warm-started at its exact solution stays there."""
    X, Y, conf, X0 = _problem(n_rows=50, n_cols=40, k=8, seed=1)
    Y64 = np.asfortranarray(Y.astype(np.float64))
    YtY = Y.astype(np.float64).T @ Y.astype(np.float64)
    X0[1] = 0.0
    s = slice(X.indptr[2], X.indptr[3])
    Yu = Y.astype(np.float64)[X.indices[s]]
    c = conf[s].astype(np.float64)
    M = YtY + 0.1 * np.eye(8) + (Yu * (c - 1)[:, None]).T @ Yu
    X0[2] = np.linalg.solve(M, Yu.T @ c)
    out = X0.copy()
    K.cg_rows(X.indptr, X.indices, conf, Y64, YtY, 0.1, out, 3)
    ref = _reference_cg(X.indptr, X.indices, conf, Y, YtY, 0.1, X0, 3)
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_allclose(out[2], X0[2], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(out, ref, rtol=2e-3, atol=2e-4 * np.abs(ref).max())


def test_cg_rows_bit_identical_across_thread_counts():
    X, Y, conf, X0 = _problem(n_rows=3000, n_cols=300, k=64, seed=7, density=0.05)
    YtY = K.gram(Y)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (before, 1, before):
            numba.set_num_threads(threads)
            out = X0.copy()
            K.cg_rows(X.indptr, X.indices, conf, Y, YtY, 0.01, out, 3)
            results.append(out)
    finally:
        numba.set_num_threads(before)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_cg_blocks_cover_the_rows_within_the_caps():
    g = np.random.default_rng(0)
    counts = g.integers(0, 30, 500)
    counts[[5, 77]] = 100  # rows over the entry cap: blocks of their own
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int32)
    b = K.cg_blocks(indptr, 8, 60)
    assert b[0] == 0 and b[-1] == 500 and np.all(np.diff(b) >= 1)
    rows, entries = np.diff(b), indptr[b[1:]] - indptr[b[:-1]]
    assert rows.max() <= 8
    assert np.all((entries <= 60) | (rows == 1))
    assert set(b[:-1][entries > 60]) == {5, 77}
    # maximal: a block ends only at the row cap, the entry cap or the last row
    nxt = indptr[np.minimum(b[1:-1] + 1, 500)] - indptr[b[:-2]]
    assert np.all((rows[:-1] == 8) | (nxt > 60))
    empty = K.cg_blocks(np.zeros(21, dtype=np.int32), 8, 60)  # rows without entries: the row cap alone
    np.testing.assert_array_equal(empty, [0, 8, 16, 20])
