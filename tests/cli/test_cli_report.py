"""`dprec report` as a model card: DP counts only, no seed / fingerprint; --evaluation and --audit opt-in."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_cli_audit import N_USERS, SRC, shop  # noqa: F401  (fixture)

from dprec.cli import cli

SEED = "80417"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def trained(shop):  # noqa: F811
    res = run("budget", "init", *SRC, "--epsilon", "10", "--delta", "1e-5", "--ledger", "shop.sqlite")
    assert res.exit_code == 0, res.output
    res = run("train", *SRC, "--model", "dp-popularity", "--epsilon", "2", "--delta", "1e-5",
              "--ledger", "shop.sqlite", "--seed", SEED, "--out", "m.npz", "--export-public", "p.npz")  # fmt: skip
    assert res.exit_code == 0, res.output
    return shop


def test_card_sections_and_ledger(trained):
    md = run("report", "p.npz", "--ledger", "shop.sqlite").stdout
    for heading in ("# Model card", "## Data", "## Guarantee", "## Release steps", "## Public assumptions",
                    "## What this file contains", "## Ledger", "## Known limitations"):  # fmt: skip
        assert heading in md, heading
    assert "dataset: ratings.csv" in md and "DP artifact" in md and "intended use" in md
    assert "## Evaluation" not in md and "## Audit" not in md  # opt-in
    card = json.loads(run("report", "p.npz", "--ledger", "shop.sqlite", "--format", "json").stdout)
    assert card["ledger"]["spent_epsilon"] == pytest.approx(2.0) and card["data"]["n_items"] == 40
    for text in (md, json.dumps(card)):
        assert str(N_USERS) not in text and SEED not in text and "sha256" not in text


def test_card_with_evaluation_and_audit(trained):
    ev = run("evaluate", *SRC, "--model", "dp-popularity", "--epsilon", "2", "--delta", "1e-5", "--split", "user",
             "--seed", SEED, "--format", "json")  # fmt: skip
    assert ev.exit_code == 0, ev.output
    (trained / "eval.json").write_text(ev.stdout)
    assert str(N_USERS) in ev.stdout  # the evaluation output has the exact count; the card must not
    au = run("audit", *SRC, "--model", "dp-popularity", "--epsilon", "2", "--delta", "1e-5", "--seed", SEED,
             "--privacy-audit", "--canaries", "60", "--out", "audit.json")  # fmt: skip
    assert au.exit_code == 0, au.output
    res = run("report", "p.npz", "--evaluation", "eval.json", "--audit", "audit.json")
    assert res.exit_code == 0, res.output
    md = res.stdout
    assert "## Evaluation (not DP)" in md and "## Audit (not DP)" in md and md.count("NOT differentially private") == 2
    assert "Empirical privacy (canaries)" in md
    assert str(N_USERS) not in md and SEED not in md and "sha256" not in md
    card = json.loads(run("report", "p.npz", "--evaluation", "eval.json", "--format", "json").stdout)
    assert set(card["evaluation"]["metrics"]) >= {"ndcg_at_k", "recall_at_k"} and "audit" not in card
    # results of another ε are refused, naming the flag
    au = run("audit", *SRC, "--model", "dp-popularity", "--epsilon", "4", "--delta", "1e-5", "--out", "a4.json")
    assert au.exit_code == 0
    res = run("report", "p.npz", "--audit", "a4.json")
    assert res.exit_code == 2 and "--audit" in res.output and "no run at the model's ε = 2" in res.output
    res = run("report", "p.npz", "--evaluation", "audit.json")
    assert res.exit_code == 2 and "--evaluation" in res.output and "dprec evaluate" in res.output


def test_dataset_name_keeps_only_the_public_part(trained):
    card = json.loads(run("report", "m.npz", "--dataset-name", "shop:0123abcd", "--format", "json").stdout)
    assert card["data"]["dataset"] == "shop" and "0123abcd" not in json.dumps(card)
