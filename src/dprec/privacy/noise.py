"""Noise generation and post-processing.

Where noise comes from
----------------------
A fit's noise comes from :class:`NoiseStreams`: one root entropy — 128 bits of fresh OS entropy by default
(:func:`secrets.randbits`), or a caller-given seed in *reproducibility mode* — and, derived from it, one
independent stream per (model class, release step, index): ``SeedSequence(root, spawn_key=(K("noise"),
K(model), K(step), index))`` with ``K`` a 32-bit digest of the name. Two models, or two steps of one model,
therefore never share a noise stream, even when a caller passes the same seed to both (an attacker who
subtracts two releases made with one seed must not cancel the noise). The root entropy is held in memory only:
it is never written to a file, a report or the ledger. A caller-given seed emits a
:class:`~dprec.privacy.PrivacyWarning` (once per location): the guarantee then holds only while that seed
stays secret and is never reused on the same data.

Two samplers (:class:`NoiseSource`)
-----------------------------------
*fast* (default)
    Bulk draws from the step's :class:`numpy.random.Generator` (``standard_normal`` scaled by σ).
    Reproducible in reproducibility mode and fast. Large per-item noise (:meth:`NoiseSource.draw_rows`) is
    drawn in parallel, one stream per (step, index, row block), the blocks fixed by the shape alone, on
    numba's threads (:func:`_fill_row_blocks_nb`: numba runs numpy's own bit generator and a port of numpy's
    ziggurat, so the values are those of ``Generator.standard_normal``, bit for bit, which the tests check; a
    Python thread pool calling numpy was slower and competed with numba's spinning OpenMP workers).
*secure* (``secure_noise=True``)
    Every release passes the statistic *itself* through OpenDP's Gaussian measurement on a float vector domain
    (``opendp.measurements.make_gaussian(vector_domain(atom_domain(T=float, nan=False)),
    l2_distance(T=float), scale=σ)``). OpenDP samples a discrete Gaussian on a fine lattice
    (granularity ``2^k``) with exact arithmetic and a cryptographically secure RNG, then rounds to
    the nearest float, which avoids the floating-point attacks on textbook samplers (Mironov
    2012); the measurement's own privacy map is checked against dprec's ρ for the declared sensitivity.
    It is slow (~20k draws/s), ignores the seed (not reproducible) and refuses releases of more than
    :data:`SECURE_MAX_SIZE` entries (a fit that would need one is refused before the ledger is charged;
    nothing silently falls back to the fast sampler). The report lists, per step, which sampler ran.

Floating-point caveat (honest version): only the *noise addition* of the secure path is
protected. The statistic that enters it is computed by dprec in ordinary floating point (sums,
clipping, centring), and everything downstream (PSD projection, linear solves) is ordinary float
arithmetic too. Rounding in those computations can in principle make the true sensitivity
differ from the analytic one by a few ulps; dprec does not defend against adversaries exploiting
this. The fast path additionally relies on numpy's PCG64/ziggurat sampler, which is not a
cryptographic RNG.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import warnings

import numba
import numpy as np
from numba import njit, prange
from numba.typed import List

from .._rng import as_generator
from .._validation import check_bool, check_int, check_number

__all__ = [
    "gaussian_noise",
    "symmetric_gaussian_noise",
    "project_psd",
    "secure_gaussian",
    "NoiseSource",
    "NoiseStreams",
    "SecureNoiseError",
    "SECURE_MAX_SIZE",
]

#: Largest release (number of entries) the secure path accepts by default.
SECURE_MAX_SIZE = 100_000
#: About this many entries (1 MiB of float64: cache-sized) per row block of :meth:`NoiseSource.draw_rows`.
BLOCK_ENTRIES = 1 << 17


@njit(parallel=True, cache=True)
def _fill_row_blocks_nb(gens, rows, sigma, outs):
    """Row block ``c`` (rows ``[c·rows, (c+1)·rows)``) of every array in ``outs``, in order, from ``gens[c]``:
    ``σ · standard_normal``, as ``gens[c].standard_normal(out=block); block *= σ`` would fill it."""
    n_rows = outs[0].shape[0]
    for c in prange(len(gens)):
        g = gens[c]
        lo = c * rows
        hi = min(n_rows, lo + rows)
        for a in range(len(outs)):
            blk = outs[a]
            for i in range(lo, hi):  # row-major, as standard_normal(out=block) fills it
                for q in range(blk.shape[1]):
                    blk[i, q] = g.standard_normal() * sigma


def gaussian_noise(shape, sigma, rng=None) -> np.ndarray:
    """I.i.d. ``N(0, σ²)`` noise of ``shape`` (float64) from a numpy Generator.

    ``σ = 0`` returns zeros (and draws nothing, so the generator's stream is untouched).
    """
    s = check_number(sigma, "sigma", low_inclusive=True)
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
    n_mats, d = check_int(n_mats, "n_mats"), check_int(d, "d")
    s = check_number(sigma, "sigma", low_inclusive=True)
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
    f = check_number(floor, "floor", low=-math.inf, low_inclusive=True)
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
    s = check_number(sigma, "sigma", low_inclusive=True)
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


class SecureNoiseError(ValueError):
    """A release cannot go through the secure sampler (too large); the fit is refused, nothing is charged."""


def _key(name: str) -> int:
    """A stable 32-bit key of a stream name (SeedSequence spawn keys are integers)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "little")


