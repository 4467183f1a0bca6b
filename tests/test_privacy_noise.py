"""Noise has the calibrated variance; symmetric noise and PSD projection behave.

Statistical tests: each two-sided test below fails with probability ALPHA = 1e-6 when the code is
right (chi-square quantiles for the variance, normal quantiles for the mean); all are seeded, so
they are deterministic in practice.
"""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from dprec.privacy import NoiseSource, gaussian_noise, project_psd, secure_gaussian, symmetric_gaussian_noise

ALPHA = 1e-6


def assert_normal_with_sigma(x, sigma):
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    # variance: sum(x^2)/sigma^2 ~ chi2(n) (known mean 0)
    s = float(np.sum(x * x) / sigma**2)
    lo, hi = stats.chi2.ppf(ALPHA / 2, n), stats.chi2.isf(ALPHA / 2, n)
    assert lo <= s <= hi, f"variance statistic {s:.1f} outside [{lo:.1f}, {hi:.1f}] for n={n}"
    # mean: |mean| <= z sigma / sqrt(n)
    z = stats.norm.isf(ALPHA / 2)
    assert abs(x.mean()) <= z * sigma / math.sqrt(n)


@pytest.mark.parametrize("sigma", [0.37, 12.5])
def test_gaussian_noise_variance(sigma):
    x = gaussian_noise((200_000,), sigma, np.random.default_rng(1))
    assert x.dtype == np.float64
    assert_normal_with_sigma(x, sigma)


def test_gaussian_noise_zero_and_reproducible():
    g = np.random.default_rng(3)
    state = g.bit_generator.state
    z = gaussian_noise((4, 5), 0.0, g)
    assert z.shape == (4, 5) and not z.any() and g.bit_generator.state == state
    assert np.array_equal(gaussian_noise(10, 1.0, 7), gaussian_noise(10, 1.0, 7))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_noise(3, -1.0, 0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_noise(3, float("nan"), 0)


def test_symmetric_noise_variance():
    sigma, n, d = 2.5, 4000, 10
    N = symmetric_gaussian_noise(n, d, sigma, np.random.default_rng(5))
    assert N.shape == (n, d, d) and N.dtype == np.float64
    assert np.array_equal(N, np.swapaxes(N, 1, 2))
    iu = np.triu_indices(d, 1)
    assert_normal_with_sigma(N[:, iu[0], iu[1]], sigma)  # 180k off-diagonal draws
    assert_normal_with_sigma(N[:, np.arange(d), np.arange(d)], sigma)  # 40k diagonal draws
    # off-diagonal entries of different positions are uncorrelated: |r| <= z/sqrt(n)
    r = np.corrcoef(N[:, 0, 1], N[:, 2, 3])[0, 1]
    assert abs(r) <= stats.norm.isf(ALPHA / 2) / math.sqrt(n) * 1.01
    assert not symmetric_gaussian_noise(3, 4, 0.0, 0).any()


def test_secure_gaussian_variance():
    sigma = 3.0
    vals = np.full(10_000, 5.0)
    out = secure_gaussian(vals, sigma)
    assert out.shape == vals.shape and out.dtype == np.float64
    assert_normal_with_sigma(out - 5.0, sigma)
    assert np.array_equal(secure_gaussian([1.0, 2.0], 0.0), [1.0, 2.0])
    with pytest.raises(ValueError, match="small releases"):
        secure_gaussian(np.zeros(11), 1.0, max_size=10)
    with pytest.raises(ValueError, match="finite"):
        secure_gaussian([np.nan], 1.0)


def test_noise_source_dispatch():
    fast = NoiseSource(0)
    a = fast.gaussian((3, 2), 1.0)
    assert a.shape == (3, 2)
    assert np.array_equal(a, NoiseSource(0).gaussian((3, 2), 1.0))  # seeded → reproducible
    v = fast.gaussian(np.array([1.0, 2.0]), 0.0)
    assert np.array_equal(v, [1.0, 2.0])
    sec = NoiseSource(0, secure=True, secure_max_size=100)
    assert sec.gaussian(np.ones((2, 3)), 1.0).shape == (2, 3)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        big = sec.gaussian(1000, 1.0)
    assert big.shape == (1000,) and sec.fallbacks == 1 and len(w) == 1


def test_project_psd():
    rng = np.random.default_rng(0)
    A = symmetric_gaussian_noise(50, 6, 1.0, rng)
    P = project_psd(A)
    assert np.allclose(P, np.swapaxes(P, 1, 2))
    assert np.linalg.eigvalsh(P).min() >= -1e-10
    P2 = project_psd(A, floor=0.5)
    assert np.linalg.eigvalsh(P2).min() >= 0.5 - 1e-10
    # already PSD matrices are unchanged
    B = A @ np.swapaxes(A, 1, 2) + np.eye(6)
    assert np.allclose(project_psd(B), B)
    assert project_psd(B[0]).shape == (6, 6)
    with pytest.raises(ValueError, match="shape"):
        project_psd(np.zeros((2, 3)))
