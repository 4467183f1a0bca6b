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

from dprec.privacy import NoiseSource, NoiseStreams, PrivacyWarning, SecureNoiseError
from dprec.privacy.noise import gaussian_noise, project_psd, secure_gaussian, symmetric_gaussian_noise

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


def _streams(rng, model="M"):
    """NoiseStreams in reproducibility mode (the PrivacyWarning is tested separately)."""
    return NoiseStreams(rng, model=model, warn=False)


def test_noise_source_release_and_draw():
    fast = NoiseSource(_streams(0))
    a = fast.release(np.zeros((3, 2)), step="s", sigma=1.0, sensitivity=1.0)
    assert a.shape == (3, 2) and a.dtype == np.float64 and a.any()
    # seeded → reproducible
    assert np.array_equal(a, NoiseSource(_streams(0)).release(np.zeros((3, 2)), step="s", sigma=1.0, sensitivity=1.0))
    # σ = 0 (ε = ∞) returns the statistic unchanged
    v = fast.release(np.array([1.0, 2.0]), step="t", sigma=0.0, sensitivity=1.0)
    assert np.array_equal(v, [1.0, 2.0]) and fast.samplers["t"].startswith("none")
    assert "numpy" in fast.samplers["s"]
    # several draws of one step continue its stream (they are not the same draw again)
    d1 = fast.draw(100, step="d", sigma=1.0)
    d2 = fast.draw(100, step="d", sigma=1.0)
    assert not np.array_equal(d1, d2)
    np.testing.assert_array_equal(d1, NoiseSource(_streams(0)).draw(100, step="d", sigma=1.0))
    # the raw generator of a step is the stream's start
    g1, g2 = NoiseSource(_streams(0)).generator("x"), NoiseSource(_streams(0)).generator("x")
    assert g1.random() == g2.random()
    with pytest.raises(ValueError, match="sigma"):
        fast.release(np.zeros(2), step="s", sigma=-1.0, sensitivity=1.0)
    with pytest.raises(TypeError, match="NoiseStreams"):
        NoiseSource(0)
    with pytest.raises(ValueError, match="secure"):
        NoiseSource(_streams(0), secure="yes")


def test_release_noise_has_the_given_sigma():
    src = NoiseSource(_streams(11))
    out = src.release(np.full(100_000, 3.0), step="s", sigma=2.5, sensitivity=1.0)
    assert_normal_with_sigma(out - 3.0, 2.5)


def _corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def test_streams_of_different_models_and_steps_are_independent():
    """Same seed: another model name, another step or another index draws an independent stream (not equal,
    correlation ≈ 0 within the ALPHA interval)."""
    n = 50_000
    z = stats.norm.isf(ALPHA / 2) / math.sqrt(n)

    def noise(model, step, index=0):
        return NoiseSource(_streams(42, model)).draw(n, step=step, sigma=1.0, index=index)

    base = noise("DPALS", "item_biases")
    for other in (
        noise("DPGlobalEffects", "item_biases"),
        noise("DPALS", "global_mean"),
        noise("DPALS", "item_biases", 1),
    ):
        assert not np.array_equal(base, other)
        assert not np.allclose(base, other)
        assert abs(_corr(base, other)) <= z
    # and the raw generators too (no shared prefix)
    a = _streams(42, "A").generator("s").standard_normal(n)
    b = _streams(42, "B").generator("s").standard_normal(n)
    assert abs(_corr(a, b)) <= z and not np.array_equal(a[:10], b[:10])


def test_same_seed_model_and_step_is_reproducible():
    for rng in (7, np.random.SeedSequence(7)):
        a = NoiseSource(_streams(rng, "DPALS")).release(np.zeros(1000), step="factor_stats", sigma=1.0, sensitivity=1.0)
        b = NoiseSource(_streams(rng, "DPALS")).release(np.zeros(1000), step="factor_stats", sigma=1.0, sensitivity=1.0)
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(
        NoiseSource(_streams(7)).draw(100, step="s", sigma=1.0), NoiseSource(_streams(8)).draw(100, step="s", sigma=1.0)
    )


def test_no_seed_gives_fresh_noise_each_time():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rng=None is not reproducibility mode: no warning
        s1, s2 = NoiseStreams(None, model="M"), NoiseStreams(None, model="M")
    assert not s1.reproducible and "entropy" in s1.describe()
    a = NoiseSource(s1).release(np.zeros(1000), step="s", sigma=1.0, sensitivity=1.0)
    b = NoiseSource(s2).release(np.zeros(1000), step="s", sigma=1.0, sensitivity=1.0)
    assert not np.array_equal(a, b)
    assert abs(_corr(a, b)) <= stats.norm.isf(ALPHA / 2) / math.sqrt(1000)


