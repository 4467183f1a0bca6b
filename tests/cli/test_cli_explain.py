"""`dprec recommend MODEL --user U --explain ITEM`: the plain-English text and the shares table, in every format."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dprec.cli import cli
from dprec.models import Recommender


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def model(tmp_path, monkeypatch):
    g = np.random.default_rng(2)
    rows = [(u, int(i), int(g.integers(1, 6))) for u in range(60) for i in g.choice(30, 8, replace=False)]
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(tmp_path / "ratings.csv", index=False)
    monkeypatch.chdir(tmp_path)
    res = run("train", "--ratings", "ratings.csv", "--rating-bounds", "1,5", "--model", "als", "--out", "m.npz")
    assert res.exit_code == 0, res.output
    return tmp_path / "m.npz"


def test_explain_table_text_and_shares(model):
    m = Recommender.load(str(model))
    df = m.explain(3, 7)
    res = run("recommend", model, "--user", "3", "--explain", "7")
    assert res.exit_code == 0, res.output
    out = res.output
    assert df.attrs["text"] in out and "user 3, item 7: score" in out
    lines = out.splitlines()
    header = next(k for k, line in enumerate(lines) if line.split()[:2] == ["rated", "item"])
    first = lines[header + 2].split()
    assert int(first[0]) == df["item"].iloc[0] and first[-1] == f"{df['share'].iloc[0]:+.1%}"


def test_explain_json_md_csv(model):
    res = run("recommend", model, "--user", "3", "--user", "5", "--explain", "7", "--format", "json", "-n", "3")
    assert res.exit_code == 0, res.output
    ex = json.loads(res.output)["explanations"]
    assert [e["user"] for e in ex] == [3, 5] and all(len(e["rows"]) <= 3 for e in ex)
    for e in ex:
        total = e["baseline"] + sum(r["contribution"] for r in e["rows"])
        if e["rated_items"] == len(e["rows"]):
            assert np.isclose(total, e["ranking_score"])
        assert e["text"] and e["exact"] is True
    md = run("recommend", model, "--user", "3", "--explain", "7", "--format", "md").output
    assert "| rated item | rating | contribution | share |" in md and "|---|---|---|---|" in md
    csv = run("recommend", model, "--user", "3", "--explain", "7", "--format", "csv").output.splitlines()
    assert csv[0] == "user,item,rated_item,rating,contribution,share" and len(csv) > 1


def test_explain_unknown_item_is_a_clear_error(model):
    res = CliRunner().invoke(cli, ["recommend", str(model), "--user", "3", "--explain", "999"])
    assert res.exit_code != 0 and "999" in res.output and "Traceback" not in res.output


@pytest.mark.skipif(
    not os.path.isfile(os.path.join(os.environ.get("DPREC_DATA", ""), "ml-100k", "u.item")),
    reason="needs MovieLens-100K under $DPREC_DATA",
)
def test_explain_with_movielens_titles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [(1, 50, 5), (1, 172, 4), (1, 1, 3), (2, 50, 5), (2, 181, 5), (2, 172, 5), (3, 181, 1), (3, 1, 4)]
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv("r.csv", index=False)
    assert (
        run("train", "--ratings", "r.csv", "--rating-bounds", "1,5", "--model", "als", "--out", "m.npz").exit_code == 0
    )
    res = run("recommend", "m.npz", "--user", "1", "--explain", "181", "--titles", "ml-100k")
    assert res.exit_code == 0, res.output
    assert "*Return of the Jedi (1983)*" in res.output and "Star Wars (1977)" in res.output
