"""Noise generation and post-processing.

Two sampling paths:

*fast* (default)
    Bulk draws from a seeded :class:`numpy.random.Generator` (``standard_normal`` scaled by σ).
    Reproducible and fast; used for large releases (Gram matrices, factor statistics).
*secure*
    OpenDP's Gaussian mechanism on a float vector domain
    (``opendp.measurements.make_gaussian(vector_domain(atom_domain(T=float, nan=False)),
    l2_distance(T=float), scale=σ)``). OpenDP samples a discrete Gaussian on a fine lattice
    (granularity ``2^k``) with exact arithmetic and a cryptographically secure RNG, then rounds to
    the nearest float, which avoids the floating-point attacks on textbook samplers (Mironov
    2012). It is slow (~15k draws/s), ignores ``rng`` (not reproducible) and is meant for small
    releases — means, counts, biases (up to ~1e5 entries).

Floating-point caveat (honest version): only the *noise addition* of the secure path is
protected. The statistic that enters it is computed by dprec in ordinary floating point (sums,
clipping, centring), and everything downstream (PSD projection, linear solves) is ordinary float
arithmetic too. Rounding in those computations can in principle make the true sensitivity
differ from the analytic one by a few ulps; dprec does not defend against adversaries exploiting
this. The fast path additionally relies on numpy's PCG64/ziggurat sampler, which is not a
cryptographic RNG.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .._rng import as_generator

__all__ = [
    "gaussian_noise",
    "symmetric_gaussian_noise",
    "project_psd",
    "secure_gaussian",
    "NoiseSource",
    "SECURE_MAX_SIZE",
]

#: Largest release (number of entries) the secure path accepts by default.
SECURE_MAX_SIZE = 100_000


def _check_sigma(sigma) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise ValueError(f"sigma must be a real number >= 0, got {sigma!r}")
    s = float(sigma)
    if not (s >= 0) or math.isinf(s):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    return s


def gaussian_noise(shape, sigma, rng=None) -> np.ndarray:
    """I.i.d. ``N(0, σ²)`` noise of ``shape`` (float64) from a numpy Generator.

    ``σ = 0`` returns zeros (and draws nothing, so the generator's stream is untouched).
    """
    s = _check_sigma(sigma)
    if s == 0:
        return np.zeros(shape, dtype=np.float64)
    gen = as_generator(rng)
    out = gen.standard_normal(shape, dtype=np.float64)
    out *= s
    return out


def symmetric_gaussian_noise(n_mats: int, d: int, sigma, rng=None) -> np.ndarray:
    """A stack of ``n_mats`` symmetric ``d×d`` noise matrices, shape ``(n_mats, d, d)``, float64.

    The upper triangle including the diagonal is drawn i.i.d. ``N(0, σ²)`` and mirrored, so every
    entry (diagonal and off-diagonal) has variance ``σ²``. This is the symmetric Gaussian mechanism
    for symmetric statistics such as Gram matrices ``A_j = Σ u uᵀ``: releasing the upper triangle
    of ``A_j`` with noise ``σ`` costs at most as much as releasing the full matrix with L2 (Frobenius)
    sensitivity ``Δ_F`` (the upper triangle's L2 sensitivity is ``<= Δ_F``), and mirroring is
    post-processing.
    """
    for name, v in (("n_mats", n_mats), ("d", d)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    s = _check_sigma(sigma)
    out = np.zeros((int(n_mats), int(d), int(d)), dtype=np.float64)
    if s == 0 or n_mats == 0 or d == 0:
        return out
    gen = as_generator(rng)
    iu, ju = np.triu_indices(int(d))
    vals = gen.standard_normal((int(n_mats), iu.size), dtype=np.float64)
    vals *= s
    out[:, iu, ju] = vals
    out[:, ju, iu] = vals
    return out


def project_psd(A, floor: float = 0.0) -> np.ndarray:
    """Project symmetric matrices onto ``{X : X ⪰ floor·I}`` (eigenvalues clipped below at ``floor``).

    Accepts one ``(d, d)`` matrix or a stack ``(n, d, d)``; the input is symmetrised as
    ``(A + Aᵀ)/2`` first. Post-processing of a DP release, so it costs no privacy. Returns float64.
    """
    A = np.asarray(A, dtype=np.float64)
    if A.ndim not in (2, 3) or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"A must be a (d, d) matrix or an (n, d, d) stack, got shape {A.shape}")
    if not np.isfinite(A).all():
        raise ValueError("A contains NaN or infinite entries")
    f = float(floor)
    if math.isnan(f):
        raise ValueError("floor must not be NaN")
    sym = 0.5 * (A + np.swapaxes(A, -1, -2))
    w, V = np.linalg.eigh(sym)
    w = np.maximum(w, f)
    out = (V * w[..., None, :]) @ np.swapaxes(V, -1, -2)
    return 0.5 * (out + np.swapaxes(out, -1, -2))


def secure_gaussian(values, sigma, *, max_size: int = SECURE_MAX_SIZE) -> np.ndarray:
    """Add Gaussian noise ``N(0, σ²)`` to ``values`` with OpenDP's secure sampler.

    Uses ``opendp.measurements.make_gaussian`` on ``vector_domain(atom_domain(T=float, nan=False))``
    with ``l2_distance(T=float)`` and ``scale=σ`` (the standard deviation). The caller is
    responsible for accounting (``ρ = Δ²/(2σ²)``, see :mod:`dprec.privacy.accounting`); OpenDP's
    own privacy map is not consulted here. See the module docstring for the floating-point caveat.
    Not reproducible: OpenDP uses its own cryptographically secure RNG.

    Parameters
    ----------
    values : array_like of float
        The exact statistic (any shape; at most ``max_size`` entries; finite).
    sigma : float
        Noise standard deviation ``>= 0``. ``σ = 0`` returns a float64 copy of ``values``.

    Returns
    -------
    numpy.ndarray
        ``values + noise``, float64, same shape.
    """
    s = _check_sigma(sigma)
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("values must be finite for the secure Gaussian")
    if x.size > max_size:
        raise ValueError(
            f"secure noise is for small releases (<= {max_size} entries); got {x.size}. "
            f"Use the fast path (secure=False) or raise max_size"
        )
    if s == 0 or x.size == 0:
        return x.copy()
    meas = _secure_measurement(s)
    out = np.asarray(meas(x.ravel().tolist()), dtype=np.float64)
    return out.reshape(x.shape)


def _secure_measurement(sigma: float):
    import opendp.prelude as dp

    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float)
    return dp.m.make_gaussian(*space, scale=sigma)


class NoiseSource:
    """One entry point for models: ``NoiseSource(rng, secure=False).gaussian(shape_or_values, sigma)``.

    Parameters
    ----------
    rng : int, Generator, SeedSequence or None
        Seed/generator of the fast path (``secure=True`` paths ignore it).
    secure : bool
        Route releases of at most ``secure_max_size`` entries through :func:`secure_gaussian`;
        larger releases fall back to the fast path (recorded in :attr:`fallbacks`).
    """

    def __init__(self, rng=None, secure: bool = False, *, secure_max_size: int = SECURE_MAX_SIZE):
        if not isinstance(secure, bool):
            raise ValueError(f"secure must be True or False, got {secure!r}")
        self.rng = as_generator(rng)
        self.secure = secure
        self.secure_max_size = int(secure_max_size)
        self.fallbacks = 0

    def _fallback(self, size: int):
        if self.fallbacks == 0:
            warnings.warn(
                f"secure noise requested but a release of {size} entries exceeds secure_max_size="
                f"{self.secure_max_size}; using the fast numpy sampler for such releases",
                UserWarning,
                stacklevel=3,
            )
        self.fallbacks += 1

    def gaussian(self, shape_or_values, sigma) -> np.ndarray:
        """Noise or noisy values.

        ``shape_or_values`` an int or tuple → returns noise of that shape. An array → returns the
        array plus noise (float64). ``σ = 0`` returns zeros / an unchanged float64 copy.
        """
        is_shape = isinstance(shape_or_values, (numbers.Integral, tuple)) and not isinstance(
            shape_or_values, bool
        )
        if is_shape:
            shape = shape_or_values
            size = int(np.prod(shape)) if isinstance(shape, tuple) else int(shape)
            if self.secure and size <= self.secure_max_size:
                return secure_gaussian(np.zeros(shape), sigma, max_size=self.secure_max_size)
            if self.secure:
                self._fallback(size)
            return gaussian_noise(shape, sigma, self.rng)
        x = np.asarray(shape_or_values, dtype=np.float64)
        if self.secure and x.size <= self.secure_max_size:
            return secure_gaussian(x, sigma, max_size=self.secure_max_size)
        if self.secure:
            self._fallback(x.size)
        return x + gaussian_noise(x.shape, sigma, self.rng)

    def symmetric(self, n_mats: int, d: int, sigma) -> np.ndarray:
        """Symmetric noise stack (always the fast path: these releases are large)."""
        return symmetric_gaussian_noise(n_mats, d, sigma, self.rng)

    def __repr__(self):
        return f"NoiseSource(secure={self.secure})"
