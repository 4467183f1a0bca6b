"""The ``dprec`` command, run in-process through ``main([...])``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dprec.cli import main

# MovieLens lives under $DPREC_DATA when available (conventions: realdata tests skip when it is absent).
SHARED_DATA = Path(os.environ["DPREC_DATA"]) if os.environ.get("DPREC_DATA") else None
HAS_ML100K = SHARED_DATA is not None and (SHARED_DATA / "ml-100k" / "u.data").is_file()


@pytest.fixture
def ratings_csv(tmp_path) -> Path:
    """60 users × 40 items, ~15 ratings each on the 1–5 scale, with a popularity skew."""
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, 41)
    p /= p.sum()
    rows = []
    for u in range(60):
        for i in rng.choice(40, size=15, replace=False, p=p):
            rows.append((f"u{u}", int(i), int(rng.integers(1, 6)), 1_000_000 + len(rows)))
    path = tmp_path / "ratings.csv"
    pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]).to_csv(path, index=False)
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------- general
def test_help_and_version(capsys):
    assert _run(capsys, "--help")[0] == 0
    code, out, _ = _run(capsys, "--version")
    assert code == 0 and "dprec" in out


def test_no_command_is_usage_error(capsys):
    code, _, err = _run(capsys)
    assert code == 2 and "usage" in err.lower()


def _model_names():
    from dprec.models import model_names

    return model_names()


def test_registry_has_models():
    assert {"als", "popularity", "dp-baseline", "dp-popularity", "dpals", "implicit-als"} <= set(_model_names())


# --------------------------------------------------------------------------------------------- datasets
def test_datasets_list_table(capsys, tmp_path):
    code, out, _ = _run(capsys, "datasets", "list", "--data-home", tmp_path)
    assert code == 0
    assert "ml-100k" in out and "ml-1m" in out
    assert "licence" in out.lower() and "local" in out
    assert "1.0-5.0" in out  # ml-100k rating bounds
    assert "GroupLens" in out


def test_datasets_list_json_detects_local_copy(capsys, tmp_path):
    code, out, _ = _run(capsys, "datasets", "list", "--format", "json", "--data-home", tmp_path)
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["datasets"]}
    assert rows["ml-100k"]["rating_bounds"] == [1.0, 5.0]
    assert rows["ml-100k"]["present"] is False
    assert rows["ml-100k"]["licence"]
    if HAS_ML100K:
        code, out, _ = _run(capsys, "datasets", "list", "--format", "json", "--data-home", SHARED_DATA)
        rows = {r["name"]: r for r in json.loads(out)["datasets"]}
        assert rows["ml-100k"]["present"] is True


# --------------------------------------------------------------------------------------------- evaluate
def test_evaluate_popularity_json(capsys, ratings_csv):
    code, out, err = _run(
        capsys,
        "evaluate",
        "--ratings",
        ratings_csv,
        "--rating-bounds",
        "1,5",
        "--model",
        "popularity",
        "--format",
        "json",
        "--k",
        "5",
    )
    assert code == 0, err
    res = json.loads(out)
    for key in ("rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "k", "fit_seconds", "config"):
        assert key in res
    assert res["k"] == 5
    assert 0.0 <= res["precision_at_k"] <= 1.0 and 0.0 <= res["ndcg_at_k"] <= 1.0
    assert res["fit_seconds"] >= 0
    cfg = res["config"]
    assert cfg["dataset_checksum"].startswith("sha256:") and len(cfg["dataset_checksum"]) == 7 + 64
    assert cfg["dprec_version"]
    assert cfg["model"] == "popularity" and cfg["split"] == "random" and cfg["split_seed"] == 0
    assert cfg["test_fraction"] == 0.2 and cfg["rating_bounds"] == [1.0, 5.0]
    assert res["privacy"] is None


def test_evaluate_popularity_table(capsys, ratings_csv):
    code, out, err = _run(
        capsys, "evaluate", "--ratings", ratings_csv, "--model", "popularity", "--split", "user", "--format", "table"
    )
    assert code == 0, err
    for label in (
        "RMSE",
        "MAE",
        "precision@10",
        "recall@10",
        "NDCG@10",
        "fit time",
        "configuration",
        "dataset_checksum",
        "dprec_version",
        "split: user",
    ):
        assert label in out


def test_evaluate_is_deterministic_and_split_seed_matters(capsys, ratings_csv):
    args = ["evaluate", "--ratings", ratings_csv, "--model", "popularity", "--format", "json"]
    a = json.loads(_run(capsys, *args)[1])
    b = json.loads(_run(capsys, *args)[1])
    c = json.loads(_run(capsys, *args, "--split-seed", "1")[1])
    assert a["ndcg_at_k"] == b["ndcg_at_k"]
    assert c["config"]["split_seed"] == 1 and c["config"]["n_test"] == a["config"]["n_test"]


def test_evaluate_custom_columns_and_separator(capsys, tmp_path, ratings_csv):
    df = pd.read_csv(ratings_csv).rename(columns={"user": "uid", "item": "iid", "rating": "stars"})
    path = tmp_path / "r.txt"
    df.to_csv(path, sep=";", index=False)
    code, out, err = _run(
        capsys,
        "evaluate",
        "--ratings",
        path,
        "--sep",
        ";",
        "--user-col",
        "uid",
        "--item-col",
        "iid",
        "--rating-col",
        "stars",
        "--timestamp-col",
        "timestamp",
        "--model",
        "popularity",
        "--format",
        "json",
    )
    assert code == 0, err
    assert json.loads(out)["config"]["user_col"] == "uid"


def test_evaluate_als_json(capsys, ratings_csv):
    code, out, err = _run(
        capsys,
        "evaluate",
        "--ratings",
        ratings_csv,
        "--rating-bounds",
        "1,5",
        "--model",
        "als",
        "--factors",
        "4",
        "--iterations",
        "3",
        "--seed",
        "1",
        "--format",
        "json",
    )
    assert code == 0, err
    res = json.loads(out)
    assert math.isfinite(res["rmse"]) and res["rmse"] > 0  # explicit ALS predicts ratings
    assert res["config"]["model_params"]["factors"] == 4


def test_evaluate_dp_model_reports_privacy(capsys, ratings_csv):
    dp = "dp-baseline"
    code, out, err = _run(
        capsys,
        "evaluate",
        "--ratings",
        ratings_csv,
        "--rating-bounds",
        "1,5",
        "--model",
        dp,
        "--epsilon",
        "2",
        "--delta",
        "1e-5",
        "--format",
        "json",
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["privacy"] is not None
    assert res["config"]["epsilon"] == 2.0 and res["config"]["private"] is True


def test_evaluate_missing_ledger_is_refused_with_exit_3(capsys, ratings_csv, tmp_path):
    code, _, err = _run(
        capsys,
        "evaluate",
        "--ratings",
        ratings_csv,
        "--rating-bounds",
        "1,5",
        "--model",
        "dp-baseline",
        "--epsilon",
        "1",
        "--delta",
        "1e-5",
        "--ledger",
        tmp_path / "none.db",
    )
    assert code == 3 and "ledger" in err.lower()


def test_evaluate_budget_exceeded_exit_3(capsys, ratings_csv, tmp_path):
    from dprec.data import Interactions
    from dprec.privacy.ledger import Ledger
    from dprec.split import random_split

    # the ledger is keyed by the training data the model sees: reproduce the CLI's split
    data = Interactions.from_pandas(pd.read_csv(ratings_csv), rating_bounds=(1, 5), name=ratings_csv.name)
    train, _ = random_split(data, 0.2, rng=0)
    path = tmp_path / "ledger.db"
    Ledger.create(path, dataset=train.dataset_id, epsilon=0.5, delta=1e-5)
    args = [
        "evaluate",
        "--ratings",
        ratings_csv,
        "--rating-bounds",
        "1,5",
        "--model",
        "dp-baseline",
        "--delta",
        "1e-6",
        "--ledger",
        path,
    ]
    code, _, err = _run(capsys, *args, "--epsilon", "5")
    assert code == 3, err
    assert "budget" in err.lower()


# --------------------------------------------------------------------------------------------- bad input → 2
@pytest.mark.parametrize(
    "extra, match",
    [
        (["--model", "nonexistent"], "unknown model 'nonexistent'; available models: "),
        (["--model", "popularity", "--rating-col", "nope"], "--ratings"),
        (["--model", "popularity", "--epsilon", "1"], "not private"),
        (["--model", "popularity", "--ledger", "x.db"], "not private"),
        (["--model", "popularity", "--epsilon", "0"], "epsilon must be > 0"),
        (["--model", "popularity", "--epsilon", "-1"], "epsilon must be > 0"),
        (["--model", "popularity", "--epsilon", "abc"], "epsilon"),
        (["--model", "popularity", "--delta", "1.5"], "delta"),
        (["--model", "popularity", "--rating-bounds", "5,1"], "rating-bounds"),
        (["--model", "popularity", "--rating-bounds", "abc"], "rating-bounds"),
        (["--model", "popularity", "--rating-bounds", "1,2,3"], "rating-bounds"),
        (["--model", "popularity", "--rating-bounds", "2,4"], "outside the declared rating_bounds"),
        (["--model", "popularity", "--user-col", "nope"], "not found"),
        (["--model", "popularity", "--k", "0"], "--k"),
        (["--model", "popularity", "--test-fraction", "1.5"], "test-fraction"),
        (["--model", "popularity", "--split", "nope"], "is not one of"),
        (["--model", "popularity", "--factors", "8"], "does not take --factors"),
        ([], "--model"),
    ],
)
def test_evaluate_bad_input_exit_2(capsys, ratings_csv, extra, match):
    code, out, err = _run(capsys, "evaluate", "--ratings", ratings_csv, *extra)
    assert code == 2
    assert match in err
    assert "Traceback" not in err and out == ""


def test_unknown_model_lists_available(capsys, ratings_csv):
    code, _, err = _run(capsys, "evaluate", "--ratings", ratings_csv, "--model", "nonexistent")
    assert code == 2
    for name in _model_names():
        assert name in err
    code, _, err = _run(capsys, "evaluate", "--ratings", ratings_csv, "--model", "dpalss")
    assert code == 2 and "did you mean 'dpals'?" in err


def test_dp_model_without_rating_bounds_is_a_usage_error(capsys, ratings_csv):
    code, out, err = _run(
        capsys, "evaluate", "--ratings", ratings_csv, "--model", "dp-baseline", "--epsilon", "1", "--delta", "1e-5"
    )
    assert code == 2 and "--rating-bounds" in err and "Traceback" not in err and out == ""


def test_dp_model_without_epsilon_is_a_usage_error(capsys, ratings_csv):
    code, _, err = _run(capsys, "evaluate", "--ratings", ratings_csv, "--rating-bounds", "1,5", "--model", "dpals")
    assert code == 2 and "--epsilon" in err


def test_bad_hyperparameter_value_is_a_usage_error(capsys, ratings_csv):
    code, _, err = _run(capsys, "evaluate", "--ratings", ratings_csv, "--model", "als", "--factors", "-3")
    assert code == 2 and "als" in err and "factors" in err


# --------------------------------------------------------------------------------------------- exit codes
@pytest.mark.parametrize("exc", [ValueError("boom"), KeyError("boom"), RuntimeError("boom")])
def test_internal_bug_propagates_with_its_traceback(monkeypatch, capsys, ratings_csv, exc):
    """A built-in exception raised inside `dprec evaluate` is a bug: it is not reported as bad input (exit 2)."""
    import dprec.metrics

    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr(dprec.metrics, "evaluate", broken)
    with pytest.raises(type(exc), match="boom"):
        main(["evaluate", "--ratings", str(ratings_csv), "--model", "popularity"])


def test_dprec_errors_map_to_documented_exit_codes(monkeypatch, capsys, tmp_path):
    """Exactly dprec's errors become exit codes (2 bad input, 3 budget/ledger, 4 untrusted file), one line each."""
    import dprec.cli as cli
    from dprec.errors import (
        BudgetExceededError,
        ConfigError,
        CorruptFileError,
        LedgerError,
        NotFittedError,
        UnknownIdError,
    )

    cases = [
        (ConfigError("bad flag"), 2),
        (UnknownIdError("no such user 'u9'"), 2),
        (BudgetExceededError("spent"), 3),
        (LedgerError("locked"), 3),
        (CorruptFileError("tampered"), 4),
    ]
    import dprec.cli.datasets as cmd

    for exc, code in cases:

        def raise_it(data_home, exc=exc):
            raise exc

        monkeypatch.setattr(cmd, "dataset_rows", raise_it)
        assert main(["datasets", "list", "--data-home", str(tmp_path)]) == code
        err = capsys.readouterr().err
        assert err.startswith("dprec: ") and str(exc) in err and "Traceback" not in err and err.count("\n") == 1
    monkeypatch.setattr(cmd, "dataset_rows", lambda data_home: (_ for _ in ()).throw(NotFittedError("a bug")))
    with pytest.raises(NotFittedError):  # a dprec error the CLI should never hit is a bug too
        main(["datasets", "list", "--data-home", str(tmp_path)])
    assert cli.EXIT_CODES