class NoiseStreams:
    """Independent random streams of one fit, derived from one root entropy (module docstring).

    Parameters
    ----------
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        ``None`` (default): fresh OS entropy — the only setting for anything you will release. An int seed,
        a SeedSequence or a Generator: *reproducibility mode* (benchmarks, research).
    model : str
        The model class name; part of every stream's key.
    warn : bool
        Emit the reproducibility-mode :class:`~dprec.privacy.PrivacyWarning` (private fits only).
    """

    def __init__(self, rng=None, *, model: str, warn: bool = True):
        self.model = str(model)
        base: tuple = ()
        if rng is None:
            root = secrets.randbits(128)
        elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
            root = check_int(rng, "rng seed")
        elif isinstance(rng, np.random.SeedSequence):
            root, base = rng.entropy, tuple(rng.spawn_key)
        elif isinstance(rng, np.random.Generator):
            root = int.from_bytes(rng.bytes(16), "little")  # advances the caller's generator
        else:
            raise TypeError(
                f"rng must be None (fresh entropy), an int seed, a SeedSequence or a Generator; got {type(rng).__name__}"
            )
        self.reproducible = rng is not None
        self._root, self._base = root, base
        # the seed-reuse guard of the ledger sees only a keyed digest of this (never the seed itself)
        self._reuse_token = (
            int.from_bytes(hashlib.sha256(f"{self.model}:{root}:{base}".encode()).digest()[:16], "little")
            if isinstance(rng, (int, np.integer, np.random.SeedSequence))
            else None
        )
        if self.reproducible and warn:
            from .units import PrivacyWarning

            warnings.warn(
                f"{self.model}: a caller-given rng is reproducibility mode — the DP guarantee holds only while "
                "that seed stays secret and is never reused on the same data; pass rng=None (fresh OS entropy) "
                "for anything you release",
                PrivacyWarning,
                stacklevel=5,  # the caller's fit(...) line
            )

    def generator(self, step: str, index: int = 0, block: int | None = None) -> np.random.Generator:
        """The stream of (this model, ``step``, ``index``): a new Generator at the stream's start.

        ``block``: the stream of one row block of a parallel draw (:meth:`NoiseSource.draw_rows`); its spawn key
        is one element longer, so it is independent of the step's own stream and of every other block's."""
        key = (_key("noise"), _key(self.model), _key(step), int(index))
        if block is not None:
            key += (int(block),)
        ss = np.random.SeedSequence(self._root, spawn_key=self._base + key)
        return np.random.Generator(np.random.PCG64(ss))

    def init_generator(self) -> np.random.Generator:
        """The data-independent initialisation stream: ``SeedSequence(seed).spawn(3)[2]``, the stream ALS draws its
        initial factors from, so a model at ε = ∞ starts where ALS does. Never used for noise."""
        ss = np.random.SeedSequence(self._root, spawn_key=self._base + (2,))
        return np.random.Generator(np.random.PCG64(ss))

    def describe(self) -> str:
        """For reports: where the noise came from (never the seed)."""
        if self.reproducible:
            return (
                "caller-given seed (reproducibility mode): the guarantee holds only while that seed stays secret "
                "and is never reused on the same data; not for release"
            )
        return "fresh OS entropy (128 bits, secrets.randbits), one independent stream per release step"

    def __repr__(self):
        return f"NoiseStreams(model={self.model!r}, reproducible={self.reproducible})"


