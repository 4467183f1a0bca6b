"""DP spectral initialisation of the item factors: a noisy residual co-occurrence matrix and its top eigenvectors.

Why
---
DP-ALS spends its factor budget on per-item statistics ``(A_j, b_j)``: every item pays for its own noise,
so at small ε even the most popular items' factors are mostly noise, and ALS from a random start needs
several noisy iterations before the item factors carry signal. A low-rank subspace, however, is a *global*
quantity: the top eigenvectors of the items' residual second-moment matrix
``C = Σ_i x_i x_iᵀ`` (over the ``M`` most-rated items) collect signal from every pair of items a user
rated, while the noise on ``C`` (a symmetric Gaussian matrix) has spectral norm only ``≈ 2σ√M``. Signal
eigenvalues grow linearly with the number of users and the noise edge does not, so above a few ten
thousand users (at ε = 1) the leading directions stand out of the noise — the regime where DP-ALS from a
random start is no better than the bias model. This is the "Analyze Gauss" mechanism (Dwork, Talwar,
Thakurta & Zhang 2014) applied to the clipped, bias-corrected rating residuals.

Mechanism
---------
The release is :class:`dprec.models.releases.SpectralMoment` (statistic, sensitivity ``k B²/√2`` per user and
``√(k − 1) B²`` per rating, and their proofs are declared there): the strict upper triangle of the clipped,
bias-corrected residual second moment ``C = Σ_i x_i x_iᵀ`` of the ``M`` items with the largest DP counts, plus
i.i.d. ``N(0, σ²)`` noise. The diagonal is not released: it holds each item's squared residuals (rating noise), not co-occurrence.

Post-processing (no privacy cost)
---------------------------------
The symmetric noisy matrix ``C̃`` is eigendecomposed; for a spiked symmetric Gaussian matrix an observed
eigenvalue ``λ`` above the bulk edge ``ε_b = 2σ√M`` comes from a spike ``θ = (λ + √(λ² − ε_b²)) / 2``
whose eigenvector has squared overlap ``c² = 1 − σ²M/θ²`` with the true direction (Benaych-Georges &
Nadakuditi 2011). Component ``q`` is weighted by ``√(θ_q c_q² / θ_1 c_1²)`` (0 below the edge), so
directions that are mostly noise barely move the users' solves. Items outside ``S`` start at 0.
"""

from __future__ import annotations

import math

import numpy as np

#: Per-user bound ``k`` and residual clip ``B`` of the spectral statistic, and the size ``scale`` of a full-weight
#: factor entry (how they were chosen: docs/tuning.md, "Notes moved out of docstrings").
SPECTRAL_K, SPECTRAL_BOUND, SPECTRAL_SCALE = 10, 0.5, 1.0
#: ``k`` and ``B`` under the rating unit. A rating costs ``√(k − 1) B²`` there while a heavy user's signal grows
#: like ``k B²``, so a large ``k`` pays (at the user unit both grow like ``k``; docs/tuning.md, "rating unit").
SPECTRAL_K_RATING, SPECTRAL_BOUND_RATING = 100, 0.5

__all__ = [
    "SPECTRAL_K",
    "SPECTRAL_BOUND",
    "SPECTRAL_K_RATING",
    "SPECTRAL_BOUND_RATING",
    "SPECTRAL_SCALE",
    "spectral_bounds",
    "spectral_item_factors",
    "spike_weights",
]


def spectral_bounds(privacy_unit: str) -> tuple[int, float]:
    """The spectral statistic's per-user bound ``k`` and residual clip ``B`` for ``privacy_unit``."""
    return (SPECTRAL_K_RATING, SPECTRAL_BOUND_RATING) if privacy_unit == "rating" else (SPECTRAL_K, SPECTRAL_BOUND)


def spike_weights(eigvals, sigma: float, m: int) -> np.ndarray:
    """Per-component weights ``√(θ c² / θ₁ c₁²)`` from observed eigenvalues (descending) of a noisy ``m×m`` matrix.

    ``σ`` = the noise standard deviation of each off-diagonal entry. Components at or below the bulk edge
    ``2σ√m`` get weight 0; with ``σ = 0`` every positive component keeps ``√(λ/λ₁)``.
    """
    lam = np.asarray(eigvals, dtype=np.float64)
    edge = 2.0 * sigma * math.sqrt(m)
    theta = (lam + np.sqrt(np.maximum(lam**2 - edge**2, 0.0))) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        c2 = np.where(lam > edge, np.maximum(1.0 - sigma**2 * m / np.maximum(theta, 1e-300) ** 2, 0.0), 0.0)
    strength = np.where(lam > edge, theta * c2, 0.0)
    top = strength.max() if len(strength) else 0.0
    return np.sqrt(strength / top) if top > 0 else np.zeros_like(lam)


def spectral_item_factors(C_noisy: np.ndarray, items, n_items: int, d: int, *, sigma: float, scale: float = 1.0):
    """Initial item factors ``(n_items, d)`` from the released noisy matrix (post-processing only).

    ``V[S] = scale · √M · Q_d diag(spike_weights)`` (unit-norm eigenvector columns ``Q_d`` of the ``d`` largest
    eigenvalues, so a full-weight column has entries of size ≈ ``scale``); other items 0.
    Returns ``(V, eigvals, weights)``.
    """
    m = C_noisy.shape[0]
    V = np.zeros((n_items, d))
    if m == 0 or d == 0:
        return V, np.zeros(0), np.zeros(0)
    lam, Q = np.linalg.eigh(C_noisy)
    order = np.argsort(lam)[::-1][: min(d, m)]
    lam, Q = lam[order], Q[:, order]
    wts = spike_weights(lam, sigma, m)
    V[np.asarray(items, dtype=np.int64), : len(order)] = Q * (wts * scale * math.sqrt(m))[None, :]
    return V, lam, wts
