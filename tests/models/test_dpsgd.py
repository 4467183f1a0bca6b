"""DPSGD: the model contract, its rules, accounting in the report and the ledger, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dprec
from dprec import Interactions
from dprec.errors import ConfigError
from dprec.models.baselines import DPGlobalEffects
from dprec.models.dpsgd import DPSGD, default_hyperparameters
from dprec.privacy import Ledger
from dprec.privacy import accounting as acc
from dprec.testing import ModelContract, contract_data


def _data(**kw):
    d = contract_data(**kw)
    return Interactions(d.matrix, d.user_ids, d.item_ids, rating_bounds=(1.0, 5.0), public_items=True, name="c")


class TestDPSGDContract(ModelContract):
    def make_model(self):
        return DPSGD(epsilon=4.0, delta=1e-5, factors=3, epochs=2, sampling_rate=0.5, bias_share=0.5, rng=0)

    def make_data(self):
        return _data()

    def make_explain_model(self):
        # the meaning check needs factors that learnt the pattern: enough epochs, no noise (the explanation
        # itself is exact at any ε; the shared identity check runs on make_model())
        return DPSGD(epsilon=math.inf, factors=3, epochs=20, learning_rate=0.05, sampling_rate=0.5, rng=0)

    def fit_model(self, model, data):
        if not isinstance(data, Interactions):
            data = Interactions.from_csr(data, rating_bounds=(1.0, 5.0), public_items=True)
        return model.fit(data)


def test_exported_and_registered():
    assert dprec.DPSGD is DPSGD
    assert dprec.models.get_model("dp-sgd") is DPSGD


def test_rules_switch_on_protected_units():
    assert default_hyperparameters(1.0, 943, "user")["epochs"] == 0
    assert default_hyperparameters(1.0, 80_000, "rating")["epochs"] == 0
    assert default_hyperparameters(20.0, 80_000, "rating")["epochs"] > 0
    assert default_hyperparameters(20.0, 943, "user")["epochs"] == 0
    assert default_hyperparameters(math.inf, 10, "user")["epochs"] > 0


@pytest.mark.parametrize("accountant", ["pld", "rdp"])
def test_report_recomputes_epsilon_within_target(accountant):
    m = DPSGD(
        epsilon=3.0, delta=1e-5, factors=2, epochs=2, sampling_rate=0.5, bias_share=0.4, accountant=accountant, rng=1
    ).fit(_data())
    rep = m.privacy_report()
    assert rep["dpsgd"]["accountant"] == accountant
    assert rep["verified_epsilon"] <= 3.0 * (1 + 1e-9)
    assert rep["verified_epsilon"] > 2.9  # the budget is actually used
    ev = rep["dpsgd"]
    assert acc.dpsgd_epsilon(ev["z"], ev["q"], ev["T"], ev["delta"], accountant=accountant) <= ev["epsilon"]


@pytest.mark.parametrize("unit", ["user", "rating"])
def test_no_epoch_is_the_dp_baseline_exactly(unit):
    """Reference implementation: DPGlobalEffects with its defaults and the same seed. Without epochs DPSGD makes
    the same releases with the same σ's from the same streams, so every released number and every prediction is
    identical (predictions to the last ulp): DP-SGD's rule can never make it worse than the DP baseline."""
    data = _data()
    m = DPSGD(epsilon=1.0, delta=1e-5, privacy_unit=unit, rng=3).fit(data)  # ε·ñ ≪ 1,000,000: biases only
    b = DPGlobalEffects(epsilon=1.0, delta=1e-5, privacy_unit=unit, rng=3).fit(data)
    assert m.resolved_.steps == 0 and m.resolved_.bias_share == 1.0
    assert m.privacy_report()["dpsgd"] is None
    assert not m.item_factors_.any() and not m.user_factors_.any()
    assert m.global_mean_ == b.global_mean_ and m.n_users_dp_ == b.n_users_dp_
    np.testing.assert_array_equal(m.item_bias_, b.item_bias_)
    np.testing.assert_array_equal(m.item_counts_, b.item_counts_)
    users, items = np.repeat(data.user_ids[:10], 8), np.tile(data.item_ids[:8], 10)
    # predictions: the same numbers summed in another order (μ + c + b against μ + b + c), ≤ 1 ulp apart
    np.testing.assert_allclose(m.predict(users, items), b.predict(users, items), rtol=0, atol=1e-12)
    rm, rb = m.privacy_report(), b.privacy_report()
    key = ("name", "sigma", "sensitivity_l2", "rho")
    assert [tuple(s[k] for k in key) for s in rm["steps"]] == [tuple(s[k] for k in key) for s in rb["steps"]]
    assert rm["verified_epsilon"] == pytest.approx(rb["verified_epsilon"], rel=1e-12)


