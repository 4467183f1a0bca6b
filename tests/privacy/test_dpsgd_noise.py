"""Opacus-style noise-level test: with zero gradients, DP-SGD moves the item parameters by the calibrated noise.

With the clipped gradient forced to 0 and no weight decay, ``θ_T − θ_0 = −η Σ_t N_t / (q ñ)`` with
``N_t ~ N(0, σ² I)`` on ``m (d+1)`` coordinates and ``σ = z · Δ``: its norm concentrates at
``η σ √(T m (d+1)) / (q ñ)`` (a χ variable with ``T·m·(d+1)`` degrees of freedom, relative std
``≈ 1/√(2 T m (d+1))``, here ≈ 0.5%; a 4% error is 8 std). Tolerance: 3% relative (the two units draw the same standard normals).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dprec import Interactions
from dprec.models import releases as R
from dprec.models.dpsgd import DPSGD
from dprec.testing import contract_data


@pytest.mark.parametrize("unit", ["user", "rating"])
def test_zero_gradient_moves_parameters_by_the_noise(monkeypatch, unit):
    d0 = contract_data(n_users=60, n_items=300)
    data = Interactions(d0.matrix, d0.user_ids, d0.item_ids, rating_bounds=(1.0, 5.0), public_items=True)
    monkeypatch.setattr(
        R.ClippedItemGradient, "statistic", lambda self, Xb, **kw: np.zeros(Xb.shape[1] * (self.factors + 1))
    )
    starts = {}
    orig = DPSGD._sgd

    def spy(self, X, V, c, T, z, n_units):
        starts["theta0"] = np.hstack([V, c[:, None]]).copy()
        return orig(self, X, V, c, T, z, n_units)

    monkeypatch.setattr(DPSGD, "_sgd", spy)
    eta, q, epochs, d = 0.5, 0.25, 4, 3
    m = DPSGD(
        epsilon=2.0,
        delta=1e-5,
        privacy_unit=unit,
        factors=d,
        epochs=epochs,
        sampling_rate=q,
        learning_rate=eta,
        regularization=0.0,
        clip_norm=0.7,
        bias_share=0.5,
        rng=0,
    ).fit(data)
    hp = m.resolved_
    T = math.ceil(epochs / q)
    assert hp.steps == T and hp.noise_multiplier > 0
    sigma = hp.noise_multiplier * hp.clip_norm * (1.0 if unit == "user" else 2.0)
    moved = np.hstack([m.item_factors_, m.item_bias_[:, None]]) - starts["theta0"]
    expected = eta * sigma * math.sqrt(T * data.n_items * (d + 1)) / (q * m.n_units_dp_)
    assert np.linalg.norm(moved) == pytest.approx(expected, rel=0.03)
    # the report's σ is the one the noise was drawn with
    rep = m.privacy_report()
    step = next(s for s in rep["steps"] if s["name"] == R.ClippedItemGradient.name)
    assert step["sigma"] == pytest.approx(sigma)
