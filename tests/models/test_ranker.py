"""The default DP ranker (dprec.models.ranker): the rule, delegation, one charge, the report and persistence."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from dprec.data import Interactions
from dprec.datasets import synthetic
from dprec.errors import CorruptFileError
from dprec.models import DPItemItem, DPPopularity, DPRanker, get_model, load_model
from dprec.models import ranker as R
from dprec.privacy import Ledger


@pytest.fixture(scope="module")
def syn():
    d = synthetic(1500, 300, rank=4, mean_ratings_per_user=25, implicit=True, exposure="affinity", rng=0)
    return d


def _fit(model, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(data, **kw)


def test_rule_uses_public_inputs_and_falls_back_to_popularity():
    lo = R.default_ranker(0.5, 1e-5, 900.0, 1682)
    assert lo.name == "dp-popularity" and "ε·ñ" in lo.reason
    hi = R.default_ranker(10.0, 1e-5, 900.0, 1682)
    assert hi.name == "dp-itemitem" and 0 < hi.params["alpha"] <= 1
    assert R.default_ranker(math.inf, 1e-5, 900.0, 1682).params == {"alpha": 1.0}
    # monotone in the signal ε·ñ: once personalised, α grows with ε·ñ and reaches 1
    alphas = [R.default_ranker(e, 1e-5, 1000.0, 500).params.get("alpha", 0.0) for e in (0.1, 1, 2, 3, 5, 50, 500)]
    ridges = [R.default_ranker(e, 1e-5, 1000.0, 500).params.get("noise_regularization", 16.0) for e in (0.1, 2, 5, 50)]
    assert ridges == sorted(ridges, reverse=True) and 4.0 <= min(ridges) and max(ridges) <= 16.0
    assert alphas == sorted(alphas) and alphas[0] == 0.0 and alphas[-1] == 1.0
    s_edge = R.RANKER_MIN_SIGNAL
    assert R.default_ranker(s_edge * 0.999 / 1000, 1e-5, 1000.0, 500).name == "dp-popularity"
    assert R.default_ranker(s_edge * 1.001 / 1000, 1e-5, 1000.0, 500).name == "dp-itemitem"
    assert R.default_ranker(100.0, 1e-5, 1000.0, 1).name == "dp-popularity"  # one item: nothing to personalise
    assert set(R.CANDIDATES) == {"dp-popularity", "dp-itemitem"}


def test_registered_and_default_auto():
    assert get_model("dp-ranker") is DPRanker
    assert DPRanker(epsilon=1.0, delta=1e-5).ranker == "auto"
    with pytest.raises(Exception, match="ranker"):
        DPRanker(epsilon=1.0, delta=1e-5, ranker="nope")


@pytest.mark.parametrize("eps,expected", [(0.05, "dp-popularity"), (8.0, "dp-itemitem")])
def test_delegates_to_the_chosen_model_with_the_same_scores_and_one_charge(syn, tmp_path, eps, expected):
    led = Ledger.create(tmp_path / "l.db", dataset=syn.dataset_id, epsilon=20, delta=1e-4)
    m = _fit(DPRanker(epsilon=eps, delta=1e-5, rng=3), syn, ledger=led)
    assert m.choice_.name == expected and type(m.delegate_) is R.CANDIDATES[expected]
    assert len(led.charges()) == 1  # the ranker charges the whole fit once
    rep = m.privacy_report()
    assert rep["ranker"]["chosen"] == expected and rep["ranker"]["reason"] == m.choice_.reason
    assert rep["verified_epsilon"] <= eps * (1 + 1e-9) and rep["verified_epsilon"] >= eps * 0.99
    names = [s["name"] for s in rep["steps"]]
    assert names[0] == "n_users" and "item_counts" in names
    assert ("item_cooccurrence" in names) == (expected == "dp-itemitem")
    assert led.spent().rho == pytest.approx(rep["total_rho"], rel=1e-6) and led.spent().rho >= rep["total_rho"]
    # the same choice made by hand gives the same kind of model; scores come from the delegate
    np.testing.assert_array_equal(m.recommend(syn.user_ids[:5], 5), m.delegate_.recommend(syn.user_ids[:5], 5))


def test_forced_ranker_and_the_exact_reference(syn):
    m = _fit(DPRanker(epsilon=2.0, delta=1e-5, ranker="dp-popularity", rng=1), syn)
    assert m.choice_.name == "dp-popularity" and "caller" in m.choice_.reason
    inf = DPRanker(epsilon=math.inf).fit(syn)
    ref = DPItemItem(epsilon=math.inf).fit(syn)
    np.testing.assert_array_equal(inf.recommend(syn.user_ids[:20], 10), ref.recommend(syn.user_ids[:20], 10))


def test_popularity_choice_ranks_like_dp_popularity(syn):
    """With the same noise streams' statistics the popularity delegate is DP popularity: same release, same ρ."""
    m = _fit(DPRanker(epsilon=0.05, delta=1e-5, rng=0), syn)
    p = _fit(DPPopularity(epsilon=0.05, delta=1e-5, rng=0), syn)
    sm = next(s for s in m.privacy_report()["steps"] if s["name"] == "item_counts")
    sp_ = next(s for s in p.privacy_report()["steps"] if s["name"] == "item_counts")
    assert sm["sigma"] == pytest.approx(sp_["sigma"]) and sm["sensitivity_l2"] == sp_["sensitivity_l2"]


