"""A shared contract test for every dprec model (the full :class:`~dprec.models.base.Recommender` protocol).

Third-party models run the same contract: subclass it in a ``Test*`` class (pytest collects it) and provide
the hooks::

    from dprec.testing import ModelContract

    class TestMyModel(ModelContract):
        def make_model(self):
            return MyModel(rng=0)

It uses only public API (needs ``pytest``).

Optional hooks / declarations (class attributes):

``make_data()``                 the training data; default: small explicit ratings with **string** ids,
                                rating bounds (1, 5), every user with ≥ 4 ratings.
``fit_model(model, data)``      how to fit (DP models pass ``epsilon=`` etc.); default ``model.fit(data)``.
``supports_fold_in``            False if ``fold_in`` raises NotImplementedError.
``supports_explain``            False if ``explain`` raises NotImplementedError.
``make_explain_data()``         the data of the meaning check (default :func:`explain_meaning_data`).
``make_explain_model()``        the model of the meaning check (default ``make_model()``).

A model whose scores never use the user's ratings declares ``explain_uses_ratings = False`` on its class: the
meaning check then asserts that every contribution is 0 instead.
``supports_similar_items``      False if the model has no item representation.
"""

from __future__ import annotations

import os
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

from dprec.data import Interactions
from dprec.errors import CorruptFileError, IgnoredParameterWarning, NotFittedError, UnknownIdError
from dprec.models.base import Recommender, load_model
from dprec.models.io import read_npz_with_manifest
from dprec.models.registry import model_class_by_name

__all__ = ["ModelContract", "contract_data", "explain_meaning_data"]


