"""The DP-ALS noisy item solve against a dense numpy reference (both the Cholesky and the eigen path)."""

import numpy as np
import pytest

from dprec.kernels.dpals import noisy_psd_solve
from dprec.privacy.noise import project_psd


def _reference(A, b, noise_tri, noise_b, reg, floor=0.0):
    n, k = b.shape
    N = np.zeros((n, k, k))
    iu = np.triu_indices(k)
    N[:, iu[0], iu[1]] = noise_tri
    N = N + np.swapaxes(N, 1, 2) - np.einsum("nii->ni", N)[:, :, None] * np.eye(k)
    P = project_psd(A + N, floor=floor)
    return np.linalg.solve(P + reg[:, None, None] * np.eye(k), (b + noise_b)[..., None])[..., 0], N


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
    np.testing.assert_allclose(noisy_psd_solve(A, b, nt, nb, reg, floor=0.5), _reference(A, b, nt, nb, reg, floor=0.5)[0],
                               rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match="shape"):
        noisy_psd_solve(A, b, nt[:, :-1], nb, reg)