def test_save_load_and_public_export_keep_the_choice(syn, tmp_path):
    m = _fit(DPRanker(epsilon=8.0, delta=1e-5, rng=2), syn)
    users = syn.user_ids[:7]
    p = m.save(tmp_path / "r")
    back = load_model(p)
    assert isinstance(back, DPRanker) and back.choice_ == m.choice_
    np.testing.assert_array_equal(back.recommend(users, 5), m.recommend(users, 5))
    assert back.privacy_report()["ranker"]["chosen"] == "dp-itemitem"
    pub = DPRanker.load_public(m.export_public(tmp_path / "pub"))
    assert pub.choice_ == m.choice_
    u = syn.matrix[0]
    pub.fold_in((syn.item_ids[u.indices], np.ones(u.nnz)), user=10**6)
    items, _ = pub.recommend(10**6, 5)
    assert len(items) == 5 and not set(items.tolist()) & set(syn.item_ids[u.indices].tolist())


def test_a_corrupt_choice_is_a_corrupt_file(syn, tmp_path):
    m = _fit(DPRanker(epsilon=8.0, delta=1e-5, rng=2), syn)
    state = m._get_state()
    state["__ranker"] = np.array('{"name": "dp-unknown", "params": {}, "reason": ""}')
    with pytest.raises(CorruptFileError, match="dp-unknown"):
        DPRanker(epsilon=8.0, delta=1e-5)._set_state(state)


def test_without_a_catalog_the_selection_runs_once_for_the_ranker():
    d = synthetic(3000, 200, rank=4, mean_ratings_per_user=20, implicit=True, exposure="affinity", rng=1)
    data = Interactions(d.matrix, d.user_ids, d.item_ids, public_items=False)
    m = _fit(DPRanker(epsilon=5.0, delta=1e-5, rng=0), data)
    rep = m.privacy_report()
    assert [s["name"] for s in rep["steps"]].count("item_selection") == 1
    assert rep["verified_epsilon"] <= 5.0 * (1 + 1e-9)
    mask = m.released_item_mask_
    assert 0 < mask.sum() < 200 and np.array_equal(mask, m.delegate_.released_item_mask_)
    recs, _ = m.recommend(d.user_ids[:10], 5)
    assert set(recs.ravel().tolist()) <= set(d.item_ids[mask].tolist())
