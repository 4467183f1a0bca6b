"""The full model protocol (dprec.testing.ModelContract) for every non-private model."""

from __future__ import annotations

import numpy as np

from dprec.models import ALS, Popularity
from dprec.testing import ModelContract


class TestALSExplicitContract(ModelContract):
    def make_model(self):
        return ALS(factors=4, iterations=4, feedback="explicit", rng=0)


class TestALSImplicitContract(ModelContract):
    def make_model(self):
        return ALS(factors=4, iterations=4, feedback="implicit", alpha=2.0, rng=0)


class TestALSImplicitCholeskyContract(ModelContract):
    def make_model(self):
        return ALS(factors=4, iterations=3, feedback="implicit", solver="cholesky", rng=0)


class TestPopularityContract(ModelContract):
    supports_similar_items = False

    def make_model(self):
        return Popularity()


# --------------------------------------------------------------------------- DP models (appended)

from dprec import Interactions  # noqa: E402
from dprec.models import DPALS, DPGlobalEffects, DPItemItem, DPPopularity, DPRanker  # noqa: E402
from dprec.testing import contract_data  # noqa: E402


class _DPContract(ModelContract):
    """DP models at a finite ε on the contract data declared with a public catalog (so every item is
    released) and public rating bounds (1, 5); a bare CSR matrix is wrapped with the same public facts."""

    def make_data(self):
        d = contract_data()
        return Interactions(
            d.matrix, d.user_ids, d.item_ids, rating_bounds=(1.0, 5.0), public_items=True, name="contract"
        )

    def fit_model(self, model, data):
        if not isinstance(data, Interactions):
            data = Interactions.from_csr(data, rating_bounds=(1.0, 5.0), public_items=True)
        return model.fit(data)


class TestDPGlobalEffectsContract(_DPContract):
    supports_similar_items = False

    def make_model(self):
        return DPGlobalEffects(epsilon=4.0, delta=1e-5, rng=0)


class TestDPPopularityContract(_DPContract):
    supports_similar_items = False

    def make_model(self):
        return DPPopularity(epsilon=4.0, delta=1e-5, rng=0)

    def test_predict_shapes_and_scalar(self, fitted, data):
        """DPPopularity ranks and does not predict ratings (predicts_ratings = False): its predict returns the
        released noisy counts, one finite score per pair."""
        assert fitted.predicts_ratings is False
        users, items = data.user_ids[:3], data.item_ids[:3]
        out = fitted.predict(users, items)
        assert out.shape == (3,) and np.all(np.isfinite(out))
        pos = [fitted.item_ids.tolist().index(i) for i in items]
        np.testing.assert_allclose(out, fitted.item_counts_[pos])


class TestDPALSContract(_DPContract):
    def make_model(self):
        return DPALS(epsilon=4.0, delta=1e-5, factors=3, iterations=2, rng=0)


class TestDPItemItemContract(_DPContract):
    supports_similar_items = False

    def make_model(self):
        return DPItemItem(epsilon=4.0, delta=1e-5, rng=0)

    def test_predict_shapes_and_scalar(self, fitted, data):
        """DPItemItem ranks and does not predict ratings: predict returns its ranking score, finite per pair."""
        assert fitted.predicts_ratings is False
        out = fitted.predict(data.user_ids[:3], data.item_ids[:3])
        assert out.shape == (3,) and np.all(np.isfinite(out))


class TestDPRankerContract(_DPContract):
    supports_similar_items = False

    def make_model(self):
        return DPRanker(epsilon=4.0, delta=1e-5, rng=0)

    def test_predict_shapes_and_scalar(self, fitted, data):
        """DPRanker ranks and does not predict ratings: predict returns its delegate's score, finite per pair."""
        assert fitted.predicts_ratings is False
        out = fitted.predict(data.user_ids[:3], data.item_ids[:3])
        assert out.shape == (3,) and np.all(np.isfinite(out))


# --------------------------------------------------------------------------- registry, configs, deprecations
import math  # noqa: E402
import warnings  # noqa: E402

import pytest  # noqa: E402

from dprec.errors import ConfigError, CorruptFileError, NotFittedError  # noqa: E402
from dprec.models import get_model, model_names  # noqa: E402
from dprec.models.io import read_npz_with_manifest, write_npz_with_manifest  # noqa: E402


def test_registry_names_and_capabilities():
    assert {"als", "popularity", "dp-baseline", "dp-popularity", "dpals"} <= set(model_names())
    caps = {n: (get_model(n).is_private, get_model(n).feedback) for n in model_names()}
    assert caps["als"] == (False, "any") and caps["dpals"] == (True, "explicit")
    assert get_model("dp-popularity").predicts_ratings is False
    assert ALS(feedback="implicit").predicts_ratings is False and ALS().predicts_ratings is True
    with pytest.raises(ConfigError, match="did you mean 'dpals'"):
        get_model("dpal")


