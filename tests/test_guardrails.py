"""Every bad input of issue 12 (library part) and what it now gives: an error or a warning whose message names the
problem and the fix in the caller's terms.

The cases below are the single source of ``docs/guardrails.md``: ``test_guardrails_doc_is_current`` renders them
from the real messages and fails when the page is stale. Regenerate it with::

    PYTHONPATH=src python tests/test_guardrails.py
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dprec
from dprec import ALS, DPALS, DPGlobalEffects, DPItemItem, Interactions, Popularity
from dprec.datasets import synthetic
from dprec.errors import (
    ConfigError,
    CorruptFileError,
    DataError,
    DataWarning,
    IgnoredParameterWarning,
    PathError,
    UnknownIdError,
)
from dprec.privacy import PrivacyWarning

DOC = Path(__file__).resolve().parents[1] / "docs" / "guardrails.md"
KEY = b"k" * 32


# ---------------------------------------------------------------------------------------------- helpers
def _data(n_users=60, n_items=30, **kw):
    return synthetic(n_users, n_items, 3, mean_ratings_per_user=8, rng=0, **kw)


def _split():
    data = _data(120, 40)
    return dprec.split.random_split(data, 0.2, rng=0)


def _saved(d: Path, *, key=None, model=None) -> str:
    model = model or Popularity().fit(_data())
    return model.save(d / "model.npz", key=key)


def _rewrite(path: str, d: Path, *, manifest_bytes: bytes | None = None, edit=None, arrays_edit=None) -> str:
    """A copy of the model file ``path`` with raw manifest bytes, or an edited manifest / arrays (the per-array
    checksums recomputed, as an attacker would), keeping any MAC as it was."""
    with np.load(path, allow_pickle=False) as z:
        payload = {k: z[k] for k in z.files}
    if arrays_edit is not None:
        arrays_edit(payload)
        man = json.loads(payload["__manifest__"].tobytes())
        import hashlib

        for k, meta in man["arrays"].items():
            a = np.ascontiguousarray(payload[k])
            meta.update(shape=list(a.shape), dtype=a.dtype.str, sha256=hashlib.sha256(a.tobytes()).hexdigest())
        manifest_bytes = json.dumps(man, sort_keys=True).encode()
    if edit is not None:
        man = json.loads(payload["__manifest__"].tobytes())
        edit(man)
        manifest_bytes = json.dumps(man, sort_keys=True).encode()
    payload["__manifest__"] = np.frombuffer(manifest_bytes, dtype=np.uint8)
    out = d / "edited.npz"
    np.savez(out, **payload)
    return str(out)


def _load(path):
    return dprec.load_model(path)


# ---------------------------------------------------------------------------------------------- the cases
@dataclass
class Case:
    """One bad input: ``run(tmp_dir)`` must raise ``expected`` (an exception class) or emit it (a warning class),
    with a message containing every string of ``contains``."""

    section: str
    what: str
    run: object
    expected: type
    contains: tuple[str, ...] = ()


def _implicit_df():
    return pd.DataFrame({"user": [0, 0, 1, 1, 2, 2], "item": [0, 1, 1, 2, 0, 2]})


def _fit_rating_model_on_implicit(d):
    ALS(factors=2, iterations=1, rng=0).fit(Interactions.from_pandas(_implicit_df(), rating_col=None))


def _fit_rating_model_on_binary(d):
    X = _data().matrix.copy()
    X.data = (X.data > 3).astype(float)
    ALS(factors=2, iterations=1, rng=0).fit(Interactions.from_csr(X))


def _evaluate_rmse_on_implicit(d):
    train, test = _split()
    model = ALS(factors=2, iterations=2, rng=0).fit(train)
    res = dprec.evaluate(model, train, test.with_matrix(test.matrix.sign()))
    assert math.isnan(res["rmse"]) and math.isnan(res["mae"])


def _one_rating_each(d):
    df = pd.DataFrame({"user": range(8), "item": [0, 1, 2, 3, 0, 1, 2, 3], "rating": [1.0, 2, 3, 4, 5, 1, 2, 3]})
    Popularity().fit(Interactions.from_pandas(df, rating_bounds=(1, 5)))


class _Worse(Popularity):
    """A rating model that predicts the top of the scale for everything (worse than the mean)."""

    def _predict(self, rows, cols):
        return np.full(len(rows), self.rating_bounds_[1])


def _rmse_worse_than_constant(d):
    train, test = _split()
    dprec.evaluate(_Worse().fit(train), train, test)


def _delta_large(d):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*reproducibility mode", category=PrivacyWarning)
        DPGlobalEffects(epsilon=1.0, delta=0.1, rng=0).fit(_data())


def _dp_fit_raw_matrix(d):
    DPALS(epsilon=1.0, delta=1e-5).fit(_data().matrix)


def _raw_matrix_looks_transposed(d):
    ALS(factors=2, iterations=1, rng=0).fit(_data(300, 20).matrix.T.tocsr())


def _bad_user_axis(d):
    DPALS(epsilon=1.0, delta=1e-5).fit(_data().matrix, user_axis=2)


def _user_axis_with_interactions(d):
    DPALS(epsilon=1.0, delta=1e-5).fit(_data(), user_axis=1)


def _mixed_ids(d):
    df = pd.DataFrame({"user": [1, "a", 2], "item": [1, 2, 1], "rating": [1.0, 2, 3]})
    Interactions.from_pandas(df, rating_bounds=(1, 5))


def _load_dataset_without_env(d):
    old = os.environ.pop("DPREC_DATA", None)  # the message depends on it; show the no-configuration case
    try:
        dprec.load_dataset("ml-100k", data_home=d)
    finally:
        if old is not None:
            os.environ["DPREC_DATA"] = old


def _manifest(raw: bytes):
    def run(d):
        _load(_rewrite(_saved(d), d, manifest_bytes=raw))

    return run


def _manifest_edit(edit):
    def run(d):
        _load(_rewrite(_saved(d), d, edit=edit))

    return run


def _drop_sha(m):
    del m["arrays"]["__item_ids"]["sha256"]


def _swap_arrays(payload):
    payload["__seen_data"] = payload["__seen_data"][::-1].copy()


def _swapped_with_key(d):
    path = _rewrite(_saved(d, key=KEY), d, arrays_edit=_swap_arrays)
    dprec.load_model(path)  # without the key: the recomputed checksums pass (the key is what detects it)
    Recommender_load(path, key=KEY)


def Recommender_load(path, key):
    return dprec.Recommender.load(path, key=key)


def _no_mac_with_key(d):
    Recommender_load(_saved(d), KEY)


def _wrong_key(d):
    Recommender_load(_saved(d, key=KEY), b"x" * 32)


def _short_key(d):
    _saved(d, key="secret")


def _truncated(d):
    path = _saved(d)
    raw = Path(path).read_bytes()
    Path(path).write_bytes(raw[: len(raw) // 2])
    _load(path)


def _public_privacy_steps_wrong(d, edit=None):
    m = DPGlobalEffects(epsilon=1.0, delta=1e-5).fit(_data())
    path = m.export_public(d / "pub.npz")

    def default_edit(man):
        man["privacy"]["steps"] = "abc"

    edit = edit or default_edit

    with np.load(path, allow_pickle=False) as z:
        payload = {k: z[k] for k in z.files}
    man = json.loads(payload["__manifest__"].tobytes())
    edit(man)
    payload["__manifest__"] = np.frombuffer(json.dumps(man).encode(), dtype=np.uint8)
    np.savez(d / "pub2.npz", **payload)
    DPGlobalEffects.load_public(d / "pub2.npz")


def _dask_backend():
    pytest.importorskip("distributed")
    from dprec.distributed import DaskBackend

    return DaskBackend(None)  # these checks run on the client before any cluster is used


def _dask_fit(model):
    from dprec.distributed import DaskRatings

    _dask_backend().fit(model, DaskRatings(None, np.array(["a", "b"]), (1.0, 5.0), "shop"))


CASES = [
    # ---- silent garbage
    Case(
        "Silent garbage",
        "a rating model fitted on implicit data (`rating_col=None`: every value 1)",
        _fit_rating_model_on_implicit,
        DataError,
        ("implicit", "ranking model", "rating_col"),
    ),
    Case(
        "Silent garbage",
        "a rating model fitted on 0/1 data without `rating_bounds`",
        _fit_rating_model_on_binary,
        DataWarning,
        ("only 0 and 1", "rating_bounds=(0, 1)"),
    ),
    Case(
        "Silent garbage",
        "`evaluate` asked for RMSE on implicit test data (every value 1)",
        _evaluate_rmse_on_implicit,
        DataWarning,
        ("NaN",),
    ),
    Case(
        "Silent garbage",
        "every user has exactly one rating",
        _one_rating_each,
        DataWarning,
        ("exactly one rating", "rows are users"),
    ),
    Case(
        "Silent garbage",
        "`evaluate`: RMSE worse than predicting the training mean",
        _rmse_worse_than_constant,
        DataWarning,
        ("worse than predicting the training mean",),
    ),
    Case("Silent garbage", "δ ≥ 1/ñ (here δ = 0.1, ~60 users)", _delta_large, PrivacyWarning, ("1/n",)),
    Case(
        "Silent garbage",
        "ε = 1e-300",
        lambda d: DPALS(epsilon=1e-300, delta=1e-5),
        ConfigError,
        ("too small", "[0.001, 1000]", "math.inf"),
    ),
    Case(
        "Silent garbage",
        "ε = 1e308",
        lambda d: DPALS(epsilon=1e308, delta=1e-5),
        ConfigError,
        ("too large", "[0.001, 1000]", "math.inf"),
    ),
    Case(
        "Silent garbage",
        "`alpha` with `ALS(feedback='explicit')`",
        lambda d: ALS(alpha=10.0),
        IgnoredParameterWarning,
        ("alpha=10.0 is ignored",),
    ),
    Case(
        "Silent garbage",
        "`num_threads` on a model without threaded kernels (`Popularity`, `DPItemItem`, …)",
        lambda d: DPItemItem(epsilon=1.0, delta=1e-5, num_threads=4),
        IgnoredParameterWarning,
        ("num_threads=4 is ignored",),
    ),
    # ---- privacy arguments
    Case("Privacy arguments", "ε = 0", lambda d: DPALS(epsilon=0.0, delta=1e-5), ConfigError, ("> 0",)),
    Case("Privacy arguments", "ε = -1", lambda d: DPALS(epsilon=-1.0, delta=1e-5), ConfigError, ("> 0",)),
    Case("Privacy arguments", "ε = NaN", lambda d: DPALS(epsilon=math.nan, delta=1e-5), ConfigError, ("NaN",)),
    Case("Privacy arguments", 'ε = "1"', lambda d: DPALS(epsilon="1", delta=1e-5), ConfigError, ("real number",)),
    Case("Privacy arguments", "δ = 0", lambda d: DPALS(epsilon=1.0, delta=0.0), ConfigError, ("(0, 1)",)),
    Case("Privacy arguments", "δ = 1", lambda d: DPALS(epsilon=1.0, delta=1.0), ConfigError, ("(0, 1)",)),
    Case("Privacy arguments", "δ = 1.5", lambda d: DPALS(epsilon=1.0, delta=1.5), ConfigError, ("(0, 1)",)),
    Case("Privacy arguments", "δ missing with finite ε", lambda d: DPALS(epsilon=1.0), ConfigError, ("required",)),
    # ---- orientation
    Case(
        "Orientation",
        "a raw scipy matrix passed to a DP fit without `user_axis`",
        _dp_fit_raw_matrix,
        DataError,
        ("user_axis=0", "user_axis=1", "privacy unit"),
    ),
    Case(
        "Orientation",
        "a raw matrix that looks transposed (20 rows × 300 columns)",
        _raw_matrix_looks_transposed,
        DataWarning,
        ("item×user", "X.T.tocsr()"),
    ),
    Case("Orientation", "`user_axis=2`", _bad_user_axis, ConfigError, ("user_axis must be 0",)),
    Case(
        "Orientation",
        "`user_axis=1` with an `Interactions` (always user×item)",
        _user_axis_with_interactions,
        DataError,
        ("always user×item",),
    ),
    # ---- ratings and ids
    Case(
        "Ratings and ids",
        "a NaN rating",
        lambda d: Interactions.from_pandas(
            pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [1.0, math.nan]}), rating_bounds=(1, 5)
        ),
        ValueError,
        ("NaN",),
    ),
    Case(
        "Ratings and ids",
        "a rating outside `rating_bounds`",
        lambda d: Interactions.from_pandas(
            pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [1.0, 7.0]}), rating_bounds=(1, 5)
        ),
        ValueError,
        ("outside the declared rating_bounds",),
    ),
    Case(
        "Ratings and ids",
        '`rating_bounds="ab"`',
        lambda d: Interactions.from_pandas(
            pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [1.0, 2.0]}), rating_bounds="ab"
        ),
        ValueError,
        ("pair (lo, hi)",),
    ),
    Case(
        "Ratings and ids",
        "a DP fit without rating bounds",
        lambda d: DPALS(epsilon=1.0, delta=1e-5).fit(_data().matrix, user_axis=0),
        ValueError,
        ("rating bounds",),
    ),
    Case("Ratings and ids", "mixed int/str ids", _mixed_ids, DataError, ("mix id types", "astype(str)")),
    Case(
        "Ratings and ids",
        "`fold_in(user='new')` on a model with integer user ids",
        lambda d: Popularity().fit(_data()).fold_in({0: 3.0}, user="new"),
        DataError,
        ("str id", "ints"),
    ),
    Case(
        "Ratings and ids",
        "an unknown item id in `predict`",
        lambda d: Popularity().fit(_data()).predict([0], ["no-such-item"]),
        UnknownIdError,
        ("unknown item id",),
    ),
    Case(
        "Ratings and ids",
        "an unknown item in `fold_in`",
        lambda d: Popularity().fit(_data()).fold_in({"no-such-item": 3.0}, user="new"),
        UnknownIdError,
        ("unknown item id",),
    ),
    # ---- consent and erasure
    Case(
        "Consent and erasure",
        "a consent column with values other than booleans or 0/1",
        lambda d: Interactions.from_pandas(_implicit_df().assign(ok=["yes"] * 6), rating_col=None, consent_col="ok"),
        DataError,
        ("booleans or 0/1", "missing means no consent"),
    ),
    Case(
        "Consent and erasure",
        "an opted-out id of the wrong kind (a name where user ids are integers)",
        lambda d: Interactions.from_pandas(_implicit_df(), rating_col=None, opted_out=["alice"]),
        DataError,
        ("opted_out", "not an integer"),
    ),
    Case(
        "Consent and erasure",
        "`forget` with a bare id instead of a list",
        lambda d: Popularity().fit(_data()).forget(3),
        DataError,
        ("sequence of raw user ids",),
    ),
    # ---- model files
    Case("Model files", "manifest is a JSON list", _manifest(b"[1, 2]"), CorruptFileError, ("JSON array",)),
    Case("Model files", "manifest is a JSON string", _manifest(b'"abc"'), CorruptFileError, ("JSON string",)),
    Case("Model files", "manifest is JSON null", _manifest(b"null"), CorruptFileError, ("JSON null",)),
    Case(
        "Model files",
        "manifest nested 100 000 deep",
        _manifest(b"[" * 100_000 + b"]" * 100_000),
        CorruptFileError,
        ("deeper",),
    ),
    Case("Model files", "manifest is not JSON", _manifest(b"{not json"), CorruptFileError, ("not valid JSON",)),
    Case(
        "Model files",
        'manifest field of the wrong type (`n_users: "5"`)',
        _manifest_edit(lambda m: m.update(n_users="5")),
        CorruptFileError,
        ("n_users",),
    ),
    Case(
        "Model files",
        "`params` is a list",
        _manifest_edit(lambda m: m.update(params=[1])),
        CorruptFileError,
        ("params",),
    ),
    Case(
        "Model files",
        "an array entry without `sha256`",
        _manifest_edit(_drop_sha),
        CorruptFileError,
        ("sha256",),
    ),
    Case(
        "Model files",
        '`rating_bounds: "ab"` in the manifest',
        _manifest_edit(lambda m: m.update(rating_bounds="ab")),
        CorruptFileError,
        ("rating_bounds",),
    ),
    Case(
        "Model files",
        "`rating_bounds: [5, 1]` (lo > hi)",
        _manifest_edit(lambda m: m.update(rating_bounds=[5, 1])),
        CorruptFileError,
        ("lo < hi",),
    ),
    Case(
        "Model files",
        "`format_version` from a newer dprec",
        _manifest_edit(lambda m: m.update(format_version=99)),
        CorruptFileError,
        ("newer dprec",),
    ),
    Case(
        "Model files",
        "a public file whose privacy report `steps` is a string",
        _public_privacy_steps_wrong,
        CorruptFileError,
        ("privacy.steps",),
    ),
    Case(
        "Model files",
        'a privacy-report step with `rho: "abc"`',
        lambda d: _public_privacy_steps_wrong(d, lambda m: m["privacy"]["steps"][0].update(rho="abc")),
        CorruptFileError,
        ("privacy.steps.0.rho",),
    ),
    Case(
        "Model files",
        "a privacy-report step without its `rho`",
        lambda d: _public_privacy_steps_wrong(d, lambda m: m["privacy"]["steps"][0].pop("rho")),
        CorruptFileError,
        ("lacks rho for step",),
    ),
    Case(
        "Model files",
        "an array edited (checksum no longer matches)",
        lambda d: _load(_rewrite(_saved(d), d, edit=lambda m: m["arrays"]["__seen_data"].update(sha256="0" * 64))),
        CorruptFileError,
        ("checksum",),
    ),
    Case("Model files", "a truncated file", _truncated, CorruptFileError, ("not a readable dprec file",)),
    Case(
        "Model files",
        "arrays swapped with recomputed checksums, loaded with `key=`",
        _swapped_with_key,
        CorruptFileError,
        ("MAC check failed",),
    ),
    Case(
        "Model files",
        "a file saved without a key, loaded with `key=`",
        _no_mac_with_key,
        CorruptFileError,
        ("carries no MAC",),
    ),
    Case("Model files", "the wrong key", _wrong_key, CorruptFileError, ("MAC check failed",)),
    Case("Model files", "a key shorter than 16 bytes", _short_key, ConfigError, ("at least 16 bytes",)),
    # ---- paths
    Case(
        "Paths",
        "`save()` into a missing directory",
        lambda d: Popularity().fit(_data()).save(d / "no-such-dir" / "model.npz"),
        PathError,
        ("no-such-dir", "does not exist"),
    ),
    Case(
        "Paths",
        "`save(dir)` on a directory",
        lambda d: Popularity().fit(_data()).save(d),
        PathError,
        ("is a directory", "model.npz"),
    ),
    Case("Paths", "`load()` of a missing file", lambda d: _load(d / "missing.npz"), PathError, ("no such model file",)),
    Case("Paths", "`load(dir)` on a directory", lambda d: _load(d), PathError, ("is a directory",)),
    Case(
        "Paths",
        "`load_dataset('ml-100k')` without the data",
        lambda d: _load_dataset_without_env(d),
        FileNotFoundError,
        ("download=True", "DPREC_DATA"),
    ),
    # ---- distributed fits (dprec.distributed; checked on the client, before any task is sent)
    Case(
        "Distributed fits",
        '`DaskBackend.fit` of `DPALS(contribution="sample")`',
        lambda d: _dask_fit(DPALS(epsilon=1.0, delta=1e-5, contribution="sample")),
        ConfigError,
        ('contribution="weight"', "random stream"),
    ),
    Case(
        "Distributed fits",
        "`DaskBackend.fit` of a private `DPImplicitALS` with sampled bounding (the default)",
        lambda d: _dask_fit(dprec.models.DPImplicitALS(epsilon=1.0, delta=1e-5)),
        ConfigError,
        ('bounding="adaptive"',),
    ),
    Case(
        "Distributed fits",
        "`DaskBackend.ratings` without a `dataset_id`",
        lambda d: _dask_backend().ratings(pd.DataFrame(), items=["a"], rating_bounds=(1, 5), dataset_id=""),
        ConfigError,
        ("dataset_id",),
    ),
]


def run_case(case: Case, d: Path) -> str:
    """Run one case in directory ``d``; return its message (with ``d`` shown as ``<dir>``). Fails unless the case
    raises / warns as declared."""
    is_warning = issubclass(case.expected, Warning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if is_warning:
            case.run(d)
            hits = [
                w for w in caught if issubclass(w.category, case.expected) and "reproducibility" not in str(w.message)
            ]
            assert hits, f"{case.what}: no {case.expected.__name__} (got {[str(w.message) for w in caught]})"
            msg = str(hits[0].message)
        else:
            with pytest.raises(case.expected) as info:
                case.run(d)
            msg = str(info.value)
    for part in case.contains:
        assert part in msg, f"{case.what}: {part!r} not in {msg!r}"
    return msg.replace(str(d), "<dir>")


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_guardrail(case, tmp_path):
    run_case(case, tmp_path)


def render() -> str:
    lines = [
        "# Guardrails: bad input and what dprec says",
        "",
        "Generated by `tests/test_guardrails.py` from the real messages (regenerate with",
        "`PYTHONPATH=src python tests/test_guardrails.py`; a test fails when this page is stale). `<dir>` stands for",
        "the caller's folder. Errors are `dprec.errors` classes (also `ValueError` / `FileNotFoundError` where",
        "noted in their docs); warnings are `DataWarning`, `IgnoredParameterWarning` and `PrivacyWarning`.",
        "",
    ]
    section = None
    for case in CASES:
        if case.section != section:
            section = case.section
            lines += ["", f"## {section}", "", "| bad input | raises / warns | message |", "|---|---|---|"]
        with tempfile.TemporaryDirectory() as tmp:
            msg = run_case(case, Path(tmp))
        kind = ("warns " if issubclass(case.expected, Warning) else "raises ") + f"`{case.expected.__name__}`"
        cell = msg.replace("|", "\\|").replace("\n", "<br>")
        lines.append(f"| {case.what} | {kind} | {cell} |")
    return "\n".join(lines) + "\n"


def test_guardrails_doc_is_current():
    assert DOC.read_text() == render(), (
        "docs/guardrails.md is stale: run PYTHONPATH=src python tests/test_guardrails.py"
    )


# ---------------------------------------------------------------------------------------------- behaviour
def test_string_item_ids_export_and_load_public(tmp_path):
    df = pd.DataFrame(
        {"user": [f"u{k % 9}" for k in range(60)], "item": [f"item-{k % 7}" for k in range(60)], "rating": 3.0}
    )
    df.loc[::2, "rating"] = 4.0
    # a public catalog, so every (string) item id is in the export (no DP selection that could keep none)
    catalog = [f"item-{k}" for k in range(7)]
    data = Interactions.from_pandas(df, rating_bounds=(1, 5), duplicates="mean", item_catalog=catalog)
    assert data.item_ids.dtype.kind == "U" and data.user_ids.dtype.kind == "U"  # never object
    m = DPGlobalEffects(epsilon=1.0, delta=1e-5).fit(data)
    pub = DPGlobalEffects.load_public(m.export_public(tmp_path / "pub.npz"))
    assert pub.item_ids.tolist() == data.item_ids.tolist() and pub.item_ids.dtype.kind == "U"
    loaded = dprec.load_model(m.save(tmp_path / "m.npz"))
    assert loaded.user_ids.tolist() == data.user_ids.tolist()


@pytest.mark.parametrize("ids", [[2**63, 2**63 + 1, 5], [2**64 + 3, 7, -1]], ids=["uint64", "beyond-64-bit"])
def test_huge_integer_ids_save_and_load(tmp_path, ids):
    df = pd.DataFrame(
        {"user": pd.Series(ids * 3, dtype=object), "item": [0] * 3 + [1] * 3 + [2] * 3, "rating": range(1, 10)}
    )
    df["rating"] = df["rating"] % 5 + 1.0
    data = Interactions.from_pandas(df, rating_bounds=(1, 5))
    m = Popularity().fit(data)
    loaded = dprec.load_model(m.save(tmp_path / "m.npz"))
    assert loaded.user_ids.tolist() == sorted(ids) and type(loaded.user_ids.tolist()[0]) is int
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:  # no object array anywhere (allow_pickle=False)
        assert all(z[k].dtype != object for k in z.files)
    np.testing.assert_array_equal(loaded.predict([ids[0]], [0]), m.predict([ids[0]], [0]))


def test_keyed_mac_round_trip_and_detection(tmp_path):
    m = ALS(factors=2, iterations=1, rng=0).fit(_data())
    path = m.save(tmp_path / "m.npz", key=KEY)
    assert isinstance(ALS.load(path, key=KEY), ALS) and isinstance(ALS.load(path), ALS)
    with pytest.raises(CorruptFileError, match="MAC"):
        ALS.load(path, key=KEY.decode().upper())

    # an attacker swaps the item factors for others and recomputes every checksum: only the key detects it
    def swap(payload):
        name = next(k for k in payload if "item" in k and "factor" in k)
        payload[name] = payload[name][::-1].copy()

    bad = _rewrite(path, tmp_path, arrays_edit=swap)
    assert isinstance(ALS.load(bad), ALS)
    with pytest.raises(CorruptFileError, match="MAC check failed"):
        ALS.load(bad, key=KEY)
    # a MAC stripped off the file
    with np.load(path, allow_pickle=False) as z:
        payload = {k: z[k] for k in z.files if k != "__mac__"}
    np.savez(tmp_path / "stripped.npz", **payload)
    with pytest.raises(CorruptFileError, match="no MAC"):
        ALS.load(tmp_path / "stripped.npz", key=KEY)


def test_keyed_mac_on_public_files(tmp_path):
    m = DPGlobalEffects(epsilon=1.0, delta=1e-5).fit(_data())
    path = m.export_public(tmp_path / "pub.npz", key=KEY)
    assert DPGlobalEffects.load_public(path, key=KEY).is_fitted
    with pytest.raises(CorruptFileError, match="MAC"):
        DPGlobalEffects.load_public(path, key=b"y" * 32)


def test_user_axis_one_transposes(tmp_path):
    data = _data()
    X = data.matrix
    a = DPGlobalEffects(epsilon=math.inf).fit(data)
    b = DPGlobalEffects(epsilon=math.inf).fit(X.T.tocsr(), user_axis=1, rating_bounds=data.rating_bounds)
    c = DPGlobalEffects(epsilon=math.inf).fit(X, user_axis=0, rating_bounds=data.rating_bounds)
    assert len(b.user_ids) == data.n_users == len(c.user_ids)
    np.testing.assert_allclose(a.predict([0, 1], [0, 1]), b.predict([0, 1], [0, 1]))
    np.testing.assert_allclose(a.predict([0, 1], [0, 1]), c.predict([0, 1], [0, 1]))


def test_no_warning_on_ordinary_use(tmp_path):
    """The new warnings stay quiet on ordinary inputs: defaults, explicit data, a model that beats the mean."""
    train, test = _split()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        warnings.simplefilter("error", IgnoredParameterWarning)
        ALS(**ALS().get_params())
        Popularity(num_threads=0)
        ALS(num_threads=2, alpha=40.0)  # alpha at its default is not "set"; ALS uses threads
        model = ALS(factors=2, iterations=3, rng=0).fit(train)
        dprec.evaluate(model, train, test)
        dprec.load_model(ALS(alpha=5.0, feedback="implicit", factors=2, iterations=1).fit(train).save(tmp_path / "a"))


def test_loaded_model_with_out_of_bounds_seen_ratings_is_corrupt(tmp_path):
    path = _saved(tmp_path)

    def edit(payload):
        payload["__seen_data"] = payload["__seen_data"] * 100

    with pytest.raises(CorruptFileError, match="rating_bounds"):
        _load(_rewrite(path, tmp_path, arrays_edit=edit))


def test_epsilon_inf_still_the_reference_and_range_ends_accepted():
    assert DPALS(epsilon=math.inf).delta == 0.0
    assert DPALS(epsilon=1e-3, delta=1e-5).epsilon == 1e-3 and DPALS(epsilon=1e3, delta=1e-5).epsilon == 1e3


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}", file=sys.stderr)
    os._exit(0)


_JUNK = [None, "x", "", [], {}, 1.5, -1, True, [[["deep"]]], {"a": {"b": None}}, 2**80]


@pytest.mark.parametrize("fmt", ["model", "public"])
def test_every_manifest_field_replaced_by_junk_is_corrupt_or_harmless(tmp_path, fmt):
    """Replace each manifest field (top level, the privacy report, DP-ALS's extra keys) by values of every JSON
    type: loading either raises CorruptFileError or succeeds — never another exception."""
    m = DPALS(epsilon=2.0, delta=1e-5, factors=2, iterations=1).fit(_data())
    if fmt == "model":
        path, load = m.save(tmp_path / "m.npz"), DPALS.load
    else:
        path, load = m.export_public(tmp_path / "p.npz"), DPALS.load_public
    with np.load(path, allow_pickle=False) as z:
        payload = {k: z[k] for k in z.files}
    manifest = json.loads(payload["__manifest__"].tobytes())
    targets = [(k,) for k in manifest if k != "arrays"]
    targets += [("privacy", k) for k in manifest.get("privacy", {})]
    targets += [("privacy", "steps", 0, k) for k in manifest["privacy"]["steps"][0]]
    targets += [("params", k) for k in manifest["params"]]
    targets += [
        (k, kk)
        for k, v in manifest.items()
        if isinstance(v, dict) and k not in ("privacy", "params", "arrays")
        for kk in v
    ]
    outcomes = {"corrupt": 0, "loaded": 0}
    for where in targets:
        for junk in _JUNK:
            man = json.loads(json.dumps(manifest))
            node = man
            for p in where[:-1]:
                node = node[p]
            node[where[-1]] = junk
            payload["__manifest__"] = np.frombuffer(json.dumps(man).encode(), dtype=np.uint8)
            np.savez(tmp_path / "junk.npz", **payload)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    loaded = load(tmp_path / "junk.npz")
                    loaded.privacy_report()  # the restored report must be usable too
                    loaded.recommend(loaded.item_ids[:1] if fmt == "public" else loaded.user_ids[0], n=2)
                outcomes["loaded"] += 1
            except CorruptFileError:
                outcomes["corrupt"] += 1
            except Exception as exc:  # noqa: BLE001
                pytest.fail(f"{where} = {junk!r}: {type(exc).__name__}: {exc}")
    assert outcomes["corrupt"] > len(targets)  # most junk is refused
