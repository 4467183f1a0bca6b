"""`dprec audit` via CliRunner: group audit, --groups from a user-attributes file, --privacy-audit, plots, errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dprec.cli import cli

N_USERS = 157


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def shop(tmp_path, monkeypatch):
    """ratings.csv (157 users × 40 items, 1–5, popularity skew), items.txt and users.csv (a `segment` and a
    `region` attribute per user)."""
    g = np.random.default_rng(3)
    p = 1.0 / np.arange(1, 41)
    p /= p.sum()
    rows = [(u, int(i), int(g.integers(1, 6))) for u in range(N_USERS) for i in g.choice(40, 10, replace=False, p=p)]
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(tmp_path / "ratings.csv", index=False)
    (tmp_path / "items.txt").write_text("\n".join(str(i) for i in range(40)) + "\n")
    users = pd.DataFrame(
        {"user": range(N_USERS), "segment": ["a" if u % 3 else "b" for u in range(N_USERS)], "region": "x"}
    )
    users.to_csv(tmp_path / "users.csv", index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


SRC = ("--ratings", "ratings.csv", "--items", "items.txt", "--rating-bounds", "1,5")


def test_audit_groups_from_a_user_attributes_file(shop):
    res = run(
        "audit", *SRC, "--model", "dp-popularity", "--epsilon", "1", "--epsilon", "8", "--delta", "1e-5",
        "--groups", "segment", "--user-attributes", "users.csv", "--format", "json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["kind"] == "dprec-audit" and "not differentially private" in out["notice"]
    assert [r["epsilon"] for r in out["runs"]] == [1.0, 8.0]
    groups = {(g["attribute"], g["group"]) for g in out["runs"][0]["bias"]["groups"]}
    assert groups == {("activity", f"Q{q}") for q in range(1, 5)} | {("segment", "a"), ("segment", "b")}
    seg = [g for g in out["runs"][0]["bias"]["groups"] if g["attribute"] == "segment"]
    assert sum(g["n_users"] for g in seg) == N_USERS
    flat = out["runs"][1]["flat_metrics"]
    assert "gap_ndcg_at_k[segment]" in flat and "gini_exposure" in flat
    assert out["runs"][0]["privacy_audit"] is None
    md = run("audit", *SRC, "--model", "popularity", "--groups", "segment", "--user-attributes", "users.csv")
    assert md.exit_code == 0, md.output
    assert "# Audit: popularity" in md.stdout and "## ε = ∞" in md.stdout and "segment" in md.stdout


def test_privacy_audit_plots_and_out_file(shop):
    res = run(
        "audit", *SRC, "--model", "dp-popularity", "--epsilon", "0.5", "--epsilon", "2", "--delta", "1e-5",
        "--privacy-audit", "--canaries", "100", "--plot-dir", "plots", "--out", "audit.json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Privacy audit: consistent" in res.stdout
    doc = json.loads((shop / "audit.json").read_text())
    pa = [r["privacy_audit"] for r in doc["runs"]]
    assert [p["claimed_epsilon"] for p in pa] == [0.5, 2.0] and all(p["m"] == 100 for p in pa)
    assert all(p["epsilon_lower"] <= p["claimed_epsilon"] for p in pa)
    names = sorted(os.listdir(shop / "plots"))
    assert names == ["dp-popularity__ndcg_at_k__activity.png", "dp-popularity__privacy_audit.png"]
    assert all((shop / "plots" / n).stat().st_size > 1000 for n in names)
    assert sorted(os.path.basename(p) for p in doc["plots"]) == names


def test_synthetic_source(shop):
    res = run("audit", "--synthetic", "rankings", "--model", "dp-popularity", "--epsilon", "1", "--delta", "1e-5",
              "--k", "5", "--format", "json")  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["data"] == "--synthetic rankings" and out["k"] == 5 and out["runs"][0]["bias"]["k"] == 5


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--model", "dp-popularity", "--delta", "1e-5"), "--epsilon"),
        (("--model", "popularity", "--privacy-audit"), "--privacy-audit applies to DP models"),
        (("--model", "popularity", "--epsilon", "1"), "--epsilon applies only"),
        (("--model", "dp-popularity", "--epsilon", "inf", "--privacy-audit"), "finite --epsilon"),
        (("--model", "popularity", "--groups", "segment"), "--user-attributes CSV"),
        (("--model", "popularity", "--groups", "segmnt", "--user-attributes", "users.csv"), "did you mean 'segment'"),
        (("--model", "popularity", "--user-attributes", "users.csv"), "needs --groups"),
        (("--model", "popularity", "--user-attributes", "nope.csv", "--groups", "x"), "--user-attributes"),
        (("--model", "popularity", "--test-fraction", "1.5"), "--test-fraction"),
        (("--model", "popularity", "--k", "0"), "--k"),
    ],
)
def test_errors_name_the_flag_exit_2(shop, args, needle):
    res = run("audit", *SRC, *args)
    assert res.exit_code == 2 and needle in res.output, res.output


def test_the_default_dp_ranker_is_auditable(shop):
    # the ranker releases its chosen model's DP item counts, which the canary audit scores
    res = run("audit", *SRC, "--model", "dp-ranker", "--epsilon", "2", "--delta", "1e-5", "--privacy-audit",
              "--canaries", "50", "--format", "json")  # fmt: skip
    assert res.exit_code == 0, res.output
    pa = json.loads(res.stdout)["runs"][0]["privacy_audit"]
    assert pa["statistic"] == "item_counts_" and pa["epsilon_lower"] <= 2.0 and not pa["violation"]


def test_privacy_audit_needs_a_scored_statistic(shop):
    res = run("audit", *SRC, "--model", "dp-popularity", "--epsilon", "1", "--delta", "1e-5", "--privacy-audit",
              "--canaries", "50", "--audit-statistic", "nope_")  # fmt: skip
    assert res.exit_code == 2 and "--privacy-audit" in res.output and "nope_" in res.output


@pytest.mark.realdata
def test_ml100k_groups(tmp_path):
    if not os.path.isdir(os.path.join(os.environ.get("DPREC_DATA", ""), "ml-100k")):
        pytest.skip("needs DPREC_DATA with ml-100k")
    res = run("audit", "--dataset", "ml-100k", "--model", "dp-popularity", "--epsilon", "1", "--delta", "1e-5",
              "--groups", "gender", "--groups", "age_band", "--format", "json")  # fmt: skip
    assert res.exit_code == 0, res.output
    gaps = {(g["attribute"], g["metric"]) for g in json.loads(res.stdout)["runs"][0]["bias"]["gaps"]}
    assert ("gender", "ndcg_at_k") in gaps and ("age_band", "ndcg_at_k") in gaps
