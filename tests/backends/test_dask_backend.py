"""The Dask backend (dprec.distributed) on a 2-worker LocalCluster: equality with the local engine, one user per
block, workers that never see noise, seeds, the budget or the ledger, and errors in the caller's terms.

Equality is against the local engine itself (the reference implementation): same data, hyperparameters and
seed → the same pre-noise statistics up to float64 summation order, and the same released item side.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from dprec.data import Interactions  # noqa: E402
from dprec.distributed import DaskBackend, check_public  # noqa: E402
from dprec.errors import BudgetExceededError, ConfigError, DataError  # noqa: E402
from dprec.models import ALS, DPALS, DPImplicitALS  # noqa: E402
from dprec.models import dpals as dpals_module  # noqa: E402
from dprec.models import dpimplicit as dpimplicit_module  # noqa: E402
from dprec.privacy.ledger import Ledger  # noqa: E402

N_USERS, N_ITEMS = 240, 30
CATALOG = [f"i{j}" for j in range(N_ITEMS)]
# the float64 summation order differs between one CSR and a tree of blocks: relative 1e-9 is ~10⁶ ulps
RTOL, ATOL = 1e-9, 1e-9


def _table(seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS):
        n = int(rng.integers(2, 28))  # some users above k = 20: their weights are < 1
        for j in rng.choice(N_ITEMS, size=n, replace=False):
            rows.append((f"u{u:03d}", CATALOG[j], float(rng.integers(1, 6))))
    return pd.DataFrame(rows, columns=["user", "item", "rating"]).sample(frac=1.0, random_state=seed)


@pytest.fixture(scope="session")
def client(local):
    # compile (and write numba's on-disk cache of) the kernels in this process first: the worker processes then
    # load them instead of each compiling them again (minutes on a fresh 2-core machine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reproducibility-mode warnings of the seeded fits
        DPALS(**DP).fit(local)
        DPImplicitALS(**IMPLICIT).fit(local)
        ALS(feedback="explicit", factors=4, iterations=3, rng=1).fit(local)
        DPImplicitALS(epsilon=math.inf, factors=4, iterations=2, confidence="value", rng=3).fit(local)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="session")
def table():
    return _table()


@pytest.fixture(scope="session")
def parquet(table, tmp_path_factory):
    path = tmp_path_factory.mktemp("ratings") / "pq"
    dd.from_pandas(table, npartitions=5).to_parquet(str(path), write_index=False)
    return path


@pytest.fixture(scope="session")
def local(table):
    return Interactions.from_pandas(table, rating_bounds=(1, 5), item_catalog=CATALOG).with_dataset_id("toy")


@pytest.fixture(scope="session")
def backend(client):
    return DaskBackend(client, npartitions=4, fan_in=2)


@pytest.fixture(scope="session")
def ratings(backend, parquet):
    return backend.ratings(parquet, items=CATALOG, rating_bounds=(1, 5), dataset_id="toy")


#: a private configuration that runs every DP-ALS release: count, mean, item biases, spectral start, 2 iterations
DP = dict(epsilon=50.0, delta=1e-5, factors=4, iterations=2, spectral_items=12, rng=7)


class _Recorder:
    """Records every exact statistic a DP fit releases (before noise) and the per-item statistics (A, β) that
    enter the noisy PSD solve (DP-ALS and DP implicit ALS: the exact statistics; DP implicit ALS passes the released
    Gramian separately, as ``base=``)."""

    def __init__(self, monkeypatch, cls=DPALS, module=dpals_module):
        self.stats, self.factor = {}, []
        orig_release, orig_solve = cls._release, module.noisy_psd_solve
        rec = self

        def release(self, rel, statistic, step, **kw):
            rec.stats.setdefault(rel.name, []).append(np.array(statistic, dtype=np.float64, copy=True))
            return orig_release(self, rel, statistic, step, **kw)

        def solve(A, b, *args, **kw):  # kw: DP implicit ALS's base=G̃ and shift=ridge (compared as given)
            rec.factor.append((A.copy(), b.copy()))
            return orig_solve(A, b, *args, **kw)

        monkeypatch.setattr(cls, "_release", release)
        monkeypatch.setattr(module, "noisy_psd_solve", solve)


def _fit_both(monkeypatch, backend, ratings, local, cls=DPALS, module=dpals_module, **kw):
    loc_rec = _Recorder(monkeypatch, cls, module)
    loc = cls(**kw).fit(local)
    monkeypatch.undo()
    dist_rec = _Recorder(monkeypatch, cls, module)
    res = backend.fit(cls(**kw), ratings)
    monkeypatch.undo()
    return loc, loc_rec, res, dist_rec


def test_each_user_is_in_exactly_one_block(client, ratings, table):
    # an auditor's view (the backend never gathers user ids): the blocks' user sets partition the users
    users = client.gather([client.submit(lambda b: list(b.users), blk) for blk in ratings.matrix.blocks])
    flat = [u for us in users for u in us]
    assert len(users) == 4 and sum(len(u) > 0 for u in users) >= 2
    assert len(flat) == len(set(flat)) == table.user.nunique()
    nnz = client.gather([client.submit(lambda b: b.X.nnz, blk) for blk in ratings.matrix.blocks])
    assert sum(nnz) == len(table)
    assert ratings.n_users == N_USERS


def test_dpals_pre_noise_statistics_and_release_equal_the_local_engine(monkeypatch, backend, ratings, local):
    loc, lr, res, dr = _fit_both(monkeypatch, backend, ratings, local, **DP)
    assert set(lr.stats) == set(dr.stats) == {"n_users", "global_mean", "item_biases", "spectral_moment"}
    for name in lr.stats:
        np.testing.assert_allclose(dr.stats[name][0], lr.stats[name][0], rtol=RTOL, atol=ATOL, err_msg=name)
    assert len(lr.factor) == len(dr.factor) == 2
    for (A0, b0), (A1, b1) in zip(lr.factor, dr.factor):
        np.testing.assert_allclose(A1, A0, rtol=1e-6, atol=1e-6)  # float32 user factors: see below
        np.testing.assert_allclose(b1, b0, rtol=1e-6, atol=1e-6)
    m = res.model
    assert m.global_mean_ == pytest.approx(loc.global_mean_, rel=1e-12)
    for a in ("item_bias_", "item_counts_", "item_factors_"):
        np.testing.assert_allclose(getattr(m, a), getattr(loc, a), rtol=1e-6, atol=1e-6, err_msg=a)
    assert m.resolved_ == loc.resolved_
    assert m.privacy_report()["steps"] == loc.privacy_report()["steps"]
    # the first iteration's statistics depend only on released values and the data: float64 tolerance
    np.testing.assert_allclose(dr.factor[0][0], lr.factor[0][0], rtol=RTOL, atol=ATOL)


def test_dpals_user_factors_stay_on_the_cluster_and_equal_the_local_ones(
    monkeypatch, backend, ratings, local, tmp_path
):
    loc, _, res, _ = _fit_both(monkeypatch, backend, ratings, local, **DP)
    assert len(res.model.user_bias_) == 0 and len(res.model._user_ids) == 0  # the client knows no user
    uf = res.user_factors().compute().set_index("user").loc[local.user_ids]
    np.testing.assert_allclose(uf["bias"], loc.user_bias_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(uf[[f"f{j}" for j in range(4)]], loc.user_factors_, rtol=1e-5, atol=1e-5)
    # serving a user by fold-in on the client model gives that user's factors (joint DP: own ratings only)
    u = local.user_ids[5]
    row = local.matrix[5]
    items = [CATALOG[j] for j in row.indices]
    res.model.fold_in((items, row.data), user=u)
    np.testing.assert_allclose(res.model.user_factors_[-1], loc.user_factors_[5], rtol=1e-5, atol=1e-6)
    # the client model exports its released item side like a local fit
    pub = DPALS.load_public(res.model.export_public(tmp_path / "public"))
    np.testing.assert_array_equal(pub.item_factors_, res.model.item_factors_)


def test_dpals_bias_only_band_equals_local(monkeypatch, backend, ratings, local):
    # ε·ñ below the first threshold: biases only, no iteration; the users' solve runs on the blocks
    kw = dict(epsilon=2.0, delta=1e-5, rng=11)
    loc, lr, res, dr = _fit_both(monkeypatch, backend, ratings, local, **kw)
    assert res.model.resolved_.iterations == 0 and res.model.resolved_.factors == 0
    np.testing.assert_allclose(dr.stats["item_biases"][0], lr.stats["item_biases"][0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(res.model.item_bias_, loc.item_bias_, rtol=1e-12, atol=1e-12)
    uf = res.user_factors().compute().set_index("user").loc[local.user_ids]
    np.testing.assert_allclose(uf["bias"], loc.user_bias_, rtol=1e-5, atol=1e-6)


def test_als_explicit_equals_local(backend, ratings, local):
    kw = dict(feedback="explicit", factors=4, iterations=3, rng=1)
    loc = ALS(**kw).fit(local)
    dist = backend.fit(ALS(**kw), ratings).model
    assert dist.global_mean_ == pytest.approx(loc.global_mean_, rel=1e-12)
    np.testing.assert_allclose(dist.item_counts_, loc.item_counts_)
    np.testing.assert_allclose(dist.item_bias_, loc.item_bias_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dist.item_factors_, loc.item_factors_, rtol=1e-5, atol=1e-6)


#: DP implicit ALS with the deterministic (adaptive) contribution bounding and a head of every counted item
IMPLICIT = dict(epsilon=50.0, delta=1e-5, bounding="adaptive", factors=4, iterations=2, head_threshold=1.0, rng=5)


def test_dp_implicit_als_equals_local(monkeypatch, backend, ratings, local):
    loc, lr, res, dr = _fit_both(monkeypatch, backend, ratings, local, DPImplicitALS, dpimplicit_module, **IMPLICIT)
    assert set(lr.stats) == set(dr.stats) == {"n_users", "item_counts", "implicit_gramian"}
    for name in ("n_users", "item_counts"):
        np.testing.assert_allclose(dr.stats[name][0], lr.stats[name][0], rtol=RTOL, atol=ATOL, err_msg=name)
    # the first iteration's statistics come from the same data-independent start. kernels.als.gram forms each
    # row chunk's Gramian with float32 BLAS (then sums in float64), so the Gramian — and A_j, which holds the
    # released Gramian — depend on the chunking at float32 rounding even locally; b_j is float64 throughout
    np.testing.assert_allclose(dr.stats["implicit_gramian"][0], lr.stats["implicit_gramian"][0], rtol=1e-5)
    np.testing.assert_allclose(dr.factor[0][0], lr.factor[0][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dr.factor[0][1], lr.factor[0][1], rtol=RTOL, atol=ATOL)
    assert len(dr.factor) == len(lr.factor) == 2
    m = res.model
    assert m.head_.sum() > 10 and (m.head_ == loc.head_).all()
    np.testing.assert_allclose(m.item_counts_, loc.item_counts_, rtol=1e-12)
    np.testing.assert_allclose(m.item_factors_, loc.item_factors_, rtol=1e-5, atol=1e-6)
    assert m.privacy_report()["steps"] == loc.privacy_report()["steps"]
    uf = res.user_factors().compute().set_index("user").loc[local.user_ids]
    np.testing.assert_allclose(uf.to_numpy(), loc.user_factors_, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match='bounding="adaptive"'):
        backend.fit(DPImplicitALS(epsilon=1.0, delta=1e-5), ratings)


def test_implicit_als_infinite_epsilon_equals_local(backend, ratings, local):
    # confidence="value": each block evaluates the model's own rule for p on its ratings
    kw = dict(epsilon=math.inf, factors=4, iterations=2, confidence="value", rng=3)
    loc = DPImplicitALS(**kw).fit(local)
    dist = backend.fit(DPImplicitALS(**kw), ratings).model
    np.testing.assert_allclose(dist.item_factors_, loc.item_factors_, rtol=1e-4, atol=1e-5)


def test_dask_dataframe_input_and_dpals_infinite_epsilon(backend, table, local):
    ddf = dd.from_pandas(table, npartitions=3)
    r = backend.ratings(ddf, items=CATALOG, rating_bounds=(1, 5), dataset_id="toy")
    kw = dict(epsilon=math.inf, factors=3, iterations=2, rng=2)
    loc = DPALS(**kw).fit(local)
    dist = backend.fit(DPALS(**kw), r).model
    np.testing.assert_allclose(dist.item_factors_, loc.item_factors_, rtol=1e-5, atol=1e-6)


def test_workers_never_receive_noise_seeds_budget_or_ledger(monkeypatch, client, backend, ratings, tmp_path):
    """Every task and scattered value the client sends, pickled as Dask sends it, carries no noise stream, random
    generator, seed sequence, ledger, model or the seed's value; the ledger is charged once, on the client."""
    payloads = []
    orig_submit, orig_scatter = client.submit, client.scatter

    def submit(fn, *args, **kwargs):
        payloads.append(cloudpickle.dumps((fn, args, {k: v for k, v in kwargs.items()})))
        return orig_submit(fn, *args, **kwargs)

    def scatter(data, **kwargs):
        payloads.append(cloudpickle.dumps(data))
        return orig_scatter(data, **kwargs)

    monkeypatch.setattr(client, "submit", submit)
    monkeypatch.setattr(client, "scatter", scatter)
    led = Ledger.create(tmp_path / "l.sqlite", dataset="toy", epsilon=60.0, delta=1e-4)
    seed = 987_654_321
    backend.fit(DPALS(**{**DP, "rng": seed}), ratings, ledger=led)
    monkeypatch.undo()
    assert len(payloads) > 20
    forbidden = [b"NoiseStreams", b"NoiseSource", b"dprec.privacy.ledger", b"PCG64", b"SeedSequence", b"DPALS"]
    for p in payloads:
        for f in forbidden:
            assert f not in p, f
        assert str(seed).encode() not in p and seed.to_bytes(4, "little") not in p
    assert len(led.charges()) == 1
    # a second fit over the budget is refused on the client before any task is sent
    payloads.clear()
    monkeypatch.setattr(client, "submit", submit)
    with pytest.raises(BudgetExceededError):
        backend.fit(DPALS(**DP), ratings, ledger=led)
    monkeypatch.undo()
    assert payloads == []