def contract_data(n_users: int = 40, n_items: int = 30, seed: int = 0) -> Interactions:
    """Low-rank explicit ratings on a 1..5 scale with string ids (``u000``, ``i000``), seeded."""
    rng = np.random.default_rng(seed)
    P = rng.standard_normal((n_users, 2))
    Q = rng.standard_normal((n_items, 2))
    rows, cols, vals = [], [], []
    for u in range(n_users):
        items = rng.choice(n_items, size=rng.integers(4, n_items // 2), replace=False)
        for i in items:
            r = 3.0 + P[u] @ Q[i] + 0.3 * rng.standard_normal()
            rows.append(f"u{u:03d}")
            cols.append(f"i{i:03d}")
            vals.append(float(np.clip(np.round(r), 1, 5)))
    df = pd.DataFrame({"user": rows, "item": cols, "rating": vals})
    return Interactions.from_pandas(df, rating_bounds=(1, 5), name="contract")


def explain_meaning_data(n_users: int = 200, n_items: int = 20, seed: int = 0) -> Interactions:
    """Ratings where item ``cause`` strongly implies item ``target``, for the meaning check of ``explain``.

    Every user rates both ``cause`` and ``target``, half of them 5 and 5, the other half 1 and 1, plus 4
    filler items at 3 ± 1 (no pattern). The probe user ``probe`` rated ``cause`` 5 and 4 fillers 3, not
    ``target``: in ``explain("probe", "target")`` the rating of ``cause`` must have the largest (positive)
    share. Rating bounds (1, 5) and a public catalog (so DP models release every item).
    """
    rng = np.random.default_rng(seed)
    fillers = [f"f{k:02d}" for k in range(n_items - 2)]
    rows: list[tuple[str, str, float]] = []
    for u in range(n_users):
        r = 5.0 if u % 2 == 0 else 1.0
        rows += [(f"u{u:03d}", "cause", r), (f"u{u:03d}", "target", r)]
        for f in rng.choice(fillers, 4, replace=False):
            rows.append((f"u{u:03d}", str(f), float(rng.integers(2, 5))))
    rows.append(("probe", "cause", 5.0))
    rows += [("probe", str(f), 3.0) for f in rng.choice(fillers, 4, replace=False)]
    df = pd.DataFrame(rows, columns=["user", "item", "rating"])
    d = Interactions.from_pandas(df, rating_bounds=(1, 5), name="explain-meaning")
    return Interactions(d.matrix, d.user_ids, d.item_ids, rating_bounds=(1.0, 5.0), public_items=True, name="m")


class ModelContract:
    supports_fold_in = True
    supports_explain = True
    supports_similar_items = True

    # ------------------------------------------------------------------ hooks
    def make_model(self) -> Recommender:  # pragma: no cover - must be overridden
        raise NotImplementedError

    def make_data(self) -> Interactions:
        return contract_data()

    def make_explain_data(self) -> Interactions:
        return explain_meaning_data()

    def make_explain_model(self) -> Recommender:
        return self.make_model()

    def fit_model(self, model, data):
        return model.fit(data)

    # ------------------------------------------------------------------ fixtures
    @pytest.fixture(scope="class")
    @classmethod
    def data(cls):
        return cls().make_data()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data):
        inst = cls()
        return inst.fit_model(inst.make_model(), data)

    @pytest.fixture
    def fresh(self, data):
        """A fitted model a test may mutate (fold_in)."""
        return self.fit_model(self.make_model(), data)

    # ------------------------------------------------------------------ fit
    def test_unfitted_raises_clearly(self, data):
        m = self.make_model()
        user = data.user_ids[0]
        assert not m.is_fitted
        with pytest.raises(NotFittedError, match="not fitted"):
            m.recommend(user)
        with pytest.raises(NotFittedError, match="not fitted"):
            m.predict([user], [data.item_ids[0]])
        with pytest.raises(NotFittedError, match="not fitted"):
            m.save("never-written")

    def test_registered_with_capabilities(self):
        m = self.make_model()
        cls = type(m)
        assert model_class_by_name(cls.__name__) is cls, "register the class with @register_model(name)"
        assert isinstance(cls.is_private, bool) and cls.feedback in ("explicit", "implicit", "any")
        assert isinstance(m.predicts_ratings, bool)
        assert m.get_params() == cls(**m.get_params()).get_params()

    def test_fit_on_csr_matrix(self, data):
        m = self.fit_model(self.make_model(), data.matrix.copy())
        assert isinstance(m, Recommender) and m.is_fitted
        assert len(m.item_ids) == data.n_items and len(m.user_ids) == data.n_users
        ids, scores = m.recommend(0, n=5)
        assert ids.shape == scores.shape == (5,)
        assert np.issubdtype(np.asarray(ids).dtype, np.integer)

    def test_seeded_fit_is_the_same_on_every_thread_count(self, data):
        """A seeded fit on 1 and on 2 threads gives bit-identical rankings and scores: every chunked reduction
        is split by the data alone (``kernels.als.REDUCTION_PARTS``), never by the thread count."""
        params = self.make_model().get_params()
        if params.get("rng") is None or "num_threads" not in params:
            pytest.skip("needs a seeded model with num_threads")
        users = data.user_ids[: min(20, data.n_users)]
        out = []
        for threads in (1, 2):
            with warnings.catch_warnings():  # a model without threaded kernels says num_threads is ignored
                warnings.simplefilter("ignore", IgnoredParameterWarning)
                m = self.fit_model(type(self.make_model())(**{**params, "num_threads": threads}), data)
            out.append(m.recommend(users, n=min(10, data.n_items)))
        assert np.array_equal(out[0][0], out[1][0]), "rankings differ between 1 and 2 threads"
        assert np.array_equal(out[0][1], out[1][1]), "scores differ between 1 and 2 threads"

    def test_fit_returns_self(self, data):
        m = self.make_model()
        assert self.fit_model(m, data) is m

    # ------------------------------------------------------------------ predict
    def test_predict_shapes_and_scalar(self, fitted, data):
        users = data.user_ids[[0, 1, 2, 0]]
        items = data.item_ids[[0, 3, 5, 7]]
        p = fitted.predict(users, items)
        assert p.shape == (4,) and p.dtype == np.float64 and np.all(np.isfinite(p))
        one = fitted.predict(users[1], items[1])
        assert np.ndim(one) == 0 and np.isclose(one, p[1])
        if data.rating_bounds is not None and fitted.predicts_ratings:
            lo, hi = data.rating_bounds
            assert np.all((p >= lo) & (p <= hi))

    def test_predict_unknown_user_falls_back(self, fitted, data):
        p = fitted.predict(["nobody-here", "nobody-here"], data.item_ids[:2])
        assert p.shape == (2,) and np.all(np.isfinite(p))

    def test_predict_unknown_item_raises(self, fitted, data):
        with pytest.raises(UnknownIdError):
            fitted.predict([data.user_ids[0]], ["no-such-item"])

    def test_predict_length_mismatch_raises(self, fitted, data):
        with pytest.raises(ValueError):
            fitted.predict(data.user_ids[:2], data.item_ids[:3])

    # ------------------------------------------------------------------ recommend
    def test_recommend_single_user_1d_raw_ids(self, fitted, data):
        ids, scores = fitted.recommend(data.user_ids[0], n=5)
        assert ids.ndim == 1 and scores.ndim == 1 and len(ids) == len(scores) == 5
        assert set(ids.tolist()) <= set(data.item_ids.tolist())
        assert all(isinstance(i, str) for i in ids.tolist())
        assert np.all(np.diff(scores) <= 0), "scores must be sorted best first"

    def test_recommend_batch_2d(self, fitted, data):
        users = data.user_ids[:3]
        ids, scores = fitted.recommend(users, n=4)
        assert ids.shape == (3, 4) and scores.shape == (3, 4)
        for k, u in enumerate(users):
            i1, s1 = fitted.recommend(u, n=4)
            assert ids[k].tolist() == i1.tolist()
            np.testing.assert_allclose(scores[k], s1)

    def test_recommend_single_equals_batch_row_including_ties(self, fitted, data):
        """``recommend(u, n)`` is ``recommend([u, v], n)[0]`` (ids and scores), whatever the ties: one rule
        (best first, ties by smaller item index, also at the cut-off) for single rows and batches."""
        users = data.user_ids
        for k in range(min(len(users), 12)):
            u, v = users[k], users[(k + 5) % len(users)]
            for n in (1, 3, 7):
                for filter_seen in (True, False):
                    i1, s1 = fitted.recommend(u, n=n, filter_seen=filter_seen)
                    i2, s2 = fitted.recommend([u, v], n=n, filter_seen=filter_seen)
                    keep = np.isfinite(s2[0])
                    assert i2[0][keep].tolist() == i1.tolist(), (u, n, filter_seen)
                    # the scores themselves may differ in the last bit (a model's one-row and batched score
                    # products can round differently, e.g. BLAS gemv vs gemm); the ids must not
                    np.testing.assert_allclose(s2[0][keep], s1, rtol=1e-12, atol=0)
                    i3, _ = fitted.recommend([v, u], n=n, filter_seen=filter_seen)
                    assert i3[1][np.isfinite(s2[0])].tolist() == i1.tolist()

    def test_filter_seen(self, fitted, data):
        for u in data.user_ids[:5]:
            seen, _ = data.user_ratings(u)
            ids, _ = fitted.recommend(u, n=data.n_items)
            assert not set(ids.tolist()) & set(seen.tolist())
            assert len(ids) == data.n_items - len(seen)
        u = data.user_ids[0]
        ids, _ = fitted.recommend(u, n=data.n_items, filter_seen=False)
        assert len(ids) == data.n_items

    def test_items_restricts_candidates(self, fitted, data):
        cand = data.item_ids[[1, 4, 9, 12, 20]]
        ids, scores = fitted.recommend(data.user_ids[0], n=10, items=cand, filter_seen=False)
        assert set(ids.tolist()) <= set(cand.tolist()) and len(ids) == len(cand)
        ids2, _ = fitted.recommend(data.user_ids[:2], n=10, items=cand, filter_seen=False)
        assert ids2.shape == (2, 10)
        for row in ids2:
            real = [x for x in row.tolist() if x is not None]
            assert set(real) <= set(cand.tolist())
        with pytest.raises(UnknownIdError):
            fitted.recommend(data.user_ids[0], items=["no-such-item"])

    def test_n_larger_than_catalog(self, fitted, data):
        u = data.user_ids[0]
        ids, scores = fitted.recommend(u, n=10 * data.n_items)
        seen, _ = data.user_ratings(u)
        assert len(ids) == data.n_items - len(seen) and np.all(np.isfinite(scores))
        ids2, scores2 = fitted.recommend(data.user_ids[:2], n=data.n_items + 5)
        assert ids2.shape == (2, data.n_items)
        assert np.isneginf(scores2).any(axis=1).all()  # padded with -inf for seen items
        with pytest.raises(ValueError):
            fitted.recommend(u, n=0)

    def test_unknown_user_gets_fallback(self, fitted, data):
        ids, scores = fitted.recommend("someone-new", n=5)
        assert len(ids) == 5 and np.all(np.isfinite(scores))
        ids2, _ = fitted.recommend(["someone-new", data.user_ids[0]], n=5)
        assert ids2.shape == (2, 5)
        assert ids2[0].tolist() == ids.tolist()

    # ------------------------------------------------------------------ similar items / explain
    def test_similar_items_excludes_itself(self, fitted, data):
        item = data.item_ids[3]
        if not self.supports_similar_items:
            with pytest.raises(NotImplementedError):
                fitted.similar_items(item)
            return
        ids, scores = fitted.similar_items(item, n=5)
        assert len(ids) == 5 and item not in ids.tolist()
        assert np.all(np.diff(scores) <= 1e-12)
        with pytest.raises(UnknownIdError):
            fitted.similar_items("no-such-item")

    def test_explain_returns_dataframe(self, fitted, data):
        u, i = data.user_ids[0], data.item_ids[2]
        if not self.supports_explain:
            with pytest.raises(NotImplementedError):
                fitted.explain(u, i)
            return
        df = fitted.explain(u, i)
        assert isinstance(df, pd.DataFrame)
        assert list(df.columns) == ["item", "rating", "contribution", "share"]
        assert {"score", "baseline", "ranking_score", "text", "exact"} <= set(df.attrs)
        seen, _ = data.user_ratings(u)
        assert set(df["item"].tolist()) <= set(seen.tolist())
        with pytest.raises(UnknownIdError):
            fitted.explain("nobody-here", i)

    def test_explain_shares_and_identity(self, fitted, data):
        """``share`` is the signed fraction of Σ|contribution|; ``baseline + Σ contribution`` is the score
        :meth:`recommend` ranks by (exactly, where the model declares ``explain_exact``); the text names the
        user's own rated items (by title when given) and no other user."""
        if not self.supports_explain:
            return
        others = set(map(str, data.user_ids.tolist()))
        for u in data.user_ids[:4]:
            for i in data.item_ids[[2, 7, 11]]:
                df = fitted.explain(u, i)
                assert list(df.columns) == ["item", "rating", "contribution", "share"]
                c, sh = df["contribution"].to_numpy(), df["share"].to_numpy()
                mass = np.abs(c).sum()
                if mass > 0:
                    assert np.isclose(np.abs(sh).sum(), 1.0)
                    np.testing.assert_allclose(sh * mass, c, rtol=1e-12, atol=1e-15)
                else:
                    assert np.all(sh == 0)
                assert np.all(np.diff(np.abs(c)) <= 1e-15), "sorted by |contribution|"
                explained = df.attrs["baseline"] + c.sum()
                assert np.isclose(df.attrs["ranking_score"], explained, rtol=1e-12, atol=1e-12)
                _, sc = fitted.recommend(u, n=1, items=[i], filter_seen=False)
                if df.attrs["exact"]:  # float32 kernels: tolerance relative to the magnitudes that cancel
                    tol = 1e-6 * (1.0 + abs(df.attrs["baseline"]) + mass)
                    assert abs(explained - sc[0]) <= tol, (u, i, explained, sc[0])
                assert 0.0 <= df.attrs["baseline_share"] <= 1.0
                names = {j: f"Title-of-{j}" for j in data.item_ids.tolist()}
                text = fitted.explain(u, i, item_names=names).attrs["text"]
                assert isinstance(text, str) and f"*Title-of-{i}*" in text and "(not about you)" in text
                pos = df[df["share"] >= 0.005]
                if len(pos):
                    assert f"*Title-of-{pos['item'].iloc[0]}*" in text and f"{pos['share'].iloc[0]:+.0%}" in text
                if fitted.is_private:
                    assert "differential privacy" in text or "ε = ∞" in text
                else:
                    assert "differential privacy" not in text
                assert not any(f"*{o}*" in text or f" {o} " in text for o in others)

    def test_explain_meaning(self):
        """On data where one rated item strongly implies the target, that item has the largest share."""
        if not self.supports_explain:
            return
        d = self.make_explain_data()
        m = self.fit_model(self.make_explain_model(), d)
        df = m.explain("probe", "target")
        if not m.explain_uses_ratings:
            assert np.all(df["contribution"].to_numpy() == 0) and "does not depend on your ratings" in df.attrs["text"]
            return
        assert df["item"].iloc[0] == "cause", df
        assert df["share"].iloc[0] > 0 and df["share"].iloc[0] == df["share"].max()
        assert "*cause*" in df.attrs["text"]

    # ------------------------------------------------------------------ fold-in
    def test_fold_in_new_user(self, fresh, data):
        if not self.supports_fold_in:
            with pytest.raises(NotImplementedError):
                fresh.fold_in({data.item_ids[0]: 5.0}, user="newbie")
            return
        rated = {data.item_ids[0]: 5.0, data.item_ids[1]: 4.0, data.item_ids[5]: 1.0}
        uid = fresh.fold_in(rated, user="newbie")
        assert uid == "newbie" and "newbie" in fresh.user_ids.tolist()
        ids, scores = fresh.recommend("newbie", n=data.n_items)
        assert not set(ids.tolist()) & set(rated)
        assert len(ids) == data.n_items - len(rated)
        ids_all, _ = fresh.recommend("newbie", n=data.n_items, filter_seen=False)
        assert set(rated) <= set(ids_all.tolist())
        p = fresh.predict(["newbie"], [data.item_ids[2]])
        assert np.all(np.isfinite(p))
        # updating the same user again replaces the history
        fresh.fold_in(pd.Series({data.item_ids[7]: 3.0}), user="newbie")
        ids2, _ = fresh.recommend("newbie", n=data.n_items)
        assert data.item_ids[7] not in ids2.tolist() and data.item_ids[0] in ids2.tolist()

    def test_fold_in_validates(self, fresh, data):
        if not self.supports_fold_in:
            return
        with pytest.raises(UnknownIdError):
            fresh.fold_in({"no-such-item": 3.0}, user="x")
        if data.rating_bounds is not None:
            with pytest.raises(ValueError):
                fresh.fold_in({data.item_ids[0]: data.rating_bounds[1] + 10}, user="x")

    # ------------------------------------------------------------------ persistence
    def test_save_load_round_trip(self, fitted, data, tmp_path):
        path = fitted.save(tmp_path / "m")
        assert path.endswith(".npz") and os.path.exists(path)
        loaded = type(fitted).load(path)
        assert type(loaded) is type(fitted)
        if fitted.is_private:  # a noise seed is a secret: never written to a file, so it loads as None
            _, manifest = read_npz_with_manifest(path, expected_format="dprec-model")
            assert "rng" not in manifest["params"]
            assert loaded.get_params() == {**fitted.get_params(), "rng": None}
        else:
            assert loaded.get_params() == fitted.get_params()
        users = list(data.user_ids[:4]) + ["someone-new"]
        a_ids, a_sc = fitted.recommend(users, n=7)
        b_ids, b_sc = loaded.recommend(users, n=7)
        assert a_ids.tolist() == b_ids.tolist()
        np.testing.assert_array_equal(a_sc, b_sc)
        items = data.item_ids[:4]
        np.testing.assert_array_equal(fitted.predict(users[:4], items), loaded.predict(users[:4], items))
        assert type(load_model(path)) is type(fitted)

    def test_save_load_after_fold_in(self, fresh, data, tmp_path):
        if not self.supports_fold_in:
            return
        fresh.fold_in({data.item_ids[0]: 5.0, data.item_ids[3]: 2.0}, user="later")
        loaded = type(fresh).load(fresh.save(tmp_path / "f.npz"))
        a = fresh.recommend(["later", data.user_ids[0]], n=5)
        b = loaded.recommend(["later", data.user_ids[0]], n=5)
        assert a[0].tolist() == b[0].tolist()
        np.testing.assert_array_equal(a[1], b[1])

    def test_truncated_file_raises(self, fitted, tmp_path):
        path = fitted.save(tmp_path / "t.npz")
        raw = open(path, "rb").read()
        for cut in (len(raw) // 2, len(raw) - 10, 100):
            with open(path, "wb") as fh:
                fh.write(raw[:cut])
            with pytest.raises(CorruptFileError):
                type(fitted).load(path)

    def test_flipped_bytes_raise(self, fitted, tmp_path):
        path = fitted.save(tmp_path / "b.npz")
        with zipfile.ZipFile(path) as z:
            infos = [i for i in z.infolist() if not i.filename.startswith("__manifest__") and i.file_size > 200]
            info = infos[0]
            with z.open(info) as fh:
                fh.read()
        raw = bytearray(open(path, "rb").read())
        # raw data of the member: local header (30 bytes + name + extra) then the stored bytes
        name_len = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
        extra_len = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
        start = info.header_offset + 30 + name_len + extra_len
        pos = start + info.compress_size - 3  # inside the array payload, past the .npy header
        raw[pos] ^= 0xFF
        with open(path, "wb") as fh:
            fh.write(bytes(raw))
        with pytest.raises(CorruptFileError):
            type(fitted).load(path)

    def test_tampered_array_with_valid_zip_raises(self, fitted, tmp_path):
        """An array edited and re-zipped consistently (valid CRC) must fail the manifest checksum."""
        path = fitted.save(tmp_path / "e.npz")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        name = next(k for k, v in arrays.items() if k != "__manifest__" and v.dtype.kind == "f" and v.size > 0)
        arrays[name] = arrays[name].copy()
        arrays[name].flat[0] += 1.0
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
        with pytest.raises(CorruptFileError):
            type(fitted).load(path)

    def test_wrong_class_load_raises(self, fitted, data, tmp_path):
        from dprec.models import ALS, Popularity

        other = Popularity() if not isinstance(fitted, Popularity) else ALS(factors=2, iterations=1, rng=0)
        path = other.fit(data).save(tmp_path / "other.npz")
        with pytest.raises(CorruptFileError):
            type(fitted).load(path)

    def test_not_a_model_file_raises(self, fitted, tmp_path):
        p = tmp_path / "junk.npz"
        p.write_bytes(b"this is not a zip file at all")
        with pytest.raises(CorruptFileError):
            type(fitted).load(p)
        with pytest.raises(FileNotFoundError):
            type(fitted).load(tmp_path / "missing.npz")
