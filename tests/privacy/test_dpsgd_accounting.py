"""DP-SGD accounting with dp-accounting: the calibrated noise multiplier never overshoots the target."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dprec.privacy import accounting as acc


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(
    eps=st.floats(0.3, 20.0),
    q=st.floats(0.01, 0.5),
    steps=st.integers(1, 60),
    accountant=st.sampled_from(["pld", "rdp"]),
)
def test_noise_multiplier_never_overshoots(eps, q, steps, accountant):
    z = acc.dpsgd_noise_multiplier(eps, 1e-5, q, steps, accountant=accountant)
    got = acc.dpsgd_epsilon(z, q, steps, 1e-5, accountant=accountant)
    assert got <= eps
    # and is not wastefully large: 1% less noise would overshoot (or z sits at the bisection's lower floor)
    assert z < 1e-5 or acc.dpsgd_epsilon(z * 0.99, q, steps, 1e-5, accountant=accountant) > eps * 0.999


@pytest.mark.parametrize("accountant", ["pld", "rdp"])
@pytest.mark.parametrize(("eps", "q", "steps"), [(1.0, 0.2, 50), (10.0, 0.2, 50)])
def test_noise_multiplier_never_overshoots_fixed(eps, q, steps, accountant):
    z = acc.dpsgd_noise_multiplier(eps, 1e-5, q, steps, accountant=accountant)
    assert acc.dpsgd_epsilon(z, q, steps, 1e-5, accountant=accountant) <= eps


def test_pld_is_tighter_than_rdp():
    z_pld = acc.dpsgd_noise_multiplier(1.0, 1e-5, 0.2, 50, accountant="pld")
    z_rdp = acc.dpsgd_noise_multiplier(1.0, 1e-5, 0.2, 50, accountant="rdp")
    assert z_pld < z_rdp


def test_infinite_epsilon_means_no_noise():
    assert acc.dpsgd_noise_multiplier(math.inf, 1e-5, 0.1, 10) == 0.0


def test_unknown_accountant_is_refused():
    with pytest.raises(ValueError, match="accountant"):
        acc.dpsgd_epsilon(1.0, 0.1, 10, 1e-5, accountant="moments")
