"""DP-ALS's factor statistics (:class:`dprec.models.releases.FactorStats`) on neighbouring datasets.

The statistic is the engine's own code path (every user solves locally against the released ``(μ, c, V)``,
then :func:`dprec.models._biased_als.item_statistics`); the first test checks that it is exactly what
``_biased_als.run`` hands to the item solve. Released item factors are held fixed (joint DP).

* user unit: an adversarial heavy user whose solved factor clips at Γ and whose residuals clip at ±B; the
  ratio is ≥ 0.995, so a sensitivity claimed 1% too small fails;
* rating unit: adding one rating flips the user's factor from +Γ to −Γ and so changes *all* of the user's
  terms; the change exceeds the user-level bound C by 26%, which is why the rating unit claims 2C. A mutant
  that drops the factor 2 fails.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_releases import N_ITEMS, TOL, _base_rows, _matrix, _neighbours_rating, _neighbours_user

from dprec.models import _biased_als as E
from dprec.models import releases as R

MU = 3.0
ROWS = _base_rows()


def _context(d: int, seed: int = 3) -> dict:
    g = np.random.default_rng(seed)
    V = g.normal(0, 0.3, (N_ITEMS, d))
    return {"item_factors": V, "mu": MU, "item_bias": g.normal(0, 0.2, N_ITEMS), "user_reg": 0.03, "bias_reg": 10.0}


def _ratio(rel, ctx, pairs, rng_seed=0) -> float:
    delta = rel.sensitivity()
    best = 0.0
    for relation, D, D2 in pairs:
        bound = 2 * delta if relation == "change rating" else delta
        a = rel.statistic(D, **ctx, rng=np.random.default_rng(rng_seed))
        b = rel.statistic(D2, **ctx, rng=np.random.default_rng(rng_seed))
        best = max(best, float(np.linalg.norm(a - b)) / bound)
    return best


def _user_case(contribution="weight"):
    d, k = 2, 5
    ctx = _context(d)
    # 20 ratings alternating at the bounds on items whose factors follow the same pattern: the solved factor
    # is large (clipped at Γ) and every residual clips at ±B
    heavy = [(j, 5.0 if j % 2 == 0 else 1.0) for j in range(20)]
    # Γ = 10 ≫ 1: ũ = [u; 1] is then concentrated on one coordinate, so ‖triu(ũũᵀ)‖ ≈ ‖ũ‖² and the bound is tight
    ctx["item_factors"][:20] = np.where(np.arange(20) % 2 == 0, 0.05, -0.05)[:, None] * np.array([1.0, 0.0])
    ctx["item_bias"][:20] = 0.0
    ctx["user_reg"] = 1e-3  # a weak ridge, so the solved factor is large
    rel = R.FactorStats("user", k=k, residual_bound=1.5, clip_norm=10.0, factors=d, contribution=contribution)
    return rel, ctx, _neighbours_user(ROWS, heavy)


def _rating_case():
    d = 1
    ctx = _context(d)
    # one rating on an item with a small factor (the user's factor clips at +Γ); adding a rating on an item
    # with an opposite factor flips it to −Γ
    ctx["item_factors"][40], ctx["item_factors"][50] = 0.1, -0.3
    ctx["item_bias"][:] = 0.0
    rel = R.FactorStats("rating", k=1, residual_bound=1.5, clip_norm=1.0, factors=d)
    return rel, ctx, _neighbours_rating(ROWS, [(40, 5.0)], new_item=50, new_value=5.0, changes=[1.0])


def test_statistic_is_what_the_engine_solves():
    rel, ctx, _ = _user_case()
    X = _matrix(ROWS)
    Xt, item_t = E.item_major(X)
    seen = []

    def solve(A, b):
        seen.append(rel.pack(A, b))
        return np.zeros_like(b)

    E.run(
        X,
        ctx["item_factors"],
        mu=MU,
        item_bias=ctx["item_bias"],
        iterations=1,
        user_reg=ctx["user_reg"],
        bias_reg=ctx["bias_reg"],
        solve=solve,
        weights=rel.item_major_weights(X),  # what DP-ALS gives the engine
        residual_bound=rel.residual_bound,
        clip_norm=rel.clip_norm,
        item_major_csr=(Xt, item_t),
    )
    np.testing.assert_array_equal(seen[0], rel.statistic(X, **ctx))


@pytest.mark.parametrize("contribution", ["weight", "sample"])
def test_user_unit_bound_holds_and_is_nearly_attained(contribution):
    rel, ctx, pairs = _user_case(contribution)
    r = _ratio(rel, ctx, pairs)
    assert r <= 1 + TOL
    assert r >= 0.995, r


def test_rating_unit_needs_the_factor_two():
    rel, ctx, pairs = _rating_case()
    r = _ratio(rel, ctx, pairs)
    assert r <= 1 + TOL
    # one rating moves the user's whole contribution: more than the user-level bound C = Δ/2
    assert r >= 0.6, r


def test_mutant_without_the_rating_factor_two_is_caught(monkeypatch):
    rel, ctx, pairs = _rating_case()
    orig = R.FactorStats.sensitivity
    monkeypatch.setattr(R.FactorStats, "sensitivity", lambda self: orig(self) / (2.0 if self.unit == "rating" else 1.0))
    assert _ratio(rel, ctx, pairs) > 1 + 1e-3


def test_mutant_one_percent_small_is_caught(monkeypatch):
    rel, ctx, pairs = _user_case()
    orig = R.FactorStats.sensitivity
    monkeypatch.setattr(R.FactorStats, "sensitivity", lambda self: 0.99 * orig(self))
    assert _ratio(rel, ctx, pairs) > 1 + TOL


@pytest.mark.parametrize("seed", range(3))
def test_kernel_weights_round_toward_zero(seed):
    # the stored float32 weights never exceed the float64 ones (so w ≤ 1 and Σ w² ≤ k per user still hold)
    # and are the nearest float32 at or below them
    w = np.random.default_rng(seed).random(10_000) ** 3
    w[:3] = [0.0, 1.0, np.sqrt(1 / 3)]
    w32 = R.kernel_weights(w)
    assert w32.dtype == np.float32
    assert (w32.astype(np.float64) <= w).all()
    nxt = np.nextafter(w32, np.float32(2.0)).astype(np.float64)
    assert (nxt > w).all()
    assert w32[0] == 0.0 and w32[1] == 1.0


def test_release_weights_bound_each_user():
    X = _matrix(ROWS)
    rel = R.FactorStats("user", k=2, residual_bound=1.5, clip_norm=1.0, factors=3)
    Xt, _ = E.item_major(X)
    w_t = rel.item_major_weights(X, item_major_users=Xt.indices)
    assert w_t.dtype == np.float32
    np.testing.assert_array_equal(w_t, rel.item_major_weights(X))
    per_user = np.bincount(Xt.indices, weights=w_t.astype(np.float64) ** 2, minlength=X.shape[0])
    assert (per_user <= rel.k).all()
    # attained to float32 rounding for users with more than k ratings
    heavy = np.diff(X.indptr) > rel.k
    assert heavy.any()
    np.testing.assert_allclose(per_user[heavy], rel.k, rtol=1e-6)
