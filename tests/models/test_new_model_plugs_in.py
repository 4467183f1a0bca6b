"""A new model is one file plus ``@register_model``: the contract, the CLI and the bench pick it up untouched.

The model is ``item_mean_model.ItemMean`` (registered as ``"item-mean"``); nothing in dprec names it.
"""

from __future__ import annotations

import json

import item_mean_model  # noqa: F401  (registers "item-mean")
import numpy as np
import pandas as pd
from item_mean_model import ItemMean

from dprec.bench.runner import run_bench
from dprec.cli import main
from dprec.models import get_model, model_names
from dprec.testing import ModelContract


class TestItemMeanContract(ModelContract):
    """Every check of the shared model contract, run against the new model."""

    supports_similar_items = False

    def make_model(self):
        return ItemMean(shrinkage=2.0)


def test_registered_with_its_config():
    assert "item-mean" in model_names() and get_model("item-mean") is ItemMean
    assert ItemMean(shrinkage=1.0).get_params()["shrinkage"] == 1.0


def test_cli_evaluates_it(tmp_path, capsys):
    g = np.random.default_rng(0)
    rows = [(f"u{u}", int(i), int(g.integers(1, 6))) for u in range(40) for i in g.choice(30, 10, replace=False)]
    path = tmp_path / "ratings.csv"
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(path, index=False)
    code = main(
        ["evaluate", "--ratings", str(path), "--rating-bounds", "1,5", "--model", "item-mean", "--format", "json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    res = json.loads(out)
    assert res["config"]["model"] == "item-mean" and 0 < res["rmse"] < 4


def test_bench_runs_it(tmp_path):
    cfg = tmp_path / "toy.toml"
    cfg.write_text("""
[run]
name = "toy"
seeds = [0]
metrics = ["rmse", "ndcg_at_k"]

[[datasets]]
label = "synthetic"
synthetic = { n_users = 200, n_items = 80, rank = 4, seed = 0 }

[[models]]
name = "item-mean"
params = { shrinkage = 3.0 }
""")
    rows = run_bench(cfg, tmp_path / "out", progress=False)
    assert [r["model"]["name"] for r in rows] == ["item-mean"]
    assert 0 < rows[0]["metrics"]["rmse"] < 4