class NoiseSource:
    """The one way models add noise: ``release(values, step=, sigma=, sensitivity=)``.

    Each (step, index) draws from its own stream of ``streams`` (the generator is kept, so several draws of
    one step continue its stream). ``secure=True`` passes every release through OpenDP's Gaussian
    measurement and refuses releases larger than ``secure_max_size``; :meth:`draw` (noise alone, for kernels
    that fuse the addition) is then refused too. :attr:`samplers` records per step which sampler ran.
    """

    def __init__(self, streams: NoiseStreams, *, secure: bool = False, secure_max_size: int = SECURE_MAX_SIZE):
        check_bool(secure, "secure")
        if not isinstance(streams, NoiseStreams):
            raise TypeError(f"streams must be a NoiseStreams, got {type(streams).__name__}")
        self.streams = streams
        self.secure = secure
        self.secure_max_size = int(secure_max_size)
        self.samplers: dict[str, str] = {}
        self._gens: dict[tuple, np.random.Generator] = {}

    def _gen(self, step: str, index: int) -> np.random.Generator:
        key = (step, int(index))
        if key not in self._gens:
            self._gens[key] = self.streams.generator(step, index)
        return self._gens[key]

    def check_size(self, step: str, size: int) -> None:
        """Raise :class:`SecureNoiseError` if a release of ``size`` entries cannot be secure (call before charging)."""
        if self.secure and size > self.secure_max_size:
            raise SecureNoiseError(
                f"secure_noise=True: release {step!r} has {size} entries, more than the secure sampler's limit of "
                f"{self.secure_max_size}; use secure_noise=False (numpy sampler) or a smaller model (fewer factors "
                "or items)"
            )

    def release(self, values, *, step: str, sigma: float, sensitivity: float, index: int = 0) -> np.ndarray:
        """``values + N(0, σ² I)`` (float64, same shape): the Gaussian mechanism on the exact statistic.

        ``sensitivity`` is the statistic's declared L2 sensitivity; in secure mode OpenDP's privacy map of the
        measurement at that sensitivity must not exceed ``Δ²/(2σ²)``. ``σ = 0`` (ε = ∞) returns a copy.
        """
        s = check_number(sigma, "sigma", low_inclusive=True)
        x = np.asarray(values, dtype=np.float64)
        if s == 0:
            self.samplers.setdefault(step, "none (ε = ∞)")
            return x.copy()
        if self.secure:
            self.check_size(step, x.size)
            if not np.isfinite(x).all():
                raise ValueError(f"release {step!r}: the statistic has NaN or infinite entries")
            meas = _secure_measurement(s)
            rho = float(meas.map(float(sensitivity)))
            if rho > (float(sensitivity) / s) ** 2 / 2 * (1 + 1e-9):
                raise RuntimeError(f"release {step!r}: OpenDP's privacy map ({rho}) exceeds dprec's ρ; please report")
            self.samplers[step] = "opendp make_gaussian (vector_domain, l2_distance; the statistic is the input)"
            return np.asarray(meas(x.ravel().tolist()), dtype=np.float64).reshape(x.shape)
        self.samplers[step] = "numpy Generator (PCG64, ziggurat)"
        return x + gaussian_noise(x.shape, s, self._gen(step, index))

    def draw(self, shape, *, step: str, sigma: float, index: int = 0) -> np.ndarray:
        """Noise alone, for kernels that add it themselves (fast sampler only; refused in secure mode)."""
        if self.secure:
            raise RuntimeError(f"release {step!r}: secure mode must pass the statistic through release(), not draw()")
        self.samplers[step] = "numpy Generator (PCG64, ziggurat)"
        return gaussian_noise(shape, sigma, self._gen(step, index))

    def draw_rows(self, n_rows: int, widths, *, step: str, sigma: float, index: int = 0, out=None, threads=None):
        """I.i.d. ``N(0, σ²)`` noise arrays of shapes ``(n_rows, w)`` for ``w`` in ``widths`` (float64), drawn in
        parallel on numba's threads, for kernels that add the noise themselves (fast sampler only; refused in
        secure mode).

        The rows are cut into blocks of ``max(1, BLOCK_ENTRIES // Σ widths)`` rows, a function of the shape only;
        block ``c`` draws its rows of the first array, then of the second, ..., from its own stream
        ``(step, index, block=c)`` (:meth:`NoiseStreams.generator`). The result therefore does not depend on the
        thread count, and is bit-identical run to run in reproducibility mode. ``out``: arrays of those shapes to
        fill (reusing them across iterations avoids faulting in fresh memory); ``threads``: default numba's count.
        """
        if self.secure:
            raise RuntimeError(f"release {step!r}: secure mode must pass the statistic through release(), not draw()")
        s = check_number(sigma, "sigma", low_inclusive=True)
        n_rows, widths = int(n_rows), [int(w) for w in widths]
        if out is None:
            out = [np.empty((n_rows, w)) for w in widths]
        elif [a.shape for a in out] != [(n_rows, w) for w in widths] or any(
            a.dtype != np.float64 or not a.flags.c_contiguous for a in out
        ):
            raise ValueError(f"out must be contiguous float64 arrays of shapes {[(n_rows, w) for w in widths]}")
        self.samplers[step] = "numpy Generator (PCG64, ziggurat; drawn on numba's threads), one stream per row block"
        rows = max(1, BLOCK_ENTRIES // max(1, sum(widths)))
        n_blocks = -(-n_rows // rows)
        if s == 0 or n_rows == 0 or not widths:
            for a in out:
                a[:] = 0.0
            return out
        gens = List([self.streams.generator(step, index, block=c) for c in range(n_blocks)])
        old = numba.get_num_threads()
        try:
            if threads is not None:  # the realisation does not depend on it (one stream per block)
                numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
            _fill_row_blocks_nb(gens, rows, s, tuple(out))
        finally:
            numba.set_num_threads(old)
        return out

    def generator(self, step: str, index: int = 0) -> np.random.Generator:
        """The raw stream of a randomised, non-Gaussian step (e.g. contribution sampling)."""
        return self._gen(step, index)

    def __repr__(self):
        return f"NoiseSource(secure={self.secure}, {self.streams!r})"