def test_usage_error_is_config_error():
    from dprec.bench import ConfigError as BenchConfigError
    from dprec.cli import UsageError
    from dprec.errors import ConfigError, DPRecError

    assert UsageError is ConfigError and BenchConfigError is ConfigError and issubclass(ConfigError, DPRecError)


def test_missing_file_exit_2(capsys, tmp_path):
    code, _, err = _run(capsys, "evaluate", "--ratings", tmp_path / "missing.csv", "--model", "popularity")
    assert code == 2 and "not found" in err and "missing.csv" in err


def test_dataset_and_ratings_are_exclusive(capsys, ratings_csv):
    code, _, err = _run(capsys, "evaluate", "--ratings", ratings_csv, "--dataset", "ml-100k", "--model", "popularity")
    assert code == 2 and "not allowed together" in err


def test_file_options_rejected_with_dataset(capsys):
    code, _, err = _run(capsys, "evaluate", "--dataset", "ml-100k", "--rating-bounds", "1,5", "--model", "popularity")
    assert code == 2 and "--rating-bounds applies to --ratings" in err


def test_unknown_dataset_exit_2(capsys, tmp_path):
    code, _, err = _run(
        capsys, "evaluate", "--dataset", "no-such-set", "--data-home", tmp_path, "--model", "popularity"
    )
    assert code == 2 and "no-such-set" in err


