"""The item statistics kernel (``item_stats``: the syrk path for non-negative Gram weights, the gemm path for
items with a negative weight) and the PSD solve's public base/shift terms, against dense float64 references."""

import numpy as np
import pytest
import scipy.sparse as sp

from dprec.kernels import als as K
from dprec.kernels.psd import _noisy_psd_solve


@pytest.fixture(autouse=True)
def _single_threaded_blas():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _case(k, wdtype, seed=0):
    g = np.random.default_rng(seed)
    n_users, n_items = 300, 40
    Xt = sp.random(n_items, n_users, density=0.3, format="csr", random_state=seed)
    Xt.sort_indices()
    U = g.standard_normal((n_users, k)).astype(np.float32)
    wA = g.random(Xt.nnz).astype(wdtype)
    wA[::7] = 0.0  # zero weights: √0 = 0 on the syrk path
    lo, hi = Xt.indptr[3], Xt.indptr[5]
    wA[lo:hi] -= 0.5  # items 3 and 4 get negative weights: the gemm path
    wb = g.standard_normal(Xt.nnz).astype(wdtype)
    return Xt, U, wA, wb


@pytest.mark.parametrize("k", [1, 7, 33])
@pytest.mark.parametrize("wdtype", [np.float32, np.float64])
def test_item_stats_syrk_and_gemm_paths_match_float64_reference(k, wdtype):
    Xt, U, wA, wb = _case(k, wdtype)
    A, b = K.item_stats(Xt.indptr, Xt.indices, wA, wb, U)
    assert (wA[Xt.indptr[3] : Xt.indptr[5]] < 0).any() and (wA[Xt.indptr[5] :] >= 0).all()
    for j in range(Xt.shape[0]):
        s, e = Xt.indptr[j], Xt.indptr[j + 1]
        G = U[Xt.indices[s:e]].astype(np.float64)
        A_ref = (G * wA[s:e].astype(np.float64)[:, None]).T @ G
        b_ref = wb[s:e].astype(np.float64) @ G
        scale = max(np.abs(A_ref).max(), 1e-300)
        assert np.abs(A[j] - A_ref).max() <= 1e-13 * scale * max(1, e - s), j
        assert np.abs(b[j] - b_ref).max() <= 1e-13 * max(np.abs(b_ref).max(), 1e-300) * max(1, e - s), j
    np.testing.assert_array_equal(A, np.swapaxes(A, 1, 2))  # exactly symmetric on both paths


def test_item_stats_user_block_on_the_syrk_path():
    Xt, U, wA, wb = _case(5, np.float64, seed=1)
    wA = np.abs(wA)
    full = K.item_stats(Xt.indptr, Xt.indices, wA, wb, U)
    parts = [K.item_stats(Xt.indptr, Xt.indices, wA, wb, U, lo, hi) for lo, hi in ((0, 100), (100, 100), (100, 300))]
    A, b = K.reduce_stats(parts)
    np.testing.assert_allclose(A, full[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b, full[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("noise_scale", [0.1, 20.0])
def test_noisy_psd_solve_base_and_shift_equal_adding_them_first(noise_scale):
    """``base`` and ``shift`` enter before the noise and the projection: the same estimator as adding them to
    the stack (float tolerance), on the Cholesky path and on the eigen path."""
    g = np.random.default_rng(2)
    n, k = 300, 6
    Y = g.standard_normal((n, 12, k))
    A = np.einsum("nij,nik->njk", Y, Y)
    B = g.standard_normal((30, k))
    base = B.T @ B
    shift = g.uniform(0.5, 3.0, n)
    b = g.standard_normal((n, k))
    nt = g.standard_normal((n, k * (k + 1) // 2)) * noise_scale
    nb = g.standard_normal((n, k)) * noise_scale
    reg, floor = np.zeros(n), 0.2
    got, n_eig = _noisy_psd_solve(A, b, nt, nb, reg, floor, base=base, shift=shift)
    ref, n_eig_ref = _noisy_psd_solve(A + base + shift[:, None, None] * np.eye(k), b, nt, nb, reg, floor)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-11)
    assert n_eig == n_eig_ref
    if noise_scale > 1:
        assert n_eig > n // 4  # the eigen path was exercised
    with pytest.raises(ValueError, match="base"):
        _noisy_psd_solve(A, b, nt, nb, reg, floor, base=np.zeros((k + 1, k + 1)))