def test_with_epochs_only_the_shared_releases_equal_the_baseline():
    """With epochs, the count and the mean are the baseline's releases (same σ, same value); the item biases have
    another σ and must come from DPSGD's own stream (a shared stream would let the two fits' difference cancel
    the noise)."""
    data = _data()
    m = DPSGD(epsilon=4.0, delta=1e-5, factors=2, epochs=1, sampling_rate=0.5, rng=3).fit(data)
    b = DPGlobalEffects(epsilon=4.0, delta=1e-5, rng=3).fit(data)
    assert m.resolved_.steps > 0
    assert m.global_mean_ == b.global_mean_ and m.n_users_dp_ == b.n_users_dp_
    sm = {s["name"]: s for s in m.privacy_report()["steps"]}
    sb = {s["name"]: s for s in b.privacy_report()["steps"]}
    assert sm["item_biases"]["sigma"] > sb["item_biases"]["sigma"]
    # same statistic, other σ, independent stream: the noisy counts differ and are not a rescaling of the baseline's
    dm, db = m.item_counts_ - data.matrix.getnnz(axis=0), b.item_counts_ - data.matrix.getnnz(axis=0)
    assert abs(np.corrcoef(dm, db)[0, 1]) < 0.9


def test_bias_share_below_the_fixed_releases_is_refused_before_charging(tmp_path):
    data = _data()
    led = Ledger.create(tmp_path / "l.db", dataset=data.dataset_id, epsilon=10.0, delta=1e-4)
    with pytest.raises(ConfigError, match="bias_share"):
        DPSGD(epsilon=1.0, delta=1e-5, epochs=1, bias_share=0.01, rng=0).fit(data, ledger=led)
    assert len(led.charges()) == 0


def test_ledger_charged_once_as_epsilon_delta(tmp_path):
    data = _data()
    led = Ledger.create(tmp_path / "l.db", dataset=data.dataset_id, epsilon=10.0, delta=1e-4)
    DPSGD(epsilon=2.0, delta=1e-5, factors=2, epochs=1, sampling_rate=0.5, bias_share=0.5, rng=5).fit(data, ledger=led)
    charges = led.charges()
    assert len(charges) == 1
    assert charges[0]["kind"] == "approx" and charges[0]["epsilon"] == 2.0 and charges[0]["delta"] == 1e-5


def test_too_small_noise_multiplier_is_refused_before_charging(tmp_path):
    # the RDP accountant: the same refusal path as PLD's, at a fraction of its cost in the default run
    data = _data()
    led = Ledger.create(tmp_path / "l.db", dataset=data.dataset_id, epsilon=10.0, delta=1e-4)
    with pytest.raises(ConfigError, match="noise_multiplier"):
        DPSGD(
            epsilon=1.0,
            delta=1e-5,
            factors=2,
            epochs=2,
            sampling_rate=0.5,
            bias_share=0.5,
            noise_multiplier=0.1,
            accountant="rdp",
            rng=0,
        ).fit(data, ledger=led)
    assert led.charges() == [] or len(led.charges()) == 0


def test_needs_public_catalog():
    d = contract_data()
    data = Interactions(d.matrix, d.user_ids, d.item_ids, rating_bounds=(1.0, 5.0))
    with pytest.raises(ConfigError, match="public item catalog"):
        DPSGD(epsilon=1.0, delta=1e-5, rng=0).fit(data)


def test_nonprivate_fits_better_than_biases():
    data = _data(n_users=80, n_items=30)
    m = DPSGD(epsilon=math.inf, rng=0).fit(data)
    assert m.resolved_.noise_multiplier == 0.0
    assert np.isfinite(m.item_factors_).all()


@pytest.mark.parametrize("epsilon", [3.0, math.inf])
def test_public_export_and_file_keep_the_report(tmp_path, epsilon):
    import scipy.sparse as sp

    data = Interactions.from_csr(sp.csr_matrix(contract_data().matrix), rating_bounds=(1.0, 5.0), public_items=True)
    m = DPSGD(epsilon=epsilon, delta=1e-5, factors=2, epochs=2, sampling_rate=0.5, bias_share=0.5, rng=0).fit(data)
    m.save(tmp_path / "m.npz")
    q = dprec.load_model(tmp_path / "m.npz")
    np.testing.assert_allclose(q.predict(np.arange(5), np.arange(5)), m.predict(np.arange(5), np.arange(5)))
    if math.isfinite(epsilon):
        m.export_public(tmp_path / "p.npz")
        p = DPSGD.load_public(tmp_path / "p.npz")
        assert p.privacy_report()["verified_epsilon"] == pytest.approx(m.privacy_report()["verified_epsilon"])
        assert p.privacy_report()["dpsgd"] == m.privacy_report()["dpsgd"]
