"""The DP-ALS noisy item solve against a dense numpy reference (both the Cholesky and the eigen path), and
its small symmetric eigensolver / PSD projection against ``numpy.linalg.eigh``."""

import numpy as np
import pytest

from dprec.kernels.als import clipped_weighted_residuals
from dprec.kernels.psd import _noisy_psd_solve, noisy_psd_solve, psd_project, small_eigh
from dprec.privacy.noise import project_psd


@pytest.fixture(autouse=True)
def _single_threaded_blas():
    """As in the models (``_BaseModel`` runs kernels under the same limit): numpy's threaded OpenBLAS (the
    references) spinning next to numba's OpenMP threads makes both crawl on a 2-core machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _reference(A, b, noise_tri, noise_b, reg, floor=0.0):
    n, k = b.shape
    N = np.zeros((n, k, k))
    iu = np.triu_indices(k)
    N[:, iu[0], iu[1]] = noise_tri
    N = N + np.swapaxes(N, 1, 2) - np.einsum("nii->ni", N)[:, :, None] * np.eye(k)
    P = project_psd(A + N, floor=floor)
    R = (reg[:, None, None] if reg.ndim == 1 else reg[:, :, None]) * np.eye(k)  # per item or per coordinate
    return np.linalg.solve(P + R, (b + noise_b)[..., None])[..., 0], N


@pytest.mark.parametrize("noise_scale", [0.0, 0.5, 3.0, 30.0])
def test_noisy_psd_solve_matches_projection_then_solve(noise_scale):
    g = np.random.default_rng(0)
    n, k = 400, 7
    U = g.normal(size=(n, 20, k))
    A = np.einsum("nij,nik->njk", U, U)
    b = g.normal(size=(n, k))
    noise_tri = g.normal(size=(n, k * (k + 1) // 2)) * noise_scale
    noise_b = g.normal(size=(n, k)) * noise_scale
    reg = g.uniform(0.5, 5.0, n)
    got = noisy_psd_solve(A, b, noise_tri, noise_b, reg)
    ref, N = _reference(A, b, noise_tri, noise_b, reg)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-10)
    if noise_scale >= 30.0:  # most noisy matrices are indefinite: the eigen path was exercised
        assert np.mean(np.linalg.eigvalsh(A + N).min(axis=1) < 0) > 0.5


def test_noisy_psd_solve_floor_and_shapes():
    g = np.random.default_rng(1)
    n, k = 50, 4
    A = np.tile(np.eye(k), (n, 1, 1))
    b = g.normal(size=(n, k))
    nt = g.normal(size=(n, k * (k + 1) // 2)) * 2
    nb = np.zeros((n, k))
    reg = np.full(n, 0.3)
    np.testing.assert_allclose(
        noisy_psd_solve(A, b, nt, nb, reg, floor=0.5),
        _reference(A, b, nt, nb, reg, floor=0.5)[0],
        rtol=1e-9,
        atol=1e-10,
    )
    with pytest.raises(ValueError, match="shape"):
        noisy_psd_solve(A, b, nt[:, :-1], nb, reg)


# ---------------------------------------------------------------------------------------------- eigensolver
def _sym_family(g, n, k):
    """Named stacks of (n, k, k) symmetric matrices that stress an eigensolver."""
    B = g.normal(size=(n, k, k))
    Q, _ = np.linalg.qr(g.normal(size=(n, k, k)))
    r = max(1, k // 3)
    U = g.normal(size=(n, k, r))
    fam = {
        "indefinite": B + np.swapaxes(B, 1, 2),
        "psd": B @ np.swapaxes(B, 1, 2),
        "rank_deficient_psd": U @ np.swapaxes(U, 1, 2),
        "rank_deficient_indefinite": U @ np.swapaxes(U, 1, 2) - 2.0 * U[:, :, :1] @ np.swapaxes(U[:, :, :1], 1, 2),
        # repeated eigenvalues, including a repeated zero and repeated negatives, in a random basis
        "repeated": (Q * g.choice([-2.0, 0.0, 1.0, 3.0], size=(n, 1, k))) @ np.swapaxes(Q, 1, 2),
        "identity_multiple": np.eye(k) * g.choice([-1.5, 0.0, 2.0], size=(n, 1, 1)),
        "zero": np.zeros((n, k, k)),
        "diagonal": np.eye(k) * g.normal(size=(n, 1, k)),
        "tridiagonal": np.triu(np.tril(B + np.swapaxes(B, 1, 2), 1), -1),
        "clustered": (Q * (1.0 + 1e-10 * g.normal(size=(n, 1, k)))) @ np.swapaxes(Q, 1, 2)
        - (Q[:, :, :1] * 2.0) @ np.swapaxes(Q[:, :, :1], 1, 2),
        "graded": (Q * np.logspace(-12, 3, k)[None, None, :] * g.choice([-1.0, 1.0], size=(n, 1, k)))
        @ np.swapaxes(Q, 1, 2),
        "tiny": 1e-200 * (B + np.swapaxes(B, 1, 2)),
        "huge": 1e200 * (B + np.swapaxes(B, 1, 2)),
        "unsymmetric_input": B,  # the routines symmetrise (A + Aᵀ)/2
    }
    return fam


SIZES = list(range(1, 41))


def _stacked(fam):
    """One stack of all families (one kernel call per case: parallel-region launches dominate on a busy VM)."""
    names = [name for name, A in fam.items() for _ in range(len(A))]
    return np.concatenate(list(fam.values())), np.array(names)


@pytest.mark.parametrize("k", SIZES)
def test_small_eigh_matches_numpy(k):
    g = np.random.default_rng(100 + k)
    A, names = _stacked(_sym_family(g, 7, k))  # odd counts: paired and unpaired QL both run
    S = 0.5 * (A + np.swapaxes(A, 1, 2))
    scale = np.maximum(np.abs(S).max(axis=(1, 2)), np.finfo(float).tiny)[:, None]
    w_ref = np.linalg.eigvalsh(S)
    for paired in (True, False):
        w, V = small_eigh(A, paired=paired)
        assert np.all(np.diff(w, axis=1) >= 0)
        err_w = np.abs(w - w_ref).max(axis=1) / scale[:, 0]
        # orthonormal eigenvectors that reconstruct the matrix (the eigenvectors themselves are not unique)
        err_o = np.abs(np.swapaxes(V, 1, 2) @ V - np.eye(k)).max(axis=(1, 2))
        err_r = np.abs((V * w[:, None, :]) @ np.swapaxes(V, 1, 2) - S).max(axis=(1, 2)) / scale[:, 0]
        for err, what in ((err_w, "eigenvalues"), (err_o, "orthogonality"), (err_r, "reconstruction")):
            assert err.max() < 1e-12, f"{what}: {err.max():.2e} for {sorted(set(names[err >= 1e-12]))}"


def test_small_eigh_single_matrix_and_paired_equals_single():
    g = np.random.default_rng(5)
    A = g.normal(size=(9, 33, 33))
    w1, V1 = small_eigh(A, paired=True)
    w2, V2 = small_eigh(A, paired=False)
    # interleaving two QL iterations changes the schedule, not the algorithm; the compiled code may still round
    # differently (seen on fresh compiles on AMD EPYC), so equal to rounding, and bit-identical run to run
    np.testing.assert_allclose(w1, w2, rtol=0, atol=1e-12 * np.abs(w2).max())
    np.testing.assert_allclose(np.abs(V1), np.abs(V2), rtol=0, atol=1e-10)
    w3, V3 = small_eigh(A, paired=True)
    np.testing.assert_array_equal(w1, w3)
    np.testing.assert_array_equal(V1, V3)
    w, V = small_eigh(A[3])
    assert w.shape == (33,) and V.shape == (33, 33)
    np.testing.assert_array_equal(w, w2[3])
    with pytest.raises(ValueError, match="NaN or infinite"):
        small_eigh(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="matrix"):
        small_eigh(np.zeros((3, 4)))


@pytest.mark.parametrize("k", SIZES)
def test_psd_project_matches_numpy_projection(k):
    g = np.random.default_rng(1000 + k)
    fam = _sym_family(g, 5, k)
    extreme = {name: fam.pop(name) for name in ("tiny", "huge")}  # an absolute floor means nothing there
    A, names = _stacked(fam)
    scale = np.maximum(1.0, np.abs(A).max(axis=(1, 2)))
    for floor in (0.0, 0.5, -0.25):
        P, n_eig = psd_project(A, floor=floor, return_count=True)
        err = np.abs(P - project_psd(A, floor=floor)).max(axis=(1, 2)) / scale
        assert err.max() < 1e-9, f"floor {floor}: {err.max():.2e} for {sorted(set(names[err >= 1e-9]))}"
        np.testing.assert_array_equal(P, np.swapaxes(P, 1, 2))
        assert 0 <= n_eig <= len(A)
    A = np.concatenate(list(extreme.values()))
    scale = np.abs(A).max(axis=(1, 2))
    assert (np.abs(psd_project(A) - project_psd(A)).max(axis=(1, 2)) / scale).max() < 1e-12


def test_psd_project_properties_and_fast_path_count():
    g = np.random.default_rng(7)
    k = 12
    B = g.normal(size=(200, k, k))
    pd = B @ np.swapaxes(B, 1, 2) + 0.5 * np.eye(k)  # positive definite: P(M) = M exactly, no eigensolver
    indef = B + np.swapaxes(B, 1, 2) - 4.0 * np.eye(k)  # has negative eigenvalues
    mixed = np.where(g.random(200)[:, None, None] < 0.3, pd, indef)
    n_indef = int(np.sum(np.linalg.eigvalsh(mixed).min(axis=1) < 0))
    P, n_eig = psd_project(mixed, return_count=True)
    assert n_eig == n_indef
    is_pd = np.linalg.eigvalsh(mixed).min(axis=1) > 0
    np.testing.assert_array_equal(P[is_pd], mixed[is_pd])
    w = np.linalg.eigvalsh(P)
    assert w.min() > -1e-12 * np.abs(mixed).max()
    # idempotent (a projection) and the identity on the PSD cone
    np.testing.assert_allclose(psd_project(P), P, rtol=0, atol=1e-10)
    # one (k, k) matrix in, one out
    np.testing.assert_allclose(psd_project(indef[0]), project_psd(indef[0]), rtol=0, atol=1e-10)


def test_fast_path_decision_at_the_diagonal_pretest():
    # the Cholesky test is skipped when a diagonal entry is ≤ floor; around that edge the decision must be the
    # factorisation's: PD with the smallest diagonal entry just above floor takes the fast path (P(M) = M
    # exactly), a diagonal entry at floor or below needs the eigensolver
    g = np.random.default_rng(11)
    k = 9
    Q, _ = np.linalg.qr(g.normal(size=(k, k)))
    pd = Q @ np.diag(np.linspace(0.5, 3.0, k)) @ Q.T
    pd = 0.5 * (pd + pd.T)
    floor = float(np.diag(pd).min()) * (1 - 1e-12)
    lo_eig = float(np.linalg.eigvalsh(pd).min())
    for f, fast in [(0.0, True), (0.999 * lo_eig, True), (floor, False), (float(np.diag(pd).min()), False)]:
        P, n_eig = psd_project(pd[None], floor=f, return_count=True)
        assert n_eig == (0 if fast else 1), f
        if fast:
            np.testing.assert_array_equal(P[0], pd)
        else:
            np.testing.assert_allclose(P[0], project_psd_floor(pd, f), rtol=0, atol=1e-10)
    # one negative diagonal entry in an otherwise dominant matrix: the eigensolver, and the right projection
    M = np.eye(k) * 5.0 + 0.1 * (lambda B: B + B.T)(g.normal(size=(k, k)))
    M[3, 3] = -0.2
    P, n_eig = psd_project(M[None], return_count=True)
    assert n_eig == 1
    np.testing.assert_allclose(P[0], project_psd(M), rtol=0, atol=1e-10)


def project_psd_floor(M, floor):
    w, V = np.linalg.eigh(M)
    return (V * np.maximum(w, floor)) @ V.T


@pytest.mark.parametrize("k", [1, 2, 3, 9, 17, 33, 40])
@pytest.mark.parametrize("n", [1, 2, 37])
def test_noisy_psd_solve_sizes_against_reference(k, n):
    """Sizes incl. the DP-ALS ones (k = d + 1), odd item counts (one unpaired eigendecomposition), a mix of
    items on the fast (positive definite) and the eigen path, and per-coordinate ridges."""
    g = np.random.default_rng(k * 100 + n)
    U = g.normal(size=(n, 3 * k, k))
    A = np.einsum("nij,nik->njk", U, U)
    scale = np.where(g.random(n) < 0.3, 0.0, g.uniform(0.5, 5.0, n))  # ~30% noise-free: positive definite
    noise_tri = g.normal(size=(n, k * (k + 1) // 2)) * scale[:, None] * np.sqrt(k)
    noise_b = g.normal(size=(n, k)) * scale[:, None]
    b = g.normal(size=(n, k))
    reg = g.uniform(0.2, 3.0, (n, k))
    got, n_eig = _noisy_psd_solve(A, b, noise_tri, noise_b, reg)
    ref, N = _reference(A, b, noise_tri, noise_b, reg)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-10)
    np.testing.assert_array_equal(got, noisy_psd_solve(A, b, noise_tri, noise_b, reg))
    assert n_eig == int(np.sum(np.linalg.eigvalsh(A + N).min(axis=1) <= 0))


def test_noisy_psd_solve_rejects_non_finite():
    n, k = 4, 3
    A = np.tile(np.eye(k), (n, 1, 1))
    nt = np.zeros((n, 6))
    nt[2, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        noisy_psd_solve(A, np.zeros((n, k)), nt, np.zeros((n, k)), np.ones(n))


# ---------------------------------------------------------------------------------------------- residuals
@pytest.mark.parametrize("bound", [np.inf, 0.75])
def test_clipped_weighted_residuals_against_numpy_and_out_buffers(bound):
    g = np.random.default_rng(11)
    n, n_rows, n_cols = 5000, 60, 40
    data = g.uniform(1.0, 5.0, n)
    rows = g.integers(0, n_rows, n).astype(np.int32)
    cols = g.integers(0, n_cols, n).astype(np.int32)
    rb, cb, w = g.normal(size=n_rows), g.normal(size=n_cols), g.uniform(0.0, 2.0, n)
    ref = w * np.clip(data - 3.5 - rb[rows] - cb[cols], -bound, bound)
    got = clipped_weighted_residuals(data, rows, cols, 3.5, rb, cb, w, bound)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        buf = np.full(n, np.nan, dtype=dtype)
        assert clipped_weighted_residuals(data, rows, cols, 3.5, rb, cb, w, bound, out=buf) is buf
        np.testing.assert_allclose(buf, ref, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="out must be"):
        clipped_weighted_residuals(data, rows, cols, 3.5, rb, cb, w, bound, out=np.empty(n - 1))


def test_dpals_fit_statistics_respect_the_clip_bound_and_reach_the_noisy_solve_in_float64(monkeypatch):
    """A finite-ε DP-ALS fit, spied at the kernels it calls: the user vectors that enter the item statistics
    have exact norm ≤ Γ (no tolerance; most rows are clipped at this small Γ), the residual terms satisfy
    ``|e| ≤ w·B``, and the Gaussian mechanism (``noisy_psd_solve``) receives float64 ``A`` and ``b``."""
    from fractions import Fraction

    from dprec.kernels import als as K
    from dprec.kernels import psd as P
    from dprec.models import DPALS
    from dprec.testing import contract_data

    gamma, B, d = 0.05, 1.0, 4
    stats, solves = [], []
    real_stats, real_solve = K.item_stats, P._noisy_psd_solve

    def spy_stats(indptr, indices, wA, wb, U, *a, **kw):
        stats.append((np.array(wA, copy=True), np.array(wb, copy=True), np.array(U, copy=True)))
        return real_stats(indptr, indices, wA, wb, U, *a, **kw)

    def spy_solve(A, b, *a, **kw):
        solves.append((A.dtype, b.dtype))
        return real_solve(A, b, *a, **kw)

    monkeypatch.setattr(K, "item_stats", spy_stats)
    monkeypatch.setattr(P, "_noisy_psd_solve", spy_solve)
    DPALS(epsilon=8.0, delta=1e-5, factors=d, iterations=2, clip_norm=gamma, residual_bound=B, rng=0).fit(
        contract_data(n_users=200, n_items=40)
    )
    assert len(stats) == 2 and solves == [(np.float64, np.float64)] * 2
    for wA, wb, U in stats:
        norms = np.linalg.norm(U[:, :d].astype(np.float64), axis=1)
        assert (norms > 0.99 * gamma).mean() > 0.5
        assert norms.max() <= gamma
        for r in np.argsort(-norms)[:50]:
            assert sum(Fraction(float(x)) ** 2 for x in U[r, :d]) <= Fraction(gamma) ** 2
        # the weights as float32 rounded toward zero (releases.kernel_weights), widened exactly
        assert wA.dtype == np.float32 and np.all(np.abs(wb) <= wA.astype(np.float64) * B)


@pytest.mark.parametrize("k", [2, 3, 9, 25, 26, 33])
@pytest.mark.parametrize("form", ["bias_last", "odd_first", "scalar", "negative_delta"])
def test_noisy_psd_solve_spectral_ridge_forms_against_reference(k, form):
    """The ridge forms that go through the spectral solve (one value everywhere but at most one coordinate:
    DP-ALS's item ridge; a negative δ too) on strongly indefinite noisy matrices: equal to the explicit
    projection followed by the dense solve, whichever items share the interleaved eigensolver."""
    g = np.random.default_rng(k * 7 + len(form))
    n = 41
    U = g.normal(size=(n, 2 * k, k))
    A = np.einsum("nij,nik->njk", U, U)
    noise_tri = g.normal(size=(n, k * (k + 1) // 2)) * 4.0 * np.sqrt(k)
    noise_b = g.normal(size=(n, k))
    b = g.normal(size=(n, k))
    reg = np.repeat(g.uniform(0.5, 4.0, n)[:, None], k, axis=1)
    if form == "bias_last":
        reg[:, -1] += 100.0
    elif form == "odd_first":
        reg[:, 0] += 3.0
    elif form == "negative_delta":
        reg[:, -1] *= 0.25
    got, n_eig = _noisy_psd_solve(A, b, noise_tri, noise_b, reg)
    ref, _ = _reference(A, b, noise_tri, noise_b, reg)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-10)
    assert n_eig > n // 2  # most items took the eigen path
    # other pairings in the interleaved eigensolver: each item alone, and the stack shifted by one (equal to
    # rounding: a fresh numba compile may contract the single and the paired QL recurrences differently)
    for j in (0, 7, n - 1):
        one = noisy_psd_solve(A[j : j + 1], b[j : j + 1], noise_tri[j : j + 1], noise_b[j : j + 1], reg[j : j + 1])
        np.testing.assert_allclose(one[0], got[j], rtol=1e-12, atol=1e-13)
    shifted = noisy_psd_solve(A[1:], b[1:], noise_tri[1:], noise_b[1:], reg[1:])
    np.testing.assert_allclose(shifted, got[1:], rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(noisy_psd_solve(A, b, noise_tri, noise_b, reg), got)  # run to run


@pytest.mark.parametrize("k", [9, 25])
def test_lane_batches_mixing_every_kind_of_item(k):
    """The lane-wise spectral solve (k ≤ LANE_MAX_K) over batches that mix spectral items with items it must
    hand back: per-coordinate ridges (explicit projection), all-zero matrices (nothing to reduce), positive
    definite ones (the Cholesky fast path, not in the batch) and a partial last batch; each item equals the
    dense reference, and does not depend on which items share its batch."""
    from dprec.kernels.psd import LANE_MAX_K, LANES

    assert k <= LANE_MAX_K
    g = np.random.default_rng(k)
    n = 2 * LANES + 9
    U = g.normal(size=(n, 2 * k, k))
    A = np.einsum("nij,nik->njk", U, U)
    noise_tri = g.normal(size=(n, k * (k + 1) // 2)) * 4.0 * np.sqrt(k)
    reg = np.repeat(g.uniform(0.5, 4.0, n)[:, None], k, axis=1)
    reg[:, -1] += 2.0
    per_coord = g.random(n) < 0.2
    reg[per_coord] = g.uniform(0.5, 4.0, (per_coord.sum(), k))
    zero = np.flatnonzero(~per_coord)[:3]
    A[zero] = 0.0
    noise_tri[zero] = 0.0
    pd = np.flatnonzero(~per_coord)[3:6]
    noise_tri[pd] = 0.0
    noise_b = g.normal(size=(n, k))
    b = g.normal(size=(n, k))
    got, n_eig = _noisy_psd_solve(A, b, noise_tri, noise_b, reg)
    ref, _ = _reference(A, b, noise_tri, noise_b, reg)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-10)
    assert n // 2 < n_eig <= n - len(pd)  # the positive definite ones took the fast path
    for lo in (1, LANES - 1):  # other batch compositions: equal to rounding
        np.testing.assert_allclose(
            noisy_psd_solve(A[lo:], b[lo:], noise_tri[lo:], noise_b[lo:], reg[lo:]), got[lo:], rtol=1e-12, atol=1e-13
        )


def test_noisy_psd_solve_is_bit_identical_for_any_thread_count():
    """Chunks (and so the pairing of items for the interleaved QL) follow ``n`` only, never the thread count."""
    import numba

    from dprec.kernels.psd import PSD_CHUNK

    g = np.random.default_rng(11)
    n, k = 3 * PSD_CHUNK + 7, 9
    U = g.normal(size=(n, 20, k))
    A = np.einsum("nia,nib->nab", U, U)
    b = g.normal(size=(n, k))
    noise_tri = g.normal(0, 6.0, size=(n, k * (k + 1) // 2))  # strongly indefinite: most items need the QL
    noise_b = g.normal(size=(n, k))
    reg = np.full((n, k), 2.0)
    reg[:, -1] += 5.0
    old = numba.get_num_threads()
    try:
        outs = []
        for t in sorted({1, old}):
            numba.set_num_threads(t)
            outs.append(_noisy_psd_solve(A, b, noise_tri, noise_b, reg))  # (x, number of items that needed the QL)
    finally:
        numba.set_num_threads(old)
    x0, cnt0 = outs[0]
    assert cnt0 > n // 2
    for x, cnt in outs[1:]:
        assert cnt == cnt0
        np.testing.assert_array_equal(x, x0)


def test_every_input_form_compiles_the_solve_once():
    """Scalar, per-item and per-coordinate ridges, given or default base and shift, read-only or writable
    statistics, and the projection: one compiled ``_psd_chunks_nb`` (before, a read-only broadcast ridge and
    literal arguments each added a specialisation of the whole solve, tens of seconds of cold compile)."""
    from dprec.kernels import psd

    g = np.random.default_rng(0)
    n, k = 12, 5
    A = g.standard_normal((n, k, k))
    A = A @ A.transpose(0, 2, 1)
    b, tri, nb = g.standard_normal((n, k)), g.standard_normal((n, k * (k + 1) // 2)), g.standard_normal((n, k))
    A_ro = A.copy()
    A_ro.flags.writeable = False
    calls = [
        lambda: noisy_psd_solve(A, b, tri, nb, 1.0),
        lambda: noisy_psd_solve(A_ro, b, tri, nb, np.ones(n), base=np.eye(k), shift=np.ones(n)),
        lambda: noisy_psd_solve(A, b, tri, nb, np.ones((n, k)), shift=np.ones((n, k))),
        lambda: psd_project(A - 2 * np.eye(k)),
        lambda: psd_project(A_ro[0]),
    ]
    counts = []
    for call in calls:
        call()
        counts.append(len(psd._psd_chunks_nb.signatures))
    assert counts == [counts[0]] * len(calls), psd._psd_chunks_nb.signatures