def test_secure_mode():
    sec = NoiseSource(_streams(0), secure=True, secure_max_size=100)
    out = sec.release(np.ones((2, 3)), step="item_counts", sigma=1.0, sensitivity=1.0)
    assert out.shape == (2, 3) and not np.array_equal(out, np.ones((2, 3)))
    assert "opendp" in sec.samplers["item_counts"]
    # too large: refused (never a silent fallback to numpy), nothing recorded for that step
    with pytest.raises(SecureNoiseError):
        sec.release(np.zeros(101), step="big", sigma=1.0, sensitivity=1.0)
    with pytest.raises(SecureNoiseError):
        sec.check_size("big", 101)
    sec.check_size("ok", 100)
    assert "big" not in sec.samplers
    # noise alone (for fused kernels) is refused in secure mode
    with pytest.raises(RuntimeError, match="secure"):
        sec.draw(10, step="factor_stats", sigma=1.0)
    # the fast path has no size limit
    NoiseSource(_streams(0), secure_max_size=100).check_size("big", 10**9)


def test_secure_release_variance():
    sec = NoiseSource(_streams(0), secure=True)
    out = sec.release(np.full(10_000, 5.0), step="s", sigma=3.0, sensitivity=2.0)
    assert_normal_with_sigma(out - 5.0, 3.0)


def test_caller_seed_warns():
    for rng in (918273645, np.random.SeedSequence(1), np.random.default_rng(1)):
        with pytest.warns(PrivacyWarning, match="reproducibility"):
            s = NoiseStreams(rng, model="DPALS")
        assert s.reproducible and "918273645" not in s.describe() and "918273645" not in repr(s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NoiseStreams(5, model="DPALS", warn=False)
    with pytest.raises(ValueError):
        NoiseStreams(-1, model="M", warn=False)
    with pytest.raises(TypeError):
        NoiseStreams("0", model="M", warn=False)


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


def test_draw_rows_is_the_same_for_any_thread_count_and_seeded_run():
    """Parallel row-block draws: one stream per (step, index, block), blocks fixed by the shape, so the thread
    count does not change the realisation; the blocks' streams differ from each other and from the step's own."""
    from dprec.privacy import noise as N

    n, widths = 3 * (N.BLOCK_ENTRIES // 30) + 7, (20, 10)  # four blocks, the last one partial
    one = NoiseSource(_streams(5)).draw_rows(n, widths, step="s", sigma=1.5, index=2, threads=1)
    for threads in (2, 3):
        many = NoiseSource(_streams(5)).draw_rows(n, widths, step="s", sigma=1.5, index=2, threads=threads)
        for a, b in zip(one, many):
            np.testing.assert_array_equal(a, b)
    out = [np.empty((n, w)) for w in widths]
    again = NoiseSource(_streams(5)).draw_rows(n, widths, step="s", sigma=1.5, index=2, out=out)
    assert again[0] is out[0]
    np.testing.assert_array_equal(again[1], one[1])
    # block 0 starts its stream with its rows of the first array, then those of the second
    rows = N.BLOCK_ENTRIES // 30
    g = _streams(5).generator("s", 2, block=0)
    np.testing.assert_array_equal(one[0][:rows], 1.5 * g.standard_normal((rows, 20)))
    np.testing.assert_array_equal(one[1][:rows], 1.5 * g.standard_normal((rows, 10)))
    # other index, other step, other block: different streams; not the step's own stream either
    other = NoiseSource(_streams(5)).draw_rows(n, widths, step="s", sigma=1.5, index=3)
    assert not np.array_equal(one[0], other[0])
    assert not np.array_equal(one[0][:rows], one[0][rows : 2 * rows])
    own = 1.5 * _streams(5).generator("s", 2).standard_normal((rows, 20))
    assert not np.array_equal(one[0][:rows], own)
    assert_normal_with_sigma(np.concatenate([a.ravel() for a in one]), 1.5)


def test_draw_rows_rejects_secure_mode_and_bad_buffers():
    with pytest.raises(RuntimeError, match="secure"):
        NoiseSource(_streams(0), secure=True).draw_rows(4, (3,), step="s", sigma=1.0)
    with pytest.raises(ValueError, match="out must be"):
        NoiseSource(_streams(0)).draw_rows(4, (3,), step="s", sigma=1.0, out=[np.empty((4, 2))])
    zero = NoiseSource(_streams(0)).draw_rows(4, (3, 2), step="s", sigma=0.0)
    assert not zero[0].any() and not zero[1].any()
