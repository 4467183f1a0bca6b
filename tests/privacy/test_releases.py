"""Every declared DP release on neighbouring datasets: the claimed sensitivity holds and is nearly attained.

Each case runs the *real* ``statistic`` of a release from :mod:`dprec.models.releases` (the function the
models noise) on a dataset and on its neighbours under the release's unit, with an adversarial heaviest user:

* user unit: remove that user; add a copy of it as a new user;
* rating unit: remove one of its ratings; add a rating; change one rating (bounded by 2Δ).

Previously released quantities (μ, c, V, the selected items) are held fixed: each release's sensitivity is
conditional on earlier releases (sequential composition). The largest ratio ``‖Δstat‖ / bound`` must be ≤ 1
(to float rounding, 1e-9) and ≥ the case's ``attain`` — so a sensitivity claimed 1% too small fails the
first check, one claimed 2× too large fails the second. Two mutants of the statistics (``test_mutant_*``)
show the checks catch the defects a review found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import scipy.sparse as sp

from dprec.kernels import als as K
from dprec.models import releases as R
from dprec.privacy.bounding import sample_per_user, sips_round_matrix

BOUNDS = (1.0, 5.0)
MU = 3.0
N_ITEMS = 60
TOL = 1e-9


# ============================================================================================ data
def _matrix(rows: list[list[tuple[int, float]]], n_items: int = N_ITEMS) -> sp.csr_matrix:
    """A user×item CSR from per-user lists of (item, rating)."""
    indptr, idx, val = [0], [], []
    for r in rows:
        for j, v in sorted(r):
            idx.append(j)
            val.append(v)
        indptr.append(len(idx))
    X = sp.csr_matrix((np.array(val, float), np.array(idx, np.int32), np.array(indptr)), shape=(len(rows), n_items))
    X.sort_indices()
    return X


def _base_rows(seed: int = 0, n_users: int = 30) -> list[list[tuple[int, float]]]:
    g = np.random.default_rng(seed)
    out = []
    for _ in range(n_users):
        items = g.choice(N_ITEMS, size=int(g.integers(3, 25)), replace=False)
        out.append([(int(j), float(g.integers(1, 6))) for j in items])
    return out


def _neighbours_user(rows, heavy: list[tuple[int, float]]):
    """(relation, D, D') pairs: D holds the heavy user last; D' drops it; and D plus a second copy."""
    with_heavy = rows + [heavy]
    return [
        ("remove user", _matrix(with_heavy), _matrix(rows)),
        ("add user", _matrix(with_heavy), _matrix(with_heavy + [heavy])),
    ]


def _neighbours_rating(rows, heavy: list[tuple[int, float]], new_item: int, new_value: float, changes: list[float]):
    """Remove each rating of the heavy user; add one rating to it; change each rating to each value in ``changes``."""
    D = _matrix(rows + [heavy])
    out = []
    for p in range(len(heavy)):
        out.append(("remove rating", D, _matrix(rows + [heavy[:p] + heavy[p + 1 :]])))
    out.append(("add rating", D, _matrix(rows + [heavy + [(new_item, new_value)]])))
    for p in range(len(heavy)):
        for v in changes:
            if v != heavy[p][1]:
                out.append(("change rating", D, _matrix(rows + [heavy[:p] + [(heavy[p][0], v)] + heavy[p + 1 :]])))
    return out


# ============================================================================================ cases
@dataclass
class Case:
    id: str
    release: R.Release
    stat: Callable[[sp.csr_matrix], np.ndarray]
    pairs: list
    attain: float
    why_loose: str = ""
    extra: dict = field(default_factory=dict)


def _ratio(case: Case) -> tuple[float, str]:
    delta = case.release.sensitivity()
    best, where = 0.0, ""
    for relation, D, D2 in case.pairs:
        bound = 2 * delta if relation == "change rating" else delta
        r = float(np.linalg.norm(case.stat(D) - case.stat(D2))) / bound
        if r > best:
            best, where = r, relation
    return best, where


def _item_bias_context(seed=1):
    return np.random.default_rng(seed).normal(0, 0.3, N_ITEMS)


def _cases() -> list[Case]:
    rows = _base_rows()
    cases: list[Case] = []
    k = 5
    # a user with 4k ratings, alternating at the two rating bounds: every weight binds and every residual clips
    heavy_user = [(j, 5.0 if j % 2 else 1.0) for j in range(4 * k)]
    exact_k_user = [(j, 5.0 if j % 2 else 1.0) for j in range(k)]
    # rating unit: one rating at the top bound plus many mid ratings whose residuals are not clipped
    rating_user = [(0, 5.0)] + [(j, 3.5) for j in range(1, 21)]
    rating_pairs = _neighbours_rating(rows, rating_user, new_item=40, new_value=5.0, changes=[1.0, 5.0])

    # ---- user count
    rel = R.UserCount("user")
    cases.append(Case("user_count/user", rel, rel.statistic, _neighbours_user(rows, heavy_user), 1.0))
    rel = R.UserCount("rating")
    cases.append(
        Case("user_count/rating", rel, rel.statistic, _neighbours_rating(rows, [(7, 4.0)], 8, 2.0, [1.0]), 1.0)
    )

    # ---- rating count (capped at k per user under the user unit)
    rel = R.RatingCount("user", k=k)
    cases.append(Case("rating_count/user", rel, rel.statistic, _neighbours_user(rows, heavy_user), 1.0))
    rel = R.RatingCount("rating")
    cases.append(Case("rating_count/rating", rel, rel.statistic, rating_pairs, 1.0))

    # ---- global mean pair
    for contribution in ("weight", "sample"):
        rel = R.GlobalMean("user", k=k, rating_bounds=BOUNDS, contribution=contribution)
        top = [(j, 5.0) for j in range(4 * k)]  # all at the top bound: |r − m| = h everywhere
        stat = lambda X, rel=rel: rel.statistic(X, rng=np.random.default_rng(0))
        cases.append(
            Case(
                f"global_mean/user/{contribution}",
                rel,
                stat,
                _neighbours_user(rows, top) + _neighbours_user(rows, [(j, 5.0) for j in range(k)]),
                1.0,
            )
        )
    rel = R.GlobalMean("rating", k=k, rating_bounds=BOUNDS)
    cases.append(Case("global_mean/rating", rel, rel.statistic, rating_pairs, 1.0))

    # ---- item biases (S_j, N_j)
    for B in (0.5, 1.0):
        for contribution in ("weight", "sample"):
            rel = R.ItemBiases("user", k=k, residual_bound=B, user_reg=10.0, contribution=contribution)
            stat = lambda X, rel=rel: rel.statistic(X, mu=MU, rng=np.random.default_rng(0))
            cases.append(
                Case(
                    f"item_biases/user/B={B}/{contribution}",
                    rel,
                    stat,
                    _neighbours_user(rows, heavy_user) + _neighbours_user(rows, exact_k_user),
                    1.0,
                )
            )
    rel = R.ItemBiases("rating", k=k, residual_bound=1.0, user_reg=10.0)
    cases.append(Case("item_biases/rating", rel, lambda X, rel=rel: rel.statistic(X, mu=MU), rating_pairs, 1.0))

    # ---- item counts (DP popularity)
    rel = R.ItemCounts("user", k=k)
    cases.append(Case("item_counts/user", rel, rel.statistic, _neighbours_user(rows, heavy_user), 1.0))
    rel = R.ItemCounts("rating", k=k)
    cases.append(Case("item_counts/rating", rel, rel.statistic, rating_pairs, 1.0))

    # ---- spectral moment (strict upper triangle of Σ x xᵀ over the top items)
    c = _item_bias_context()
    items = np.arange(50)
    sk, sb = 10, 0.5
    # many ratings, all far above μ + c_j: every residual clips at +B even after the user's own bias
    spectral_user = [(j, 5.0) if j % 5 else (j, 1.0) for j in range(50)]
    rel = R.SpectralMoment("user", k=sk, bound=sb, n_selected=50)
    stat = lambda X, rel=rel: rel.statistic(X, mu=MU, item_bias=c, items=items, bias_reg=10.0)  # noqa: E731
    cases.append(Case("spectral_moment/user", rel, stat, _neighbours_user(rows, spectral_user), 0.85))
    for rk in (sk, 3):
        rel_r = R.SpectralMoment("rating", k=rk, bound=sb, n_selected=50)
        stat_r = lambda X, rel_r=rel_r: rel_r.statistic(X, mu=MU, item_bias=c, items=items, bias_reg=10.0)  # noqa: E731
        # k − 1 ratings in S, all clipped, gaining a k-th (clipped too): ‖ΔT‖ = √(k − 1) B² exactly; users at and
        # above k (weights change), mixed signs, and a rating outside S (changes nothing) must stay below it
        pairs = _neighbours_rating(rows, spectral_user[: rk - 1], 30, 5.0, [1.0, 5.0])
        pairs += _neighbours_rating(rows, spectral_user[:rk], 31, 1.0, [1.0, 5.0])
        pairs += _neighbours_rating(rows, spectral_user[: 3 * rk], 45, 5.0, [1.0])
        pairs += _neighbours_rating(rows, [(55, 5.0), (2, 5.0), (3, 1.0)], 57, 5.0, [3.0])
        # unclipped residuals and a low rating added: a local bias would move them all (the mutant test below)
        pairs += _neighbours_rating(rows, [(j, 4.0) for j in range(rk - 1)], 30, 1.0, [1.0])
        cases.append(Case(f"spectral_moment/rating/k={rk}", rel_r, stat_r, pairs, 1.0))
    # ---- item co-occurrence (DP item-item): upper triangle with diagonal of Σ x xᵀ on the top items
    co_items = np.arange(45)
    for ck in (1, 5):
        rel = R.ItemCooccurrence("user", k=ck, n_selected=45)
        stat = lambda X, rel=rel: rel.statistic(X, items=co_items)  # noqa: E731
        exact = [(j, 1.0) for j in range(ck)]  # exactly k interactions attain √(k(k+1)/2)
        many = [(j, 1.0) for j in range(3 * ck + 1)]
        cases.append(
            Case(
                f"item_cooccurrence/user/k={ck}",
                rel,
                stat,
                _neighbours_user(rows, exact) + _neighbours_user(rows, many),
                1.0,
            )
        )
        rel = R.ItemCooccurrence("rating", k=ck, n_selected=45)
        stat = lambda X, rel=rel: rel.statistic(X, items=co_items)  # noqa: E731
        pairs = []
        for n in (ck, ck + 1, 2 * ck + 3):  # k interactions attain √k; more are below it
            pairs += _neighbours_rating(rows, [(j, 4.0) for j in range(n)], 44, 5.0, [1.0])
        pairs += _neighbours_rating(rows, [(50, 4.0), (2, 3.0)], 3, 5.0, [1.0])  # an item outside S
        cases.append(Case(f"item_cooccurrence/rating/k={ck}", rel, stat, pairs, 1.0))

    # ---- DP item selection (L2-normalised weighted counts of the bounded matrix): a user above the cap (sampled
    # to k items), one at the cap, one with a single item (weight 1) and one whose items nobody else has: Δ = 1
    rel = R.ItemSelection("user", k=k)
    stat = lambda X, rel=rel: rel.statistic(sample_per_user(X, k, np.random.default_rng(0)))  # noqa: E731
    pairs = []
    for u in (heavy_user, exact_k_user, [(3, 4.0)], [(j, 2.0) for j in range(N_ITEMS - 3, N_ITEMS)]):
        pairs += _neighbours_user([[(j, v) for j, v in r if j < N_ITEMS - 3] for r in rows], u)
    cases.append(Case("item_selection/user", rel, stat, pairs, 1.0))
    # a later DP-SIPS round: the items released earlier (public) are dropped row by row, then the cap: Δ = 1
    released = np.zeros(N_ITEMS, bool)
    released[::4] = True
    stat = lambda X, rel=rel: rel.statistic(sips_round_matrix(X, released, k, np.random.default_rng(0)))  # noqa: E731
    cases.append(Case("item_selection/user/sips-round", rel, stat, pairs, 1.0))
    rel = R.ItemSelection("rating", k=k)
    cases.append(Case("item_selection/rating", rel, rel.statistic, rating_pairs, 1.0))
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sensitivity_holds_and_is_nearly_attained(case):
    r, where = _ratio(case)
    assert r <= 1 + TOL, f"{case.id}: ‖Δ‖/bound = {r:.6f} > 1 ({where}): the claimed sensitivity is too small"
    if case.attain > 0:
        assert r >= case.attain - TOL, f"{case.id}: the bound is loose: ‖Δ‖/bound = {r:.6f} < {case.attain}"


def test_every_release_has_a_case_per_unit():
    names = {(type(c.release).__name__, c.release.unit) for c in CASES}
    declared = {n for n in R.__all__ if isinstance(getattr(R, n), type) and issubclass(getattr(R, n), R.Release)} - {
        "Release"
    }
    missing = {(n, u) for n in declared for u in ("user", "rating")} - names
    # FactorStats runs the ALS engine: its cases live in tests/privacy/test_release_factor_stats.py; the releases of
    # DP implicit ALS (users solve against released item factors) in tests/privacy/test_release_implicit.py;
    # DP-SGD's (ClippedItemGradient) in tests/privacy/test_dpsgd_release.py
    engine = {"FactorStats", "ImplicitGramian", "ImplicitItemStats", "ClippedItemGradient"}
    assert missing <= {(n, u) for n in engine for u in ("user", "rating")}, missing


# ============================================================================================ mutants
def test_mutant_rating_unit_offset_is_caught(monkeypatch):
    """Keeping the user's own offset in the rating-unit item statistic (a 1.008–1.02× excess) fails the check."""
    case = next(c for c in CASES if c.id == "item_biases/rating")
    assert _ratio(case)[0] <= 1 + TOL

    def mutant(self, X, *, mu, rng=None):  # the real statistic, but the user offset also under the rating unit
        n_u = np.diff(X.indptr)
        offset = R.segment_sums(X.data - mu, X.indptr) / (n_u + self.user_reg)
        e = np.clip(X.data - mu - np.repeat(offset, n_u), -self.residual_bound, self.residual_bound)
        n = X.shape[1]
        return np.concatenate([np.bincount(X.indices, weights=e, minlength=n), np.bincount(X.indices, minlength=n)])

    monkeypatch.setattr(R.ItemBiases, "statistic", mutant)
    r, _ = _ratio(case)
    assert r > 1 + 1e-3, f"the mutant went undetected (ratio {r})"


def test_spectral_rating_unit_has_no_local_bias():
    """Under the rating unit the spectral statistic ignores ``bias_reg`` exactly (no local bias)."""
    X = _matrix(_base_rows(3))
    rel = R.SpectralMoment("rating", k=10, bound=0.5, n_selected=50)
    ctx = dict(mu=MU, item_bias=_item_bias_context(), items=np.arange(50))
    a, b = rel.statistic(X, bias_reg=1.0, **ctx), rel.statistic(X, bias_reg=1e6, **ctx)
    assert np.array_equal(a, b) and np.abs(a).max() > 0


def test_mutant_spectral_local_bias_under_rating_unit_is_caught(monkeypatch):
    """The user-unit statistic (with the user's local bias) priced at the rating-unit bound fails the check."""
    case = next(c for c in CASES if c.id == "spectral_moment/rating/k=10")
    assert _ratio(case)[0] <= 1 + TOL

    def mutant(self, X, *, mu, item_bias, items, bias_reg):
        items = np.asarray(items, dtype=np.int64)
        return K.spectral_moment(X.indptr, X.indices, X.data, mu, item_bias, items, 1.0, self.bound, self.k)

    monkeypatch.setattr(R.SpectralMoment, "matrix", mutant)
    r, _ = _ratio(case)
    assert r > 1.1, f"the mutant went undetected (ratio {r})"


def test_mutant_sensitivity_one_percent_small_is_caught(monkeypatch):
    """Every exactly attained case fails when its sensitivity is claimed 1% too small."""
    for case in CASES:
        if case.attain < 0.995:
            continue
        orig = type(case.release).sensitivity
        monkeypatch.setattr(type(case.release), "sensitivity", lambda self, orig=orig: 0.99 * orig(self))
        assert _ratio(case)[0] > 1 + TOL, case.id
        monkeypatch.undo()