def test_check_public_refuses_secrets():
    from dprec.privacy.noise import NoiseStreams

    with pytest.raises(RuntimeError, match="never see noise"):
        check_public((np.ones(3), {"rng": np.random.default_rng(0)}))
    streams = NoiseStreams(1, model="X", warn=False)
    with pytest.raises(RuntimeError, match="NoiseStreams"):
        check_public(lambda X: streams)
    import functools

    with pytest.raises(RuntimeError, match="Generator"):
        check_public(functools.partial(np.sum, rng=np.random.default_rng(1)))
    check_public((DPALS._releases_for, [1.0, "a"], {"mu": 3.0}))  # public values pass


def test_errors_in_the_callers_terms(backend, ratings, table):
    with pytest.raises(ConfigError, match='contribution="weight"'):
        backend.fit(DPALS(epsilon=1.0, delta=1e-5, contribution="sample"), ratings)
    with pytest.raises(ConfigError, match="track_loss"):
        backend.fit(ALS(feedback="explicit"), ratings, track_loss=True)
    from dprec import DPSGD

    with pytest.raises(ConfigError, match="not DPSGD"):
        backend.fit(DPSGD(epsilon=1.0, delta=1e-5), ratings)
    with pytest.raises(ConfigError, match='solver="cholesky"'):
        backend.fit(ALS(feedback="explicit", solver="cg"), ratings)
    with pytest.raises(TypeError, match="DaskBackend.ratings"):
        backend.fit(DPALS(epsilon=1.0, delta=1e-5), table)
    with pytest.raises(ConfigError, match="dataset_id"):
        backend.ratings(dd.from_pandas(table, npartitions=2), items=CATALOG, rating_bounds=(1, 5), dataset_id="")
    with pytest.raises(ConfigError, match="rating_bounds"):
        backend.ratings(dd.from_pandas(table, npartitions=2), items=CATALOG, rating_bounds=(5, 1), dataset_id="t")
    with pytest.raises(DataError, match="catalog"):
        backend.ratings(dd.from_pandas(table, npartitions=2), items=CATALOG[:-3], rating_bounds=(1, 5), dataset_id="t")
    with pytest.raises(DataError, match="rating_bounds"):
        backend.ratings(dd.from_pandas(table, npartitions=2), items=CATALOG, rating_bounds=(1, 4), dataset_id="t")
    dup = pd.concat([table, table.iloc[:1]])
    with pytest.raises(DataError, match="repeated"):
        backend.ratings(dd.from_pandas(dup, npartitions=2), items=CATALOG, rating_bounds=(1, 5), dataset_id="t")
    with pytest.raises(ConfigError, match="ALS, DPALS and DPImplicitALS"):
        from dprec.models import Popularity

        backend.fit(Popularity(), ratings)
