"""``Recommender.explain``: shares, the exact identity for every registered model, what each baseline is, the
plain-English text, and item titles from the MovieLens catalog.

The shared checks (identity against the ranking score, meaning on a planted pattern) live in
:class:`dprec.testing.ModelContract` and run in every model's contract class; this file adds a registry-wide
sweep (so a newly registered model cannot skip them) and per-family facts the contract cannot know.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from dprec import Interactions
from dprec.errors import UnknownIdError
from dprec.models import ALS, DPALS, DPImplicitALS, DPItemItem, get_model, model_names
from dprec.testing import contract_data
from dprec.testing.contract import explain_meaning_data

# the smallest configuration of each registered model (a new registered model must be added here)
SMALL = {
    "als": {"factors": 3, "iterations": 3, "rng": 0},
    "dp-baseline": {"epsilon": 4.0, "delta": 1e-5, "rng": 0},
    "dp-implicit-als": {
        "epsilon": 50.0,
        "delta": 1e-5,
        "factors": 3,
        "iterations": 2,
        "head_threshold": 0.0,
        "rng": 0,
    },
    "dp-itemitem": {"epsilon": 4.0, "delta": 1e-5, "rng": 0},
    "dp-popularity": {"epsilon": 4.0, "delta": 1e-5, "rng": 0},
    "dp-ranker": {"epsilon": 4.0, "delta": 1e-5, "rng": 0},
    "dp-sgd": {"epsilon": 4.0, "delta": 1e-5, "factors": 3, "epochs": 2, "sampling_rate": 0.5, "rng": 0},
    "dpals": {"epsilon": 4.0, "delta": 1e-5, "factors": 3, "iterations": 2, "rng": 0},
    "popularity": {},
}


def _data():
    d = contract_data()
    return Interactions(d.matrix, d.user_ids, d.item_ids, rating_bounds=(1.0, 5.0), public_items=True, name="c")


def _library_models():
    return [n for n in model_names() if get_model(n).__module__.startswith("dprec.models.")]


def test_every_registered_model_has_a_small_config():
    missing = sorted(set(_library_models()) - set(SMALL))
    assert not missing, f"add {missing} to SMALL so explain is checked for it"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_identity_for_every_registered_model(name):
    """``baseline + Σ contribution`` equals the score ``recommend`` ranks by, for several users and items."""
    data = _data()
    m = get_model(name)(**SMALL[name]).fit(data)
    assert m.explain_exact, f"{name}: every library model decomposes exactly (ALS: explicit or Cholesky)"
    for u in data.user_ids[:6]:
        cand = data.item_ids[:10]
        ids, scores = m.recommend(u, n=len(cand), items=cand, filter_seen=False)
        for i, s in zip(ids, scores):
            df = m.explain(u, i)
            # float32 user kernels: the tolerance scales with the magnitudes that cancel in the sum
            scale = 1.0 + abs(df.attrs["baseline"]) + df["contribution"].abs().sum()
            assert abs(df.attrs["baseline"] + df["contribution"].sum() - s) <= 1e-6 * scale, (u, i)
            if df["contribution"].abs().sum() > 0:
                assert np.isclose(df["share"].abs().sum(), 1.0)


def test_als_baselines_are_what_the_docstring_says():
    """The residual baseline is not a free fudge: μ + c_i (explicit) and ≈ 0 (implicit), to the solver's
    precision; the contributions carry the rest."""
    data = _data()
    for feedback in ("explicit", "implicit"):
        solver = {"solver": "cholesky"} if feedback == "implicit" else {}
        m = ALS(factors=3, iterations=4, feedback=feedback, dtype="float64", rng=0, **solver).fit(data)
        u = data.user_ids[1]
        for i in data.item_ids[:5]:
            df = m.explain(u, i)
            col = m.item_ids.tolist().index(i)
            expect = m.global_mean_ + float(m.item_bias_[col]) if feedback == "explicit" else 0.0
            assert abs(df.attrs["baseline"] - expect) < 1e-6, (feedback, df.attrs["baseline"], expect)


def test_implicit_als_cg_is_declared_approximate():
    """The CG user vectors are not the exact solve: declared, said in the text, and still close."""
    data = _data()
    m = ALS(factors=3, iterations=4, feedback="implicit", solver="cg", rng=0).fit(data)
    assert not m.explain_exact
    df = m.explain(data.user_ids[0], data.item_ids[3])
    assert df.attrs["exact"] is False and "approximation" in df.attrs["text"]
    assert abs(df.attrs["baseline"]) < 0.2 * max(df["contribution"].abs().sum(), 1e-9)
    assert ALS(feedback="implicit", solver="cholesky").explain_exact and ALS(feedback="explicit").explain_exact


def test_dp_implicit_baseline_is_the_popularity_term():
    d = contract_data()
    data = Interactions(d.matrix, d.user_ids, d.item_ids, public_items=True, name="c")
    m = DPImplicitALS(
        epsilon=50.0, delta=1e-5, factors=3, iterations=2, head_threshold=0.0, popularity_weight=0.0, rng=0
    ).fit(data)
    df = m.explain(data.user_ids[0], data.item_ids[3])
    assert abs(df.attrs["baseline"]) < 1e-4 * max(1.0, abs(df.attrs["ranking_score"]))


def test_dpals_contribution_is_the_users_own_rating_effect():
    """Removing the top rated item from the user's solve changes the score by about its contribution (the
    decomposition is the user solve's linearity in the targets, with the system matrix held fixed)."""
    data = _data()
    m = DPALS(epsilon=math.inf, factors=3, iterations=3, rng=0).fit(data)
    u, i = data.user_ids[2], data.item_ids[5]
    df = m.explain(u, i)
    assert np.isclose(df.attrs["baseline"] + df["contribution"].sum(), df.attrs["ranking_score"])
    assert np.isclose(df.attrs["ranking_score"], m.recommend(u, n=1, items=[i], filter_seen=False)[1][0])
    assert df.attrs["score"] == pytest.approx(np.clip(df.attrs["ranking_score"], 1, 5))