def test_absent_dataset_offline_exit_2(capsys, tmp_path):
    code, _, err = _run(capsys, "evaluate", "--dataset", "ml-1m", "--data-home", tmp_path, "--model", "popularity")
    assert code == 2 and "ml-1m" in err and "Traceback" not in err


@pytest.mark.realdata
@pytest.mark.skipif(not HAS_ML100K, reason="MovieLens-100K needs DPREC_DATA (e.g. DPREC_DATA=../shared/datasets)")
def test_evaluate_registered_dataset(capsys):
    code, out, err = _run(
        capsys,
        "evaluate",
        "--dataset",
        "ml-100k",
        "--data-home",
        SHARED_DATA,
        "--model",
        "popularity",
        "--split",
        "user",
        "--format",
        "json",
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["config"]["dataset"] == "ml-100k" and res["config"]["dataset_checksum"]
    assert res["config"]["n_ratings"] == 100_000
    assert 0.0 < res["precision_at_k"] < 1.0


# --------------------------------------------------------------------------------------------- demo
def test_demo_runs(capsys):
    code, out, err = _run(capsys, "demo", "--seed", "0", "--format", "json")
    assert code == 0, err
    res = json.loads(out)
    models = {(r["task"], r["model"]) for r in res["results"]}
    assert {
        ("ratings", "ALS"),
        ("ratings", "DPALS"),
        ("rankings", "DPPopularity"),
        ("rankings", "DPRanker (default)"),
    } <= models
    assert res["data"]["ratings"]["n_users"] == 2000 and res["data"]["rankings"]["n_users"] == 5000
    als = next(r for r in res["results"] if r["model"] == "ALS")
    assert math.isfinite(als["rmse"]) and als["ndcg_at_10"] > 0
    # the demo shows a DP ranker beating DP popularity at every finite ε it runs
    ndcg = {(r["model"], r["epsilon"]): r["ndcg_at_10"] for r in res["results"] if r["task"] == "rankings"}
    for eps in (1.0, 10.0):
        assert ndcg[("DPRanker (default)", eps)] > ndcg[("DPPopularity", eps)]


def test_demo_table(capsys):
    code, out, err = _run(capsys, "demo")
    assert code == 0, err
    assert "NDCG@10" in out and "RMSE" in out and "Popularity" in out and "DPRanker (default)" in out


def test_evaluate_split_strong(capsys, ratings_csv):
    args = ["evaluate", "--ratings", ratings_csv, "--rating-bounds", "1,5", "--model", "als", "--feedback"]
    args += ["implicit", "--factors", "3", "--iterations", "2", "--split", "strong", "--heldout-users", "10"]
    code, out, err = _run(capsys, *args, "--positive-threshold", "2.5", "--format", "json", "--k", "5")
    assert code == 0, err
    res = json.loads(out)
    assert res["config"]["split"] == "strong" and res["config"]["heldout_users"] == 10
    assert res["config"]["history_fraction"] == 0.8 and res["n_users_evaluated"] == 10
    assert 0 <= res["recall_at_20"] <= 1 and 0 <= res["ndcg_at_k"] <= 1
    code, out, err = _run(capsys, *args, "--history-fraction", "0.5")
    assert code == 0, err
    assert "strong generalisation: 10 held-out users" in out and "recall@20" in out


def test_evaluate_strong_flags_need_split_strong(capsys, ratings_csv):
    base = ["evaluate", "--ratings", ratings_csv, "--rating-bounds", "1,5", "--model", "popularity"]
    code, _, err = _run(capsys, *base, "--heldout-users", "10")
    assert code == 2 and "--split strong only" in err
    code, _, err = _run(capsys, *base, "--split", "strong")
    assert code == 2 and "--heldout-users" in err
    code, _, err = _run(capsys, *base, "--split", "strong", "--heldout-users", "60")
    assert code == 2 and "hold out fewer" in err