@pytest.mark.parametrize(
    "cls,kw",
    [
        (ALS, {}),
        (Popularity, {}),
        (DPGlobalEffects, {"epsilon": 1.0, "delta": 1e-5}),
        (DPPopularity, {"epsilon": 1.0, "delta": 1e-5}),
        (DPALS, {"epsilon": 1.0, "delta": 1e-5}),
    ],
)
def test_params_are_the_config(cls, kw):
    m = cls(**kw)
    assert m.get_params() == m.config.model_dump() and type(m.config) is cls.Config
    assert all(getattr(m, k) == v for k, v in m.get_params().items())
    assert all(f.description for f in cls.Config.model_fields.values())
    with pytest.raises(ConfigError, match="unknown parameter"):
        cls(**kw, no_such_parameter=1)
    with pytest.raises(TypeError):
        cls(1)  # keyword-only


def test_setting_a_parameter_revalidates():
    m = ALS()
    m.factors = 3
    assert m.get_params()["factors"] == 3 and m.config.factors == 3
    with pytest.raises(ValueError, match="factors"):
        m.factors = 0


@pytest.mark.parametrize(
    "cls,old,new,kw",
    [
        (DPALS, "bias_reg", "bias_regularization", {"epsilon": 1.0, "delta": 1e-5}),
        (DPALS, "item_bias_reg", "item_bias_regularization", {"epsilon": 1.0, "delta": 1e-5}),
        (DPGlobalEffects, "user_reg", "bias_regularization", {"epsilon": 1.0, "delta": 1e-5}),
    ],
)
def test_deprecated_parameter_names(cls, old, new, kw):
    with pytest.warns(DeprecationWarning, match=old):
        m = cls(**kw, **{old: 7.0})
    assert getattr(m, new) == 7.0 and old not in m.get_params() and m.get_params()[new] == 7.0
    with pytest.warns(DeprecationWarning):
        assert getattr(m, old) == 7.0
    with pytest.raises(ConfigError, match="deprecated name"):
        cls(**kw, **{old: 7.0, new: 7.0})


def test_deprecated_fitted_attribute_aliases():
    data = contract_data()
    a = ALS(factors=2, iterations=1, rng=0).fit(data)
    p = Popularity().fit(data)
    for m, old, new in [
        (a, "global_mean", "global_mean_"),
        (a, "item_factors", "item_factors_"),
        (a, "user_bias", "user_bias_"),
        (a, "reg_", "regularization_"),
        (p, "item_counts", "item_counts_"),
        (p, "item_offset", "item_bias_"),
        (a, "rating_bounds", "rating_bounds_"),
    ]:
        with pytest.warns(DeprecationWarning, match=old):
            assert np.array_equal(getattr(m, old), getattr(m, new))


def test_unfitted_is_not_fitted_error():
    with pytest.raises(NotFittedError):
        DPALS(epsilon=1.0, delta=1e-5).privacy_report()


def _rewrite(path, tmp_path, edit):
    arrays, manifest = read_npz_with_manifest(path, expected_format="dprec-model")
    manifest.pop("arrays")
    edit(manifest)
    return write_npz_with_manifest(tmp_path / "edited", arrays, manifest)


def test_old_model_files_with_old_names_still_load(tmp_path):
    data = _DPContract().make_data()
    m = DPALS(epsilon=4.0, delta=1e-5, factors=2, iterations=1, rng=0).fit(data)
    path = m.save(tmp_path / "m")

    def old_names(man):
        p = man["params"]
        p["bias_reg"], p["item_bias_reg"] = p.pop("bias_regularization"), p.pop("item_bias_regularization")
        hp = man["hyperparameters"]
        hp["bias_reg"] = hp.pop("bias_regularization")

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # loading an old file is not the caller's fault
        loaded = DPALS.load(_rewrite(path, tmp_path, old_names))
    assert loaded.get_params() == {**m.get_params(), "rng": None} and loaded.resolved_ == m.resolved_
    np.testing.assert_array_equal(
        loaded.predict(data.user_ids[:5], data.item_ids[:5]), m.predict(data.user_ids[:5], data.item_ids[:5])
    )


def test_bad_params_in_a_file_are_corrupt(tmp_path):
    path = ALS(factors=2, iterations=1, rng=0).fit(contract_data()).save(tmp_path / "a")
    bad = _rewrite(path, tmp_path, lambda man: man["params"].update(factors=-1))
    with pytest.raises(CorruptFileError, match="factors"):
        ALS.load(bad)


def test_dpals_at_infinity_params_round_trip():
    m = DPALS(epsilon=math.inf)
    assert m.delta == 0.0 and DPALS(**m.get_params()).get_params() == m.get_params()
