"""``forget(users)`` on served models: no trace of the erased user in the saved model file.

For every registered kind of model: after ``forget`` and ``save``, the erased raw id appears in no array of the
file (every array, id tables included, and the raw bytes), nor in its manifest; the user count and the stored
ratings drop by exactly that user; ``recommend``/``predict`` refuse the id in the session
(:class:`~dprec.errors.UnknownIdError`) and a reloaded model does not know it (served as any unknown user).
The item side is unchanged (the erasure note says what it still reflects and that a retrain is due).
"""

from __future__ import annotations

import json
import math
import warnings
import zipfile

import numpy as np
import pytest

from dprec import Interactions
from dprec.datasets import synthetic
from dprec.errors import CorruptFileError, DataError, UnknownIdError
from dprec.models import (
    ALS,
    DPALS,
    DPGlobalEffects,
    DPImplicitALS,
    DPItemItem,
    DPPopularity,
    DPRanker,
    Popularity,
    Recommender,
    get_model,
)

SECRET = "erase-me-7731"  # a raw id that cannot occur by chance in any array or in the manifest
D = 1e-5

MODELS = {
    "als": lambda: ALS(factors=4, iterations=3, rng=1),
    "als-implicit": lambda: ALS(feedback="implicit", factors=4, iterations=3, rng=1),
    "popularity": lambda: Popularity(),
    "dp-als": lambda: DPALS(epsilon=2.0, delta=D, factors=4, iterations=2, rng=1),
    "dp-global-effects": lambda: DPGlobalEffects(epsilon=2.0, delta=D, rng=1),
    "dp-popularity": lambda: DPPopularity(epsilon=2.0, delta=D, rng=1),
    "dp-itemitem": lambda: DPItemItem(epsilon=2.0, delta=D, rng=1),
    "dp-implicit-als": lambda: DPImplicitALS(epsilon=2.0, delta=D, factors=4, iterations=2, rng=1),
    "dp-ranker": lambda: DPRanker(epsilon=2.0, delta=D, rng=1),
    "dp-sgd": lambda: get_model("dp-sgd")(epsilon=2.0, delta=D, factors=4, rng=1),
}


@pytest.fixture(scope="module")
def data() -> Interactions:
    df = synthetic(150, 60, 3, mean_ratings_per_user=15, rng=4).to_pandas()
    df["user"] = "u" + df["user"].astype(str)
    df.loc[df["user"] == "u7", "user"] = SECRET
    return Interactions.from_pandas(df, rating_bounds=(1, 5), item_catalog=np.sort(df["item"].unique()), name="f")


