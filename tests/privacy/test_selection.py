"""DP item selection in several rounds (DP-SIPS, ``dprec.privacy.bounding.dp_sips_selection``): budgets, the
per-round sensitivity on neighbouring datasets, the δ of each round's threshold, the accounting in a model's
report and ledger, and the warning when few items are released."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from dprec.data import Interactions
from dprec.errors import SelectionWarning
from dprec.models import _dp
from dprec.models.baselines import DPPopularity
from dprec.privacy.bounding import (
    dp_item_selection,
    dp_sips_selection,
    selection_threshold,
    sips_budgets,
    sips_round_matrix,
    weighted_item_counts,
)


def _matrix(rows_items, n_items):
    rows = np.concatenate([[i] * len(r) for i, r in enumerate(rows_items)]).astype(int)
    cols = np.concatenate([list(r) for r in rows_items]).astype(int)
    return sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(len(rows_items), n_items))


@pytest.mark.parametrize("rounds,growth", [(1, 2.0), (3, 2.0), (4, 1.0), (5, 0.5)])
def test_budgets_sum_exactly_and_grow_geometrically(rounds, growth):
    rhos, deltas = sips_budgets(0.7, 3e-6, rounds, growth)
    assert math.fsum(rhos) == pytest.approx(0.7, rel=1e-15) and math.fsum(deltas) == pytest.approx(3e-6, rel=1e-15)
    np.testing.assert_allclose(rhos[1:] / rhos[:-1], growth, rtol=1e-9)
    np.testing.assert_allclose(deltas, 3e-6 / rounds, rtol=1e-9)


def _neighbour_data(k):
    """Users on items 0..29, a heavy user (3k items, all shared) and public earlier output A = {0..9}."""
    rng = np.random.default_rng(3)
    users = [list(rng.choice(30, rng.integers(2, k), replace=False)) for _ in range(60)]
    heavy = list(range(30))  # above the cap: sampled
    return users, heavy


@pytest.mark.parametrize("k", [4, 8])
@pytest.mark.parametrize("released", [(), tuple(range(10)), (0, 5, 17, 29)])
def test_each_round_moves_the_weighted_counts_by_at_most_one(k, released):
    """Given the public output of the earlier rounds, removing the heaviest user moves the round's weighted count
    vector by ≤ 1 in L2, nearly attained (within 1e-9: the user's remaining items are all shared, so a bound
    1% too small fails, and a factor-2 looser bound would not be ``nearly attained``)."""
    users, heavy = _neighbour_data(k)
    n_items = 30
    mask = np.zeros(n_items, bool)
    mask[list(released)] = True
    for heavy_items in (heavy, heavy[: k - 1], [heavy[0], heavy[12]]):
        X1 = _matrix(users + [heavy_items], n_items)
        X0 = _matrix(users, n_items)
        # the other rows are below the cap: only the removed row is sampled, from its own remaining items
        assert all(len(set(u) - set(released)) <= k for u in users)
        ratios = []
        for seed in range(5):
            c1 = weighted_item_counts(sips_round_matrix(X1, mask, k, seed))
            c0 = weighted_item_counts(sips_round_matrix(X0, mask, k, seed))
            ratios.append(np.linalg.norm(c1 - c0) / 1.0)
        r = max(ratios)
        if set(heavy_items) <= set(released):
            assert r == 0.0  # nothing of the user is left: this round does not see it
        else:
            assert r <= 1.0 + 1e-12, r
            assert r >= 1.0 - 1e-9, r


def test_released_items_are_dropped_from_later_rounds_and_weights_move_to_the_rest():
    X = _matrix([[0, 1, 2, 3]] * 5, 6)
    mask = np.array([True, True, False, False, False, False])
    Xr = sips_round_matrix(X, mask, 8)
    assert set(np.unique(Xr.indices)) == {2, 3}
    np.testing.assert_allclose(weighted_item_counts(Xr)[[2, 3]], 5 / np.sqrt(2))  # 1/√2 each, not 1/√4
    with pytest.raises(ValueError, match="boolean mask"):
        sips_round_matrix(X, mask[:3], 8)


def test_one_round_is_the_single_threshold_with_the_same_noise():
    rng = np.random.default_rng(0)
    X = _matrix([list(rng.choice(40, rng.integers(1, 6), replace=False)) for _ in range(400)], 40)
    a = dp_sips_selection(X, rho=0.3, delta_sel=1e-6, k=8, rounds=1, rng=5)
    b = dp_item_selection(X, rho=0.3, delta_sel=1e-6, k=8, rng=5)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_allclose(a.noisy_counts, b.noisy_counts)
    assert a.threshold == pytest.approx(b.threshold) and a.rho == pytest.approx(b.rho)


def test_multi_round_releases_popular_items_first_and_costs_the_total():
    rng = np.random.default_rng(1)
    users = [list(rng.choice(10, 3, replace=False)) + list(10 + rng.choice(30, 3, replace=False)) for _ in range(3000)]
    X = _matrix(users, 50)  # items 40..49 nobody has
    sel = dp_sips_selection(X, rho=0.05, delta_sel=1e-6, k=8, rounds=3, growth=2.0, rng=2, sample_rng=3)
    assert sel.rho <= 0.05 * (1 + 1e-12) and sel.rho == pytest.approx(0.05, rel=1e-9)
    assert sel.delta == pytest.approx(1e-6, rel=1e-12)
    assert len(sel.rounds) == 3 and [r["sigma"] for r in sel.rounds] == sorted(
        (r["sigma"] for r in sel.rounds), reverse=True
    )
    for r in sel.rounds:
        assert r["threshold"] == pytest.approx(selection_threshold(r["sigma"], 8, r["delta"]))
    assert not np.isin(np.arange(40, 50), sel.items).any()
    head = sel.item_rounds[sel.items < 10]
    assert head.size == 10 and np.all(head == 0)  # the 10 very popular items pass in the cheap first round
    d = sel.to_dict()
    assert d["mechanism"].startswith("dp_sips") and len(d["rounds"]) == 3 and "item_rounds" not in d


@pytest.mark.parametrize("n_new", [1, 3])
def test_round_threshold_delta_holds_for_a_user_whose_items_are_all_new(n_new):
    """The worst case for the threshold: the added user owns ``n_new`` items nobody else has. Over T runs the
    fraction in which any of them is released *in round r* must be ≤ δ_r = δ_sel/R (and over all rounds ≤ δ_sel):
    checked at the bound + 4 binomial standard errors, a one-sided false-failure rate ≈ 3e-5 per check (fixed
    seeds: deterministic). At n_new = 1 (the n attaining τ's maximum here) round 1's rate must also be ≥ δ_1/2."""
    R, d, rho, k, T = 3, 0.15, 3.0, 4, 3000
    base = [[0, 1, 2]] * 20
    cols = list(range(3, 3 + n_new))
    X = _matrix(base + [cols], 12)
    g, s = np.random.default_rng(777 + n_new), np.random.default_rng(1)
    per_round = np.zeros(R)
    any_hit = 0
    for _ in range(T):
        sel = dp_sips_selection(X, rho=rho, delta_sel=d, k=k, rounds=R, growth=2.0, rng=g, sample_rng=s)
        own = np.isin(sel.items, cols)
        any_hit += bool(own.any())
        for r in np.unique(sel.item_rounds[own]):
            per_round[r] += 1
    se = lambda p: 4 * np.sqrt(p * (1 - p) / T)  # noqa: E731
    for r in range(R):
        assert per_round[r] / T <= d / R + se(d / R), (r, per_round / T)
    assert any_hit / T <= d + se(d)
    if n_new == 1:
        assert per_round[0] / T >= d / R / 2, per_round / T


def _no_catalog(n_users=300, n_items=60, seed=0):
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1)
    rows, cols = [], []
    for u in range(n_users):
        its = rng.choice(n_items, rng.integers(3, 12), replace=False, p=pop / pop.sum())
        rows += [u] * len(its)
        cols += list(its)
    m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    return Interactions(m, np.arange(n_users), np.arange(n_items), rating_bounds=(1, 5), public_items=False)


def test_a_model_with_multi_round_selection_reports_and_charges_it_like_one_round(monkeypatch, tmp_path):
    from dprec.privacy import Ledger
    from dprec.privacy import accounting as acc

    data = _no_catalog(2000)
    reps = {}
    for rounds in (1, 3):
        monkeypatch.setattr(_dp, "SELECTION_ROUNDS", rounds)
        led = Ledger.create(tmp_path / f"l{rounds}.db", dataset=data.dataset_id, epsilon=10, delta=1e-4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = DPPopularity(epsilon=2.0, delta=1e-5).fit(data, ledger=led)
        rep = m.privacy_report()
        sel = next(s for s in rep["steps"] if s["name"] == "item_selection")
        reps[rounds] = (sel, rep, led.spent())
        assert rep["verified_epsilon"] <= 2.0 * (1 + 1e-9)
    (s1, r1, spent1), (s3, r3, spent3) = reps[1], reps[3]
    assert "rounds" not in s1 and len(s3["rounds"]) == 3
    assert s3["rho"] == pytest.approx(s1["rho"], rel=1e-9) and s3["delta"] == pytest.approx(s1["delta"], rel=1e-12)
    assert math.fsum(r["rho"] for r in s3["rounds"]) == pytest.approx(s3["rho"], rel=1e-12)
    assert math.fsum(r["delta"] for r in s3["rounds"]) == pytest.approx(s3["delta"], rel=1e-12)
    assert r3["total_rho"] == pytest.approx(r1["total_rho"], rel=1e-9)
    assert acc.rho_to_epsilon(r3["total_rho"], 1e-5 - s3["delta"]) == pytest.approx(r3["verified_epsilon"])
    assert tuple(spent3) == pytest.approx(tuple(spent1), rel=1e-9)


def test_few_released_items_warn_with_the_count_and_the_catalog_fix():
    data = _no_catalog(60, 40)
    with pytest.warns(SelectionWarning, match=r"released \d+ of the items.*public_items=.*--items") as rec:
        m = DPPopularity(epsilon=0.5, delta=1e-5).fit(data)
    n = int(m.released_item_mask_.sum())
    assert n < _dp.SELECTION_FEW_ITEMS
    assert any(f"released {n} of the items" in str(w.message) for w in rec)
    big = _no_catalog(20000, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SelectionWarning)
        DPPopularity(epsilon=5.0, delta=1e-5).fit(big)  # 40 items released: no warning
