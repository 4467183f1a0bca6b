"""Interactions: construction, validation error paths, ids, fingerprints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from dprec import Interactions
from dprec.data import as_interactions
from dprec.errors import UnknownIdError


# --------------------------------------------------------------------------- construction
def test_from_pandas_basic(small_data, ratings_df):
    d = small_data
    assert d.shape == (4, 5) and d.nnz == 12 and len(d) == 12
    assert list(d.user_ids) == ["alice", "bob", "carol", "dave"]
    assert list(d.item_ids) == ["i1", "i2", "i3", "i4", "i5"]
    assert d.rating_bounds == (0.5, 5.0)
    assert d.public_items is False  # vocabulary derived from the data
    assert d.matrix[d.user_inner(["bob"])[0], d.item_inner(["i5"])[0]] == 4.5
    # timestamps aligned with CSR order
    back = d.to_pandas().sort_values(["user", "item"]).reset_index(drop=True)
    exp = ratings_df.sort_values(["user", "item"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, exp, check_dtype=False)


def test_string_ids_round_trip(small_data):
    items, ratings = small_data.user_ratings("carol")
    assert dict(zip(items.tolist(), ratings.tolist())) == {"i2": 3.5, "i3": 2.5, "i4": 5.0}
    inner = small_data.item_inner(["i5", "i1"])
    assert small_data.item_ids[inner].tolist() == ["i5", "i1"]
    assert small_data.user_inner(["zed"], missing="minus1").tolist() == [-1]
    with pytest.raises(UnknownIdError, match="unknown user id 'zed'"):
        small_data.user_inner(["zed"])
    with pytest.raises(KeyError):  # UnknownIdError is also a KeyError
        small_data.item_inner("nope")


def test_implicit_and_catalog(ratings_df):
    cat = ["i0", "i1", "i2", "i3", "i4", "i5", "i9"]
    d = Interactions.from_pandas(ratings_df, rating_col=None, item_catalog=cat)
    assert d.public_items is True
    assert list(d.item_ids) == cat  # catalog order, unrated items kept
    assert np.all(d.matrix.data == 1.0)
    assert d.matrix[:, 0].nnz == 0


def test_from_csr_and_as_interactions():
    m = sp.random(6, 4, density=0.5, format="csr", random_state=0)
    d = Interactions.from_csr(m, rating_bounds=(0, 1))
    assert d.shape == (6, 4) and list(d.user_ids) == list(range(6))
    assert as_interactions(d) is d
    assert as_interactions(m).shape == (6, 4)
    with pytest.raises(TypeError, match="Interactions or a user×item"):
        as_interactions(m.toarray())


def test_read_csv_and_parquet(tmp_path, ratings_df):
    p = tmp_path / "r.csv"
    ratings_df.to_csv(p, index=False)
    a = Interactions.read(p, rating_bounds=(0.5, 5), timestamp_col="timestamp")
    q = tmp_path / "r.parquet"
    ratings_df.to_parquet(q)
    b = Interactions.read(q, rating_bounds=(0.5, 5), timestamp_col="timestamp")
    assert a.fingerprint() == b.fingerprint()
    assert a.name == "r.csv"


# --------------------------------------------------------------------------- error paths
def test_nan_rating_names_row(ratings_df):
    df = ratings_df.copy()
    df.index = [f"row{k}" for k in range(len(df))]
    df.loc["row7", "rating"] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite \(first at row 'row7'"):
        Interactions.from_pandas(df, rating_bounds=(0.5, 5))


def test_inf_rating(ratings_df):
    df = ratings_df.copy()
    df.loc[3, "rating"] = np.inf
    with pytest.raises(ValueError, match="first at row 3"):
        Interactions.from_pandas(df)


def test_out_of_bounds_rating(ratings_df):
    with pytest.raises(
        ValueError,
        match=r"2 rating\(s\) lie outside the declared rating_bounds \(2.0, 5.0\) "
        r"\(first at row 4: 1.0\)",
    ):
        Interactions.from_pandas(ratings_df, rating_bounds=(2, 5))
    df = ratings_df.copy()
    df.loc[5, "rating"] = 7.0
    with pytest.raises(ValueError, match=r"first at row 5: 7.0"):
        Interactions.from_pandas(df, rating_bounds=(0.5, 5))
    # the direct constructor validates stored values too
    m = sp.csr_matrix(np.array([[1.0, 9.0]]))
    with pytest.raises(ValueError, match="outside the declared rating_bounds"):
        Interactions.from_csr(m, rating_bounds=(1, 5))


def test_non_numeric_rating(ratings_df):
    df = ratings_df.copy()
    df["rating"] = df["rating"].astype(object)
    df.loc[2, "rating"] = "five"
    with pytest.raises(ValueError, match="column 'rating' must be numeric"):
        Interactions.from_pandas(df)


@pytest.mark.parametrize("bounds", [(5, 1), (1, 1), (0, np.inf), (np.nan, 5), ("a", "b"), (1, 2, 3), 5])
def test_bad_bounds(ratings_df, bounds):
    with pytest.raises(ValueError, match="rating_bounds"):
        Interactions.from_pandas(ratings_df, rating_bounds=bounds)


def test_duplicates_error_and_policies():
    df = pd.DataFrame({"user": [1, 1, 2, 1], "item": [7, 7, 7, 8], "rating": [2.0, 4.0, 3.0, 5.0], "t": [5, 1, 2, 3]})
    with pytest.raises(ValueError, match=r"2 rows repeat a \(user, item\) pair, e.g. rows \[0, 1\]"):
        Interactions.from_pandas(df)
    mean = Interactions.from_pandas(df, duplicates="mean")
    assert mean.nnz == 3 and mean.matrix[0, 0] == 3.0
    last_by_row = Interactions.from_pandas(df, duplicates="last")
    assert last_by_row.matrix[0, 0] == 4.0
    last_by_time = Interactions.from_pandas(df, duplicates="last", timestamp_col="t")
    assert last_by_time.matrix[0, 0] == 2.0  # rating 2.0 has the later timestamp (5)
    first_by_time = Interactions.from_pandas(df, duplicates="first", timestamp_col="t")
    assert first_by_time.matrix[0, 0] == 4.0
    summed = Interactions.from_pandas(df, duplicates="sum")
    assert summed.matrix[0, 0] == 6.0
    with pytest.raises(ValueError, match="duplicates must be one of"):
        Interactions.from_pandas(df, duplicates="max")


def test_empty_input():
    df = pd.DataFrame({"user": [], "item": [], "rating": []})
    with pytest.raises(ValueError, match="empty"):
        Interactions.from_pandas(df)
    with pytest.raises(ValueError, match="no stored ratings"):
        Interactions.from_csr(sp.csr_matrix((3, 2)))


def test_missing_column(ratings_df):
    with pytest.raises(ValueError, match=r"column\(s\) \['score'\] not found.*rating_col="):
        Interactions.from_pandas(ratings_df, rating_col="score")
    with pytest.raises(TypeError, match="DataFrame"):
        Interactions.from_pandas(ratings_df.to_numpy())


def test_missing_ids(ratings_df):
    df = ratings_df.copy()
    df.loc[4, "user"] = None
    with pytest.raises(ValueError, match="column 'user' has missing ids \\(first at row 4\\)"):
        Interactions.from_pandas(df)


def test_unknown_item_vs_public_catalog(ratings_df):
    with pytest.raises(UnknownIdError, match="item id 'i5' not in the item vocabulary.*public item_catalog"):
        Interactions.from_pandas(ratings_df, item_catalog=["i1", "i2", "i3", "i4"])
    with pytest.raises(UnknownIdError, match="user id"):
        Interactions.from_pandas(ratings_df, users=["alice", "bob"])
    with pytest.raises(ValueError, match="item vocabulary repeats id 'i1'"):
        Interactions.from_pandas(ratings_df, item_catalog=["i1", "i2", "i3", "i4", "i5", "i1"])


def test_wrong_orientation_from_csr():
    m = sp.random(10, 3, density=0.5, format="csr", random_state=1)  # 10 users × 3 items
    with pytest.raises(ValueError, match="user×item") as exc:
        Interactions.from_csr(m.T.tocsr(), user_ids=np.arange(10), item_ids=np.arange(3))
    assert "transpose" in str(exc.value)
    with pytest.raises(ValueError, match="item_ids has 10 entries but the matrix has 3 columns"):
        Interactions.from_csr(m, item_ids=np.arange(10))
    with pytest.raises(ValueError, match=r"does not match the vocabularies"):
        Interactions(m, np.arange(3), np.arange(10))
    with pytest.raises(TypeError, match="scipy.sparse"):
        Interactions.from_csr(m.toarray())


def test_timestamps_length_checked():
    m = sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 3.0]]))
    with pytest.raises(ValueError, match="one entry per rating"):
        Interactions.from_csr(m, timestamps=[1, 2])


# --------------------------------------------------------------------------- fingerprint
def test_fingerprint_stable_and_sensitive(ratings_df):
    a = Interactions.from_pandas(ratings_df, rating_bounds=(0.5, 5))
    b = Interactions.from_pandas(ratings_df.sample(frac=1.0, random_state=3), rating_bounds=(0.5, 5))
    assert a.fingerprint() == b.fingerprint()  # row order of the input does not matter
    assert len(a.fingerprint()) == 64
    changed = ratings_df.copy()
    changed.loc[0, "rating"] = 4.5
    assert Interactions.from_pandas(changed, rating_bounds=(0.5, 5)).fingerprint() != a.fingerprint()
    assert Interactions.from_pandas(ratings_df, rating_bounds=(0, 5)).fingerprint() != a.fingerprint()
    renamed = ratings_df.replace({"user": {"dave": "erin"}})
    assert Interactions.from_pandas(renamed, rating_bounds=(0.5, 5)).fingerprint() != a.fingerprint()
    cat = Interactions.from_pandas(ratings_df, rating_bounds=(0.5, 5), item_catalog=list(a.item_ids))
    assert cat.fingerprint() != a.fingerprint()  # public_items is part of the declared facts
    fewer = ratings_df.drop(index=11)
    assert Interactions.from_pandas(fewer, rating_bounds=(0.5, 5)).fingerprint() != a.fingerprint()


def test_with_matrix_keeps_vocabularies(small_data):
    m = small_data.matrix.copy()
    m.data[:] = 1.0
    d = small_data.with_matrix(m, small_data.timestamps)
    assert d.user_ids is small_data.user_ids or np.array_equal(d.user_ids, small_data.user_ids)
    assert np.array_equal(d.item_ids, small_data.item_ids)
    assert d.rating_bounds == small_data.rating_bounds and d.name == small_data.name
    with pytest.raises(ValueError, match="does not match the vocabularies"):
        small_data.with_matrix(sp.csr_matrix((3, 5)))


def test_public_api():
    """``import dprec`` exposes the models, the data/evaluation entry points, the ledger and the errors."""
    import dprec
    import dprec.models
    import dprec.privacy
    from dprec import errors

    for name in ("ALS", "DPALS", "DPGlobalEffects", "DPItemItem", "DPPopularity", "Popularity", "load_model"):
        assert getattr(dprec, name) is getattr(dprec.models, name)
    for name in ("Interactions", "load_dataset", "evaluate", "split", "Ledger", "PrivacyWarning"):
        assert name in dprec.__all__
    for name in errors.__all__:
        if name != "did_you_mean":
            assert getattr(dprec, name) is getattr(errors, name) and name in dprec.__all__
    assert all(hasattr(dprec, n) for n in dprec.__all__)
    assert set(dprec.privacy.__all__) == {
        "Ledger",
        "Spent",
        "Remaining",
        "PrivacyWarning",
        "check_epsilon",
        "check_delta",
        "plan",
        "Step",
        "Plan",
        "rho_to_epsilon",
        "epsilon_to_rho",
        "gaussian_rho",
        "sigma_for_rho",
        "dpsgd_epsilon",
        "dpsgd_noise_multiplier",
        "NoiseStreams",
        "NoiseSource",
        "SecureNoiseError",
    }
    assert all(hasattr(dprec.privacy, n) for n in dprec.privacy.__all__)