def _fit(name, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # data warnings of ranking models on ratings are not the point here
        return MODELS[name]().fit(data)


def _item_side(model) -> dict:
    n = len(model.user_ids)
    return {
        k: np.asarray(v).copy()
        for k, v in model._get_state().items()
        if not (k.startswith(("user_", "d.user_")) and np.ndim(v) and np.shape(v)[0] == n)
    }


def _contains(arr: np.ndarray, needle: str) -> bool:
    if arr.dtype.kind in "US":
        return any(needle in str(v) for v in arr.ravel().tolist())
    if arr.dtype.kind == "O":
        return any(needle in str(v) for v in arr.ravel().tolist())
    return False


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forget_leaves_no_trace_in_the_saved_file(data, name, tmp_path):
    model = _fit(name, data)
    other = "u3"
    before_other = model.recommend(other, n=5)
    item_side = _item_side(model)
    n_users, n_seen = len(model.user_ids), model._seen.nnz
    n_secret = len(data.user_ratings(SECRET)[0])
    assert SECRET in model.user_ids.tolist()

    note = model.forget([SECRET])

    assert len(model.user_ids) == n_users - 1 and SECRET not in model.user_ids.tolist()
    assert model._seen.nnz == n_seen - n_secret and model._seen.shape[0] == n_users - 1
    with pytest.raises(UnknownIdError, match="erased"):
        model.recommend(SECRET)
    with pytest.raises(UnknownIdError, match="erased"):
        model.predict([SECRET], [data.item_ids[0]])
    # the other users and the item side are untouched
    after_other = model.recommend(other, n=5)
    np.testing.assert_array_equal(after_other[0], before_other[0])
    np.testing.assert_allclose(after_other[1], before_other[1])
    for k, v in _item_side(model).items():
        np.testing.assert_array_equal(v, item_side[k], err_msg=k)
    assert note["retrain_due"]["due"] is True and note["item_side"]

    path = model.save(tmp_path / "m.npz")
    raw = open(path, "rb").read()
    for enc in ("utf-8", "utf-32-le", "utf-16-le"):
        assert SECRET.encode(enc) not in raw
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    arrays = np.load(path, allow_pickle=False)
    manifest_text = bytes(arrays["__manifest__"]).decode()
    assert SECRET not in manifest_text
    for key in arrays.files:
        assert not _contains(arrays[key], SECRET), key
    assert len(names) == len(arrays.files)
    manifest = json.loads(manifest_text)
    assert manifest["n_users"] == n_users - 1
    assert manifest["erasure"]["retrain_due"]["due"] is True
    assert len(arrays["__seen_data"]) == n_seen - n_secret

    loaded = Recommender.load(path)
    assert SECRET not in loaded.user_ids.tolist() and len(loaded.user_ids) == n_users - 1
    assert loaded.erasure_report() == note
    # a reloaded model does not know the id: it serves it as any never-seen user (not personalised)
    np.testing.assert_array_equal(loaded.recommend(SECRET, n=5)[0], loaded.recommend("never-seen", n=5)[0])
    np.testing.assert_array_equal(loaded.recommend(other, n=5)[0], before_other[0])
    # a loaded model supports forget + save too
    loaded.forget([other])
    p2 = loaded.save(tmp_path / "m2.npz")
    again = Recommender.load(p2)
    assert other not in again.user_ids.tolist() and len(again.user_ids) == n_users - 2


@pytest.mark.parametrize("name", ["dp-als", "als"])
def test_the_note_says_what_the_item_side_still_reflects(data, name):
    model = _fit(name, data)
    note = model.forget([SECRET])
    text = json.dumps(note)
    assert SECRET not in text and str(len(data.user_ratings(SECRET)[0])) not in note["item_side"]
    if model.is_private:
        assert "epsilon=2" in note["item_side"] and "differential privacy" in note["item_side"]
        assert model.privacy_report()["erasure"] == note
        assert "reflects them only within the DP guarantee" in note["retrain_due"]["reason"]
    else:
        assert "not differentially private" in note["item_side"] and "exactly" in note["item_side"]
        assert "not erased" in note["retrain_due"]["reason"]


def test_forget_edge_cases(data):
    model = _fit("dp-als", data)
    n = len(model.user_ids)
    note = model.forget(["nobody-of-ours"])  # unknown ids are ignored (e.g. opted out before the fit)
    assert len(model.user_ids) == n and note["users_erased"] is False and not note["retrain_due"]["due"]
    assert model.erasure_report() is None
    with pytest.raises(DataError, match="same kind"):
        model.forget([7])  # an integer for string ids matches nobody: refused, never silently ignored
    with pytest.raises(DataError, match="sequence"):
        model.forget(SECRET)
    model.forget([SECRET, "u1"])
    assert len(model.user_ids) == n - 2 and model.user_factors_.shape[0] == n - 2
    assert model.user_bias_.shape[0] == n - 2
    # the user may come back with their own ratings (fold-in uses only the released item side)
    model.fold_in({data.item_ids[0]: 4.0}, user=SECRET)
    assert model.recommend(SECRET, n=3)[0].size == 3
    assert math.isfinite(model.predict([SECRET], [data.item_ids[1]])[0])


def test_a_bad_erasure_note_in_a_file_is_refused(data, tmp_path):
    from dprec.models.io import read_npz_with_manifest, write_npz_with_manifest

    model = _fit("popularity", data)
    model.forget([SECRET])
    path = model.save(tmp_path / "p.npz")
    arrays, manifest = read_npz_with_manifest(path, expected_format="dprec-model")
    manifest = {k: v for k, v in manifest.items() if k != "arrays"}
    manifest["erasure"] = "yes"
    write_npz_with_manifest(tmp_path / "bad.npz", arrays, manifest)
    with pytest.raises(CorruptFileError, match="erasure"):
        Recommender.load(tmp_path / "bad.npz")


# ------------------------------------------------------------------ the ledger's erasure record
def test_the_erasure_record_is_authenticated_and_holds_nothing_of_the_users(tmp_path):
    from dprec.errors import LedgerError
    from dprec.privacy import ledger as L

    led = L.Ledger.create(tmp_path / "l.sqlite", dataset="shop:abc", epsilon=1.0, delta=1e-5)
    led.charge(rho=0.01, model="DPALS", mechanism="gaussian")
    spent = led.spent()
    pub = led.record_erasure(model="DPALS")
    assert pub == {
        "kind": "erasure", "rho": None, "epsilon": 0.0, "delta": 0.0, "model": "DPALS", "mechanism": "erasure",
        "label": "",
    }  # fmt: skip
    assert led.spent() == spent  # costs nothing
    again = L.Ledger.open(tmp_path / "l.sqlite", dataset="shop:abc")  # the chain verifies with the record in it
    assert [c["kind"] for c in again.charges()] == ["zcdp", "erasure"]
    again.charge(rho=0.01, model="DPALS", mechanism="gaussian")  # and charges go on after it
    # a record carrying anything more (ids, a count) is refused by the body validation: fail closed
    base = {**pub, "params": {}, "seed_digest": None, "seq": 1}
    assert L._validate_body(base, 1) is None
    for bad in ({"params": {"users": [SECRET]}}, {"params": {"n": 1}}, {"label": "1 user"}, {"epsilon": 0.5}):
        assert L._validate_body({**base, **bad}, 1) is not None, bad
    # an edited row (the MAC chain) is detected as for any charge
    import sqlite3

    con = sqlite3.connect(tmp_path / "l.sqlite")
    body = con.execute("SELECT body FROM ledger_charges WHERE seq = 2").fetchone()[0]
    con.execute("UPDATE ledger_charges SET body = ? WHERE seq = 2", (body.replace('"label":""', '"label":"x"'),))
    con.commit()
    con.close()
    with pytest.raises(LedgerError):
        L.Ledger.open(tmp_path / "l.sqlite")
    with pytest.raises(ValueError, match="model"):
        led.record_erasure(model="")


def test_the_public_export_carries_no_erasure_note(data, tmp_path):
    # whether someone asked to be erased is a fact about the users, not a DP release: kept out of the DP artifact
    model = _fit("dp-ranker", data)
    model.forget([SECRET])
    assert "erasure" in model.privacy_report()
    path = model.export_public(tmp_path / "pub.npz")
    manifest = json.loads(bytes(np.load(path, allow_pickle=False)["__manifest__"]).decode())
    assert "erasure" not in manifest and "erasure" not in manifest["privacy"] and manifest["privacy"]["steps"]
    assert SECRET not in json.dumps(manifest)
