"""Contribution bounding helpers and the DP item-selection mechanism.

The sensitivity of every release is declared once, beside its statistic, in :mod:`dprec.models.releases`.

All functions take a user×item :class:`scipy.sparse.csr_matrix` (rows = users, columns = items).

Sensitivities (L2, for the add/remove-one-user relation) are derived in each function's docstring
from three public bounds:

``k``
    maximum number of ratings per user after :func:`sample_per_user` (``k = 1`` for
    ``privacy_unit="rating"``);
``B``
    bound on ``|r|`` after centring and :func:`clip_values`;
``Γ`` (gamma)
    bound on the L2 norm of a user factor after :func:`clip_rows_l2`.

Neighbouring datasets differ by one user's whole row. Under joint DP (billboard model) a user's
factor ``u_i`` depends only on released (already private) item-side quantities and on user ``i``'s
own ratings, so removing user ``i`` removes ``u_i``'s terms and changes no other user's terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtri

from .._rng import as_generator
from .._validation import check_choice, check_fraction, check_int, check_number
from .units import check_privacy_unit

__all__ = [
    "sample_per_user",
    "clip_values",
    "clip_rows_l2",
    "effective_k",
    "ItemSelection",
    "selection_threshold",
    "weighted_item_counts",
    "dp_item_selection",
    "dp_sips_selection",
    "sips_budgets",
    "sips_round_matrix",
    "SIPS_ROUNDS",
    "SIPS_GROWTH",
]

#: default number of rounds of :func:`dp_sips_selection`
SIPS_ROUNDS = 3
#: default ratio ρ_{r+1}/ρ_r of consecutive rounds' budgets (increasing: the last round gets the most)
SIPS_GROWTH = 2.0


def _as_csr(X, name: str = "X") -> sp.csr_matrix:
    if not sp.issparse(X):
        raise ValueError(
            f"{name} must be a scipy.sparse user×item matrix of shape (n_users, n_items); got {type(X).__name__}"
        )
    X = sp.csr_matrix(X, copy=True)
    X.sum_duplicates()
    X.sort_indices()
    return X


def effective_k(privacy_unit: str, k: int | None) -> int:
    """Ratings per privacy unit: ``k`` for ``"user"`` (required), ``1`` for ``"rating"``."""
    unit = check_privacy_unit(privacy_unit)
    if unit == "rating":
        return 1
    if k is None:
        raise ValueError("k (max_ratings_per_user) is required under privacy_unit='user'")
    return check_int(k, "k (max_ratings_per_user)", minimum=1)


# ----------------------------------------------------------------------------------------------
# bounding
# ----------------------------------------------------------------------------------------------


def sample_per_user(X, k, rng=None, method: str = "uniform", item_counts=None) -> sp.csr_matrix:
    """Keep at most ``k`` stored entries per row (user).

    Parameters
    ----------
    X : scipy.sparse matrix, shape (n_users, n_items)
        Stored entries are ratings (explicit zeros count as ratings).
    k : int
        Maximum entries kept per user.
    rng : seed or Generator
        Randomness for the uniform sample and for tie-breaking.
    method : {"uniform", "least_popular"}
        ``"uniform"``: a uniformly random subset of size ``min(k, n_i)``.
        ``"least_popular"``: the ``k`` items with the smallest ``item_counts`` (ties broken at
        random), as in Chien et al. 2021.
    item_counts : array_like, shape (n_items,), required for ``"least_popular"``
        Must be a *DP release* (noisy counts over bounded contributions, accounted by the caller)
        or public counts. Using exact counts would make one user's selection depend on other users'
        data and void the sensitivity analysis.

    Returns
    -------
    scipy.sparse.csr_matrix
        A new matrix; each user's kept set depends only on that user's own row, ``rng`` and the
        (private-already) counts, so the per-user bound ``k`` holds.
    """
    k = check_int(k, "k (max_ratings_per_user)", minimum=1)
    X = _as_csr(X)
    n_users, n_items = X.shape
    gen = as_generator(rng)
    check_choice(method, "method", ("uniform", "least_popular"))
    row_len = np.diff(X.indptr)
    if row_len.size == 0 or row_len.max(initial=0) <= k:
        return X
    rows = np.repeat(np.arange(n_users), row_len)
    rand = gen.random(X.nnz)
    if method == "uniform":
        order = np.lexsort((rand, rows))
    else:
        if item_counts is None:
            raise ValueError("item_counts (DP or public item counts) is required for method='least_popular'")
        c = np.asarray(item_counts, dtype=np.float64)
        if c.shape != (n_items,):
            raise ValueError(f"item_counts must have shape (n_items,) = ({n_items},), got {c.shape}")
        if np.isnan(c).any():
            raise ValueError("item_counts contains NaN")
        order = np.lexsort((rand, c[X.indices], rows))
    # rank of each entry within its row after sorting
    starts = np.repeat(X.indptr[:-1], row_len)
    rank = np.empty(X.nnz, dtype=np.int64)
    rank[order] = np.arange(X.nnz) - starts  # order keeps rows contiguous and in row order
    keep = rank < k
    new_len = np.minimum(row_len, k)
    indptr = np.concatenate(([0], np.cumsum(new_len))).astype(X.indptr.dtype, copy=False)
    out = sp.csr_matrix((X.data[keep], X.indices[keep], indptr), shape=X.shape)
    out.sort_indices()
    return out


def clip_values(X, bound):
    """Clip values to ``[-bound, bound]``.

    Sparse input: the stored entries are clipped (structure kept, a new matrix is returned).
    Dense input: a clipped float64 copy.
    """
    b = check_number(bound, "bound", low_inclusive=True, allow_inf=True)
    if sp.issparse(X):
        X = sp.csr_matrix(X, copy=True)
        np.clip(X.data, -b, b, out=X.data)
        return X
    return np.clip(np.asarray(X, dtype=np.float64), -b, b)


def clip_rows_l2(U, gamma) -> np.ndarray:
    """Scale every row ``u`` of ``U`` to ``u · min(1, Γ/‖u‖₂)`` so that ``‖u‖₂ <= Γ``.

    Returns a new array of ``U``'s float dtype (float32 stays float32; the scale is computed in
    float64 and nudged so the float result respects the bound).
    """
    g = check_number(gamma, "gamma", low_inclusive=True, allow_inf=True)
    U = np.asarray(U)
    if U.ndim != 2:
        raise ValueError(f"U must be a 2-D array of row vectors, got shape {U.shape}")
    dtype = U.dtype if np.issubdtype(U.dtype, np.floating) else np.float64
    U64 = U.astype(np.float64)
    norms = np.linalg.norm(U64, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norms > g, g / norms, 1.0)
    scale = np.where(norms > g, scale * (1.0 - 4 * np.finfo(dtype).eps), scale)  # round-off margin
    return (U64 * scale[:, None]).astype(dtype)


# ----------------------------------------------------------------------------------------------
# DP item selection
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemSelection:
    """Result of :func:`dp_item_selection`.

    ``items``: selected column indices (sorted); ``noisy_counts``: their noisy *weighted* counts (a DP release);
    ``rho`` and ``delta``: the cost (``delta``-approximate ``rho``-zCDP) that **must** be charged to the ledger
    and listed in the privacy report; ``sigma``, ``threshold``, ``sensitivity``: the mechanism; ``k``: the public
    cap on the number of items one unit contributes to.
    """

    items: np.ndarray
    noisy_counts: np.ndarray
    sigma: float
    threshold: float
    sensitivity: float
    rho: float
    delta: float
    k: int
    #: per-round ``{"rho", "delta", "sigma", "threshold"}`` of a multi-round selection (empty: one round)
    rounds: tuple = ()
    #: the round (0-based) in which each of ``items`` was released (multi-round only; not reported)
    item_rounds: np.ndarray | None = None

    def to_dict(self) -> dict:
        out = {
            "mechanism": "weighted_gaussian_threshold",
            "n_selected": int(self.items.size),
            "sigma": self.sigma,
            "threshold": self.threshold,
            "sensitivity": self.sensitivity,
            "rho": self.rho,
            "delta": self.delta,
            "k": self.k,
        }
        if self.rounds:
            out["mechanism"] = f"dp_sips ({len(self.rounds)} rounds of weighted_gaussian_threshold)"
            out["rounds"] = [dict(r) for r in self.rounds]
        return out


def weighted_item_counts(X) -> np.ndarray:
    """``c_j = Σ_i w_i 1[X_ij ≠ 0]`` with ``w_i = 1/√n_i`` and ``n_i`` the number of stored entries of row ``i``.

    Every row's weight vector has L2 norm exactly 1 (``n_i`` entries of ``1/√n_i``). Explicit zeros count as
    entries (the stored pattern is the interaction set). Under the rating unit pass one row per rating: weight 1.
    """
    X = _as_csr(X).copy()
    X.sum_duplicates()
    n = np.diff(X.indptr)
    w = np.repeat(1.0 / np.sqrt(np.maximum(n, 1)), n)
    return np.bincount(X.indices, weights=w, minlength=X.shape[1]).astype(np.float64)


def selection_threshold(sigma, k, delta_sel) -> float:
    """Threshold ``τ = max_{1 ≤ n ≤ k} [1/√n + σ Φ⁻¹(1 − δ_sel/n)]`` of the weighted selection.

    An item that exists only because of the added unit has weighted count ``1/√n`` if that unit has ``n ≤ k``
    items, and the unit has ``n`` such items at most; so the probability that any of them is released is at
    most ``n Φ̄((τ − 1/√n)/σ)`` (union bound). Each term is ``≤ δ_sel`` iff ``τ ≥ 1/√n + σ Φ⁻¹(1 − δ_sel/n)``,
    so the maximum over the ``k`` possible ``n`` is the smallest ``τ`` that bounds the worst case by ``δ_sel``
    (exact, no numerical search). For ``k = 1`` it is ``1 + σ Φ⁻¹(1 − δ_sel)``. It increases in ``σ`` and ``k``
    and decreases in ``δ_sel``.
    """
    s = check_number(sigma, "sigma", low_inclusive=True, allow_inf=True)
    k = check_int(k, "k (max items per unit)", minimum=1)
    d = check_fraction(delta_sel, "delta_sel")
    n = np.arange(1, k + 1, dtype=np.float64)
    if math.isinf(s):
        return math.inf
    return float(np.max(1.0 / np.sqrt(n) - s * ndtri(d / n)))


def dp_item_selection(X, *, rho, delta_sel, k, noise=None, rng=None) -> ItemSelection:
    """Select the items to model when no public catalog exists (weighted Gaussian partition selection).

    Mechanism: each row ``i`` (a user, or one rating under the rating unit) with ``n_i ≤ k`` items gives weight
    ``1/√n_i`` to every one of its items (L2 norm 1: the whole unit budget spread over all its items, not ``k``
    sampled items with weight 1 each); for each column ``j`` with at least one stored entry,
    ``c̃_j = c_j + N(0, σ²)`` with ``c_j`` the weighted count (:func:`weighted_item_counts`) and
    ``σ = 1/√(2ρ)``; release ``{(j, c̃_j) : c̃_j > τ}`` with ``τ`` from :func:`selection_threshold`. This is
    the weighted Gaussian mechanism of Gopi et al. 2020 ("Differentially Private Set Union", L2 weights) in a
    single round, with an exact threshold for the cap ``k``.

    Privacy (add/remove one row with ``n ≤ k`` items): on the items present in both neighbours the weighted
    counts change by ``1/√n`` on ``≤ n`` coordinates (no other row's weight depends on this row), L2
    sensitivity ``≤ 1``, so that part is ``ρ``-zCDP; the ``≤ n`` items present only because of the extra row
    have count ``1/√n`` and independent noise, and are released with total probability
    ``≤ n Φ̄((τ − 1/√n)/σ) ≤ δ_sel``. Conditioned on none of them being released, the output is that of the
    Gaussian mechanism on the common items. The mechanism is therefore ``δ_sel``-approximate ``ρ``-zCDP (Bun &
    Steinke 2016, Def. 1.6; same accounting as OpenDP's ``make_gaussian_threshold``), i.e.
    ``(ε(ρ, δ'), δ' + δ_sel)``-DP for every ``δ'``. **It costs an extra δ**: charge
    ``ledger.charge(rho=rho, delta=delta_sel, ...)`` and list it in the report. The selection itself (which
    items exist) is data-dependent and is covered by this cost; nothing else may use the exact set of columns
    of ``X``. Rows with more than ``k`` items must first be reduced with :func:`sample_per_user` (a sample
    drawn from the row's own items and randomness, so the argument holds for each draw and hence for the mix).

    Parameters
    ----------
    X : scipy.sparse matrix (n_users, n_items)
        Already bounded to ``<= k`` entries per row (checked).
    rho : float
        zCDP budget of the noisy counts (> 0).
    delta_sel : float
        Probability bound of releasing an item owned by the removed unit (0 < δ_sel < 1).
    k : int
        Public cap on the items of one row (1 under rating-level DP, one row per rating).
    noise : dprec.privacy.NoiseSource, optional
        The fit's noise source (its ``item_selection`` stream; secure mode passes the counts through OpenDP).
        Without it, numpy noise from ``rng``.
    """
    X = _as_csr(X)
    k = check_int(k, "k (max items per unit)", minimum=1)
    r = check_number(rho, "rho")
    row_len = np.diff(X.indptr)
    if row_len.size and row_len.max() > k:
        raise ValueError(
            f"X has a user with {int(row_len.max())} ratings > k={k}; bound contributions with sample_per_user first"
        )
    sens = 1.0
    sigma = sens / math.sqrt(2.0 * r)
    while (sens / sigma) ** 2 / 2 > r:
        sigma = math.nextafter(sigma, math.inf)
    tau = selection_threshold(sigma, k, delta_sel)
    counts = weighted_item_counts(X)
    present = np.flatnonzero(np.bincount(X.indices, minlength=X.shape[1]) > 0)
    if noise is not None:
        noisy = noise.release(counts[present], step="item_selection", sigma=sigma, sensitivity=sens)
    else:
        noisy = counts[present] + sigma * as_generator(rng).standard_normal(present.size)
    sel = noisy > tau
    return ItemSelection(
        items=present[sel],
        noisy_counts=noisy[sel],
        sigma=sigma,
        threshold=tau,
        sensitivity=sens,
        rho=(sens / sigma) ** 2 / 2,
        delta=float(delta_sel),
        k=k,
    )


def sips_budgets(rho, delta_sel, rounds: int = SIPS_ROUNDS, growth: float = SIPS_GROWTH):
    """Per-round budgets of :func:`dp_sips_selection`: ``ρ_r = ρ·g^(r−1)(g − 1)/(g^R − 1)`` (``ρ/R`` for
    ``g = 1``) and ``δ_r = δ_sel/R``, ``r = 1…R``; ``Σρ_r = ρ`` and ``Σδ_r = δ_sel`` exactly (the last round takes
    the rounding remainder). Returns two float64 arrays of length ``R``."""
    r = check_number(rho, "rho")
    d = check_fraction(delta_sel, "delta_sel")
    R = check_int(rounds, "rounds", minimum=1)
    g = check_number(growth, "growth")
    w = g ** np.arange(R, dtype=np.float64)
    rhos = r * w / w.sum()
    rhos[-1] = r - math.fsum(rhos[:-1])
    deltas = np.full(R, d / R)
    deltas[-1] = d - math.fsum(deltas[:-1])
    return rhos, deltas


def sips_round_matrix(X, released, k, rng=None) -> sp.csr_matrix:
    """The bounded input of one DP-SIPS round: ``X`` without the columns already ``released`` (a boolean mask,
    public), then :func:`sample_per_user` to ``≤ k`` items per row (a sample of the row's remaining items).

    Row by row: row ``i``'s result depends on row ``i``, the public mask and ``rng`` only, so neighbouring inputs
    give neighbouring round inputs."""
    X = _as_csr(X)
    drop = np.asarray(released, dtype=bool)
    if drop.shape != (X.shape[1],):
        raise ValueError(f"released must be a boolean mask of shape ({X.shape[1]},), got {drop.shape}")
    keep = ~drop[X.indices]
    n = np.bincount(np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))[keep], minlength=X.shape[0])
    indptr = np.concatenate(([0], np.cumsum(n))).astype(X.indptr.dtype, copy=False)
    return sample_per_user(sp.csr_matrix((X.data[keep], X.indices[keep], indptr), shape=X.shape), k, rng)


def dp_sips_selection(
    X,
    *,
    rho,
    delta_sel,
    k,
    rounds: int = SIPS_ROUNDS,
    growth: float = SIPS_GROWTH,
    noise=None,
    rng=None,
    sample_rng=None,
) -> ItemSelection:
    """DP-SIPS (Swanberg, Desfontaines & Haney 2023): ``R`` rounds of :func:`dp_item_selection`, each on the items
    not released yet, with geometrically increasing budgets (:func:`sips_budgets`).

    Mechanism. ``A_0 = ∅``. In round ``r = 1…R``, every row ``i`` keeps its items outside ``A_{r−1}`` (the items
    released so far), reduced to at most ``k`` by :func:`sample_per_user` (a uniform sample from the row's own
    remaining items and ``sample_rng``; rows at or below the cap keep all of them), and gives weight
    ``1/√n_i^(r)`` to each of its ``n_i^(r)`` kept items (L2 norm 1). For each column with at least one kept entry
    release ``c̃_j = c_j^(r) + N(0, σ_r²)``, ``σ_r = 1/√(2ρ_r)``, and add to ``A_r`` the columns with
    ``c̃_j > τ_r = max_{1≤n≤k}[1/√n + σ_r Φ⁻¹(1 − δ_r/n)]`` (:func:`selection_threshold`). Output: ``A_R`` and the
    noisy counts of its items at the round each was released.

    Privacy (add/remove one row). Round ``r`` is the single-round mechanism of :func:`dp_item_selection` run on
    a dataset that is a function of the data and of the *public* earlier output ``A_{r−1}`` alone: removing
    ``A_{r−1}``'s columns is done row by row, so neighbouring inputs stay neighbouring (they differ by the same
    row, now restricted to its remaining items, ``≤ k`` of them after the sample). Given ``A_{r−1}``, round ``r``
    is therefore ``δ_r``-approximate ``ρ_r``-zCDP: on the columns present in both neighbours the weighted counts
    move by ``1/√n`` on ``≤ n`` coordinates (L2 ``≤ 1``, attained when all of the row's remaining items are
    shared), and the ``≤ n`` columns present only because of the row have count ``1/√n`` and pass ``τ_r`` with
    probability ``≤ n Φ̄((τ_r − 1/√n)/σ_r) ≤ δ_r``. Approximate zCDP composes adaptively, ρ's and δ's adding
    (Bun & Steinke 2016, §8; Swanberg et al. 2023 state the composition they use for DP-SIPS with an
    equivalent definition of approximate zCDP): the whole selection is
    ``(Σδ_r)``-approximate ``(Σρ_r)``-zCDP ``= δ_sel``-approximate ``ρ``-zCDP — the same cost as one round with
    ``(ρ, δ_sel)``, charged the same way (``ledger.charge(rho=rho, delta=delta_sel)``). Released items are dropped
    from later rounds, so a row's unit budget in round ``r`` goes to the items still unreleased: the popular items
    cost little budget in the cheap first round, and the tail gets larger weights and less noise later.

    Parameters
    ----------
    X : scipy.sparse matrix (n_rows, n_items)
        The interactions; rows above ``k`` items are sampled each round (from their remaining items).
    rho, delta_sel : float
        Total zCDP budget and total threshold δ of the selection.
    k : int
        Public cap on the items one row contributes per round (1 under the rating unit, one row per rating).
    rounds, growth : int, float
        ``R`` and ``g`` of :func:`sips_budgets` (public constants). ``rounds=1`` is :func:`dp_item_selection`
        on a sample.
    noise : dprec.privacy.NoiseSource, optional
        The fit's noise source: round ``r`` draws from its ``item_selection`` stream with index ``r − 1``.
    rng : seed or Generator
        numpy noise when ``noise`` is None.
    sample_rng : seed or Generator
        The per-round sampling of rows above ``k``.
    """
    X = _as_csr(X)
    k = check_int(k, "k (max items per unit)", minimum=1)
    rhos, deltas = sips_budgets(rho, delta_sel, rounds, growth)
    gen = None if noise is not None else as_generator(rng)
    sgen = as_generator(sample_rng)
    n_items = X.shape[1]
    released = np.zeros(n_items, bool)
    noisy_at = np.zeros(n_items)
    round_of = np.full(n_items, -1, dtype=np.int64)
    info = []
    for r, (rho_r, d_r) in enumerate(zip(rhos, deltas)):
        Xr = sips_round_matrix(X, released, k, sgen)
        sigma = 1.0 / math.sqrt(2.0 * rho_r)
        while 1.0 / sigma**2 / 2 > rho_r:
            sigma = math.nextafter(sigma, math.inf)
        tau = selection_threshold(sigma, k, d_r)
        counts = weighted_item_counts(Xr)
        present = np.flatnonzero(np.bincount(Xr.indices, minlength=n_items) > 0)
        if noise is not None:
            noisy = noise.release(counts[present], step="item_selection", sigma=sigma, sensitivity=1.0, index=r)
        else:
            noisy = counts[present] + sigma * gen.standard_normal(present.size)
        new = present[noisy > tau]
        released[new] = True
        noisy_at[new] = noisy[noisy > tau]
        round_of[new] = r
        info.append({"rho": 1.0 / sigma**2 / 2, "delta": float(d_r), "sigma": sigma, "threshold": tau})
    items = np.flatnonzero(released)
    return ItemSelection(
        items=items,
        noisy_counts=noisy_at[items],
        sigma=info[-1]["sigma"],
        threshold=info[-1]["threshold"],
        sensitivity=1.0,
        rho=math.fsum(i["rho"] for i in info),
        delta=math.fsum(i["delta"] for i in info),
        k=k,
        rounds=tuple(info),
        item_rounds=round_of[items],
    )