def test_itemitem_contributions_scale_like_the_score():
    m = DPItemItem(epsilon=math.inf, rng=0).fit(explain_meaning_data())
    df = m.explain("probe", "target")
    assert df["item"].iloc[0] == "cause" and df["share"].iloc[0] > 0.5
    _, s = m.recommend("probe", n=1, items=["target"])
    assert np.isclose(df.attrs["baseline"] + df["contribution"].sum(), s[0])


def test_text_reads_like_the_issue():
    m = ALS(factors=3, iterations=6, dtype="float64", rng=0).fit(explain_meaning_data())
    df = m.explain("probe", "target", item_names={"cause": "Star Wars (1977)", "target": "Return of the Jedi"})
    text = df.attrs["text"]
    top = df.iloc[0]
    assert top["item"] == "cause"
    assert text.startswith("*Return of the Jedi* is scored up mostly because you rated *Star Wars (1977)* 5 (")
    assert f"({top['share']:+.0%})" in text
    assert f"{df.attrs['baseline_share']:.0%} of the score is the overall average rating" in text
    assert "differential privacy" not in text and "probe" not in text
    # raw ids when no titles are given
    assert "*cause* 5" in m.explain("probe", "target").attrs["text"]


def test_text_does_not_overstate_many_small_pulls():
    """A user with many ratings and no dominant one: the text says so instead of "mostly because"."""
    d = contract_data(n_users=60, n_items=80, seed=3)
    m = ALS(factors=3, iterations=4, dtype="float64", rng=0).fit(d)
    heavy = max(d.user_ids, key=lambda u: len(d.user_ratings(u)[0]))
    for i in d.item_ids[:20]:
        df = m.explain(heavy, i)
        text = df.attrs["text"]
        top = df["share"].max()
        if 0.005 <= top < 0.1:
            assert "many of your ratings together" in text and "mostly because" not in text
        elif top >= 0.1:
            assert "mostly because" in text


def test_dp_text_states_the_guarantee():
    m = DPALS(epsilon=2.0, delta=1e-5, factors=2, iterations=2, rng=0).fit(explain_meaning_data())
    text = m.explain("probe", "target").attrs["text"]
    assert "differential privacy (ε = 2)" in text and "joint DP" in text
    inf = DPALS(epsilon=math.inf, factors=2, iterations=2, rng=0).fit(explain_meaning_data())
    assert "ε = ∞" in inf.explain("probe", "target").attrs["text"]


def test_popularity_text_says_it_is_not_about_you():
    m = get_model("popularity")().fit(explain_meaning_data())
    df = m.explain("probe", "target")
    assert (df["contribution"] == 0).all() and (df["share"] == 0).all()
    assert "does not depend on your ratings" in df.attrs["text"]


def test_unknown_ids_raise():
    m = get_model("popularity")().fit(explain_meaning_data())
    with pytest.raises(UnknownIdError):
        m.explain("nobody", "target")
    with pytest.raises(UnknownIdError):
        m.explain("probe", "no-such-item")


@pytest.mark.skipif(
    not os.path.isfile(os.path.join(os.environ.get("DPREC_DATA", ""), "ml-100k", "u.item")),
    reason="needs MovieLens-100K under $DPREC_DATA",
)
def test_movielens_titles():
    from dprec.datasets.attributes import load_item_titles

    titles = load_item_titles("ml-100k")
    assert titles[1] == "Toy Story (1995)" and len(titles) == 1682
    assert titles[np.int64(50)].startswith("Star Wars")
