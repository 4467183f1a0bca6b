"""DP-ALS at ε = ∞ is plain (non-private) biased ALS: checked exactly against a dense numpy reference.

With ``epsilon=math.inf`` DP-ALS runs the same code path as under DP with σ = 0 and no clipping or contribution
weighting. :mod:`dprec.testing.reference_als` re-implements that algorithm from the documented formulas, per user and
per item with ``numpy.linalg.solve`` (the same reference checks ``ALS(feedback="explicit")`` in test_als.py),
and the fitted model must agree.
"""

import math

import numpy as np
import pytest

from dprec.datasets import synthetic
from dprec.models import DPALS
from dprec.testing import numpy_biased_als

D, T, LAM, UREG, BREG, TAU2, CREG, INIT, SEED = 3, 2, 0.2, 0.15, 4.0, 0.3, 7.0, 0.5, 11


@pytest.fixture(scope="module")
def data():
    return synthetic(120, 60, 3, mean_ratings_per_user=15, rng=3)


def test_dpals_at_infinity_is_exact_biased_als(data):
    model = DPALS(
        epsilon=math.inf,
        factors=D,
        iterations=T,
        regularization=LAM,
        user_regularization=UREG,
        bias_regularization=BREG,
        prior_var=TAU2,
        item_bias_regularization=CREG,
        init_scale=INIT,
        rng=SEED,
    ).fit(data)
    mu, V, c, U, b = numpy_biased_als(data.matrix, D, T, LAM, UREG, BREG, CREG, TAU2, INIT, SEED)
    assert model.global_mean_ == pytest.approx(mu, rel=1e-12)
    # the user step runs in float32 kernels (float64 accumulation): agreement to ~1e-5 relative
    np.testing.assert_allclose(model.item_factors_, V, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.item_bias_, c, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.user_factors_, U, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(model.user_bias_, b, rtol=1e-3, atol=1e-4)
    # and nothing was released with noise: the report says so
    rep = model.privacy_report()
    assert rep["is_private"] is False and all(s["sigma"] == 0 for s in rep["steps"])
