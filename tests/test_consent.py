"""Consent on load: non-consenting and opted-out users never reach the Interactions, nor a fit.

The acceptance test of the issue: a fit with ``opted_out=[u]`` (or ``consent_col`` saying no for u) is bitwise the
fit on the table without u's rows, with the same seed, for ALS, DP-ALS, DP item-item and DP popularity; and it
differs from the fit that includes u (so the comparison can fail).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dprec import Interactions
from dprec.datasets import synthetic
from dprec.errors import DataError
from dprec.models import ALS, DPALS, DPItemItem, DPPopularity


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """A seeded long table with string user ids, a timestamp and a consent column (one user says no)."""
    df = synthetic(120, 60, 3, mean_ratings_per_user=15, rng=3).to_pandas()
    df["user"] = "u" + df["user"].astype(str)
    df["timestamp"] = np.arange(len(df))
    heavy = df["user"].value_counts().index[0]  # the most active user: the largest influence on the fit
    df["consent"] = df["user"] != heavy
    df.attrs["heavy"] = heavy
    return df


def _build(df, **kw):
    return Interactions.from_pandas(df, timestamp_col="timestamp", rating_bounds=(1, 5), name="t", **kw)


def _build_public(df, catalog, **kw):
    """With the public catalog (the DP fits then skip DP item selection)."""
    return _build(df, item_catalog=catalog, **kw)


# ------------------------------------------------------------------ loading
def test_opted_out_and_consent_equal_the_table_without_the_user(table):
    u = table.attrs["heavy"]
    without = _build(table[table["user"] != u])
    for data in (_build(table, opted_out=[u]), _build(table, consent_col="consent"), _build(table).without_users([u])):
        assert u not in data.user_index
        assert data.fingerprint() == without.fingerprint()  # ids, ratings and declared facts
        np.testing.assert_array_equal(data.user_ids, without.user_ids)
        np.testing.assert_array_equal(data.item_ids, without.item_ids)
        np.testing.assert_array_equal(data.timestamps, without.timestamps)
    assert _build(table).fingerprint() != without.fingerprint()


def test_a_users_vocabulary_loses_the_opted_out_user(table):
    u = table.attrs["heavy"]
    vocab = np.sort(table["user"].unique())
    data = _build(table, users=vocab, opted_out=[u])
    assert data.n_users == len(vocab) - 1 and u not in data.user_index  # no empty row left behind


def test_items_only_the_opted_out_user_rated_leave_a_derived_vocabulary(ratings_df):
    # bob alone rated i4? no: carol too; dave alone? make one: only "erin" rates i9
    df = pd.concat([ratings_df, pd.DataFrame([("erin", "i9", 4.0, 30)], columns=ratings_df.columns)])
    data = Interactions.from_pandas(df, opted_out=["erin"])
    assert "i9" not in data.item_index
    full = Interactions.from_pandas(df)
    assert "i9" not in full.without_users(["erin"]).item_index
    # a public catalog is public: the item stays
    cat = sorted(df["item"].unique())
    assert "i9" in Interactions.from_pandas(df, item_catalog=cat, opted_out=["erin"]).item_index


def test_consent_is_never_presumed(ratings_df):
    df = ratings_df.copy()
    df["ok"] = [1, 1, 1, 1, 1, 1, 1, None, 1, 1, 1, 1]  # one missing value for carol: no consent
    data = Interactions.from_pandas(df, consent_col="ok")
    assert "carol" not in data.user_index and data.n_users == 3
    df["ok"] = True
    df.loc[0, "ok"] = False  # one "no" row of alice's drops all of alice
    assert "alice" not in Interactions.from_pandas(df, consent_col="ok").user_index


def test_bad_consent_input_raises(ratings_df):
    df = ratings_df.copy()
    df["ok"] = "yes"
    with pytest.raises(DataError, match="booleans or 0/1"):
        Interactions.from_pandas(df, consent_col="ok")
    with pytest.raises(ValueError, match="consent column 'nope' not found"):
        Interactions.from_pandas(df, consent_col="nope")
    with pytest.raises(DataError, match="same kind"):
        Interactions.from_pandas(ratings_df, opted_out=[1])  # string ids, integer opt-out: would match nobody
    with pytest.raises(DataError, match="sequence"):
        Interactions.from_pandas(ratings_df, opted_out="alice")


def test_integer_ids_read_as_text_are_honoured():
    df = pd.DataFrame({"user": [1, 1, 2, 3], "item": [1, 2, 1, 2], "rating": [1.0, 2, 3, 4]})
    assert 2 not in Interactions.from_pandas(df, opted_out=["2"]).user_index
    with pytest.raises(DataError, match="not an integer"):
        Interactions.from_pandas(df, opted_out=["x2"])


def test_load_dataset_opted_out(ml100k_dir):
    from dprec.datasets import load_dataset

    data = load_dataset("ml-100k", data_home=ml100k_dir.parent, opted_out=["1", 2])
    full = load_dataset("ml-100k", data_home=ml100k_dir.parent)
    assert data.n_users == full.n_users - 2 and 1 not in data.user_index and 2 not in data.user_index
    assert data.nnz == full.nnz - len(full.user_ratings(1)[0]) - len(full.user_ratings(2)[0])
    assert 1 not in data.side["users"].index and 2 not in data.side["users"].index
    again = full.without_users([1, 2])
    assert again.fingerprint() == data.fingerprint() and again.dataset_id == full.dataset_id == data.dataset_id
    assert 1 not in again.side["users"].index and len(again.side["users"]) == len(full.side["users"]) - 2


# ------------------------------------------------------------------ fits: no influence
FITS = {
    "als": lambda: ALS(factors=4, iterations=3, rng=7),
    "dp-als": lambda: DPALS(epsilon=2.0, delta=1e-5, factors=4, iterations=2, rng=7),
    "dp-itemitem": lambda: DPItemItem(epsilon=2.0, delta=1e-5, rng=7),
    "dp-popularity": lambda: DPPopularity(epsilon=2.0, delta=1e-5, rng=7),
}


def _state(model) -> dict:
    st = {k: np.asarray(v) for k, v in model._get_state().items()}
    st["__user_ids"] = model.user_ids
    st["__item_ids"] = model.item_ids
    st["__seen"] = model._seen.toarray()
    return st


def _identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape
        and a[k].dtype == b[k].dtype
        and np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f")
        for k in a
    )


@pytest.mark.parametrize("name", sorted(FITS))
def test_non_consenting_user_has_no_influence_on_the_fit(table, name):
    u, cat = table.attrs["heavy"], np.sort(table["item"].unique())
    opted = FITS[name]().fit(_build_public(table, cat, opted_out=[u]))
    refused = FITS[name]().fit(_build_public(table, cat, consent_col="consent"))
    never = FITS[name]().fit(_build_public(table[table["user"] != u], cat))
    included = FITS[name]().fit(_build_public(table, cat))
    assert _identical(_state(opted), _state(never))  # bitwise, same seed
    assert _identical(_state(refused), _state(never))
    assert not _identical(_state(included), _state(never))  # the user would have had an influence
    if getattr(never, "private", False):
        assert math.isfinite(never.privacy_report()["verified_epsilon"])


def test_the_consenting_part_is_charged_against_the_tables_one_budget(table):
    # a new opt-out must not make a "new" dataset with a fresh budget: the ledger id is the whole table's
    u = table.attrs["heavy"]
    assert _build(table, opted_out=[u]).dataset_id == _build(table).dataset_id
    assert _build(table, consent_col="consent").dataset_id == _build(table).dataset_id
    assert _build(table).without_users([u]).dataset_id == _build(table).dataset_id
    assert _build(table[table["user"] != u]).dataset_id != _build(table).dataset_id  # an edited table is another
