"""The full model protocol (tests/model_mixin.py) for every non-private model."""

from __future__ import annotations

from dprec.models import ALS, Popularity

from model_mixin import ModelContract


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
