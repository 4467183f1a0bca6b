"""The model card (dprec.card): DP counts only, no seed / fingerprint / exact count; evaluation and audit opt-in."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from dprec import Interactions
from dprec.card import COUNT_ROUNDING, NOT_DP_LABEL, card_markdown, model_card, round_count
from dprec.errors import ConfigError
from dprec.models import DPALS, DPPopularity

N_USERS, N_ITEMS, SEED = 1237, 61, 98765


@pytest.fixture(scope="module")
def odd_data():
    """1,237 users × 61 items, an odd number of ratings; ids are strings so no count hides in an id."""
    g = np.random.default_rng(7)
    rows = []
    for u in range(N_USERS):
        for i in g.choice(N_ITEMS, int(g.integers(3, 9)), replace=False):
            rows.append((f"u{u}", f"i{i}", int(g.integers(1, 6))))
    if len(rows) % 2 == 0:
        rows.pop()  # the last user keeps ≥ 2 ratings
    df = pd.DataFrame(rows, columns=["user", "item", "rating"])
    data = Interactions.from_pandas(df, rating_bounds=(1.0, 5.0), item_catalog=[f"i{i}" for i in range(N_ITEMS)])
    assert data.n_users == N_USERS and data.nnz % 2 == 1
    return data


def _forbidden(data) -> list[str]:
    n, nnz = data.n_users, data.nnz
    fp = data.fingerprint()
    return [str(n), f"{n:,}", str(nnz), f"{nnz:,}", str(SEED), fp, fp[:16], fp[:12]]


def _texts(path, **kw):
    card = model_card(path, **kw)
    return card, json.dumps(card), card_markdown(card)


@pytest.mark.parametrize("cls", [DPALS, DPPopularity])
def test_dp_card_has_no_seed_fingerprint_or_exact_count(tmp_path, odd_data, cls):
    model = cls(epsilon=1.0, delta=1e-6, rng=SEED)
    with pytest.warns(Warning):  # reproducibility mode
        model.fit(odd_data)
    saved, public = model.save(tmp_path / "m.npz"), model.export_public(tmp_path / "p.npz")
    for path in (saved, public):
        card, js, md = _texts(path, dataset_name=odd_data.dataset_id)
        for text in (js, md):
            for bad in _forbidden(odd_data):
                assert bad not in text, (path, bad)
            assert "sha256" not in text
        # the DP user count, rounded (post-processing), and the public catalog size
        n_dp = card["data"]["n_users_dp"]
        # every DP model's privacy report records ñ (a release of the fit); the card shows it rounded
        assert n_dp % COUNT_ROUNDING == 0 and abs(n_dp - N_USERS) < 400 and n_dp != N_USERS
        assert "n_users_dp" not in card["privacy"]  # the unrounded ñ is not repeated
        assert card["data"]["n_items"] == N_ITEMS and "public item catalog" in card["data"]["items"]
        assert card["data"]["dataset"] == odd_data.name  # the public part of the id only
        assert "n_users_dp" not in card["privacy"]["bounds"]  # the unrounded ñ is not repeated
        assert card["contents"]["arrays"].get("user_bias", "per-user rows") == "per-user rows"
        assert "evaluation" not in card and "audit" not in card  # opt-in only
        assert "## Known limitations" in md and "reproducibility mode" in md
    assert model_card(public)["contents"]["is_dp_artifact"] and not model_card(saved)["contents"]["is_dp_artifact"]


def test_non_private_card_states_no_count(tmp_path, odd_data):
    model = DPPopularity(epsilon=float("inf"))
    model.fit(odd_data)
    card, js, md = _texts(model.save(tmp_path / "m.npz"))
    assert card["data"]["n_users_dp"] is None and card["data"]["n_items"] is None
    for bad in _forbidden(odd_data)[:4] + [str(N_ITEMS)]:
        assert not re.search(rf"\b{re.escape(bad)}\b", js + md), bad
    assert "**None: ε = ∞" in md and "not differentially private" in card["limitations"][0]


def test_private_catalog_hides_the_item_count_of_the_data(tmp_path, odd_data):
    data = Interactions.from_csr(odd_data.matrix, rating_bounds=(1.0, 5.0))  # no public catalog
    model = DPPopularity(epsilon=2.0, delta=1e-6)
    model.fit(data)
    card = model_card(model.save(tmp_path / "m.npz"))
    released = int(model._released_item_mask().sum())
    assert card["data"]["n_items"] == released and "DP item selection" in card["data"]["items"]
    assert card["contents"]["arrays"]["item_counts"].startswith("per-item rows")  # not the data's item count
    assert any("no public item catalog" in x for x in card["limitations"])


def _evaluation(model="dp-popularity", eps=1.0):
    return {
        "rmse": None,
        "ndcg_at_k": 0.123456789,
        "recall_at_k": 0.2,
        "n_users_evaluated": N_USERS,
        "k": 10,
        "config": {"model": model, "private": True, "epsilon": eps, "split": "user", "test_fraction": 0.2,
                   "seed": SEED, "data_fingerprint": "sha256:deadbeefcafe", "n_users": N_USERS},
    }  # fmt: skip


def _audit(model="dp-popularity", eps=1.0):
    return {
        "kind": "dprec-audit",
        "model": model,
        "seed": SEED,
        "split": {"protocol": "user", "split_seed": SEED},
        "runs": [
            {
                "epsilon": eps,
                "bias": {
                    "k": 10,
                    "overall": {"popularity": {"gini_exposure": 0.91234, "n_tail_items": N_USERS, "n_users": N_USERS}},
                    "groups": [{"attribute": "activity", "group": "Q1", "n_users": N_USERS, "ndcg_at_k": 0.1}],
                    "gaps": [
                        {
                            "attribute": "activity",
                            "metric": "ndcg_at_k",
                            "best_group": "Q4",
                            "worst_group": "Q1",
                            "best": 0.2,
                            "worst": 0.1,
                            "gap": 0.1,
                            "n_groups": 4,
                        }
                    ],
                },  # fmt: skip
                "privacy_audit": {
                    "claimed_epsilon": eps,
                    "epsilon_lower": 0.25,
                    "alpha": 0.05,
                    "m": 500,
                    "n_included": 251,
                    "r": 20,
                    "v": 17,
                    "violation": False,
                    "statistic": "item_counts_",
                },  # fmt: skip
            }
        ],
    }


def test_evaluation_and_audit_are_opt_in_labelled_and_scrubbed(tmp_path, odd_data):
    model = DPPopularity(epsilon=1.0, delta=1e-6)
    model.fit(odd_data)
    path = model.export_public(tmp_path / "p.npz")
    card, js, md = _texts(path, evaluation=_evaluation(), audit=_audit())
    assert card["evaluation"]["label"] == NOT_DP_LABEL and card["audit"]["label"] == NOT_DP_LABEL
    assert "## Evaluation (not DP)" in md and "## Audit (not DP)" in md and "NOT differentially private" in md
    assert card["evaluation"]["metrics"]["ndcg_at_k"] == 0.123  # rounded
    assert card["audit"]["popularity"] == {"gini_exposure": 0.912}  # counts dropped
    assert card["audit"]["privacy_audit"]["epsilon_lower"] == 0.25 and "n_included" not in js
    for bad in (str(N_USERS), str(SEED), "deadbeef", "251"):
        assert bad not in js and bad not in md, bad
    with pytest.raises(ConfigError, match="evaluates model 'dpals'"):
        model_card(path, evaluation=_evaluation(model="dpals"))
    with pytest.raises(ConfigError, match="ε = 4"):
        model_card(path, evaluation=_evaluation(eps=4.0))
    with pytest.raises(ConfigError, match="no run at the model's ε"):
        model_card(path, audit=_audit(eps=4.0))
    with pytest.raises(ConfigError, match="not the output of `dprec audit"):
        model_card(path, audit={"runs": []})
    with pytest.raises(ConfigError, match="file not found"):
        model_card(path, audit=tmp_path / "missing.json")


def test_round_count():
    assert round_count(1236.4) == 1240 and round_count(-3.0) == 0 and round_count(None) is None
    assert round_count(float("inf")) is None
