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
from dprec.models import DPALS, DPGlobalEffects, DPPopularity  # noqa: E402

from dprec.testing import contract_data  # noqa: E402


class _DPContract(ModelContract):
    """DP models at a finite ε on the contract data declared with a public catalog (so every item is
    released) and public rating bounds (1, 5); a bare CSR matrix is wrapped with the same public facts."""

    def make_data(self):
        d = contract_data()
        return Interactions(d.matrix, d.user_ids, d.item_ids, rating_bounds=(1.0, 5.0), public_items=True,
                            name="contract")

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
