"""`dprec train`, `recommend` (with --fold-in), `report`, model configs and the CLI guardrails, via CliRunner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dprec.cli import cli
from dprec.models import MODELS, Recommender

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shop(tmp_path, monkeypatch):
    """A tmp dir with ratings.csv (150 users × 40 items, 1–5, popularity skew), items.txt (ids 0…49),
    items.csv (a catalog column `sku`), new.csv (two new users) and an initialised ledger shop.sqlite."""
    g = np.random.default_rng(1)
    p = 1.0 / np.arange(1, 41)
    p /= p.sum()
    rows = [(u, int(i), int(g.integers(1, 6))) for u in range(150) for i in g.choice(40, 12, replace=False, p=p)]
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(tmp_path / "ratings.csv", index=False)
    (tmp_path / "items.txt").write_text("\n".join(str(i) for i in range(50)) + "\n")
    pd.DataFrame({"sku": range(50), "title": [f"t{i}" for i in range(50)]}).to_csv(tmp_path / "items.csv", index=False)
    (tmp_path / "new.csv").write_text("user,item,rating\n900,0,5\n900,1,4\n901,5,5\n901,45,3\n")
    monkeypatch.chdir(tmp_path)
    res = run("budget", "init", *SRC, "--epsilon", "10", "--delta", "1e-5", "--ledger", "shop.sqlite")
    assert res.exit_code == 0, res.output
    return tmp_path


SRC = ("--ratings", "ratings.csv", "--items", "items.txt", "--rating-bounds", "1,5")
NO_CATALOG = ("--ratings", "ratings.csv", "--rating-bounds", "1,5")  # the same ratings without a public catalog
DP = ("--epsilon", "1", "--delta", "1e-5")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def train(*extra):
    return run("train", *SRC, *extra)


# --------------------------------------------------------------------------------------------- train
def test_train_dp_needs_a_ledger_or_no_ledger(shop):
    res = train("--model", "dp-popularity", *DP, "--out", "m.npz")
    assert res.exit_code == 2 and "--ledger PATH" in res.output and "--no-ledger" in res.output
    assert not (shop / "m.npz").exists()


def test_train_charges_ledger_and_reports_fresh_entropy(shop):
    res = train("--model", "dpals", *DP, "--ledger", "shop.sqlite", "--out", "m.npz", "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["privacy"]["noise"].startswith("fresh OS entropy") and "charged" in out["privacy"]["ledger"]
    assert out["public_items"] is True and out["n_items"] == 50  # the catalog: unrated items included
    from dprec.privacy import Ledger

    assert len(Ledger.open(shop / "shop.sqlite").charges()) == 1


def test_no_ledger_and_seed_are_recorded_in_the_report(shop):
    res = train(
        "--model", "dp-itemitem", *DP, "--no-ledger", "--seed", "3", "--out", "m.npz", "--export-public", "p.npz"
    )
    assert res.exit_code == 0, res.output
    assert "warning: DPItemItem: --seed is reproducibility mode" in res.output and "omit --seed" in res.output
    for f in ("m.npz", "p.npz"):
        rep = json.loads(run("report", f, "--format", "json").output)["privacy"]
        assert "--no-ledger" in rep["ledger"] and "reproducibility mode" in rep["noise"]
        assert "3" not in rep["noise"]  # never the seed itself
    md = run("report", "m.npz").output
    assert "--no-ledger" in md and "reproducibility mode" in md


def test_ledger_and_no_ledger_exclusive(shop):
    res = train("--model", "dp-popularity", *DP, "--ledger", "shop.sqlite", "--no-ledger", "--out", "m.npz")
    assert res.exit_code == 2 and "not allowed together" in res.output


def test_budget_refusal_exit_3_writes_nothing(shop):
    res = train(
        "--model", "dp-popularity", "--epsilon", "20", "--delta", "1e-5", "--ledger", "shop.sqlite", "--out", "m.npz"
    )
    assert res.exit_code == 3 and "budget" in res.output and not (shop / "m.npz").exists()


def test_non_private_model_refuses_privacy_flags_and_export(shop):
    res = train("--model", "als", "--no-ledger", "--out", "m.npz")
    assert res.exit_code == 2 and "--no-ledger applies only" in res.output
    res = train("--model", "als", "--factors", "4", "--iterations", "2", "--out", "m.npz", "--export-public", "p.npz")
    assert res.exit_code == 2 and "--export-public" in res.output
    res = train("--model", "als", "--factors", "4", "--iterations", "2", "--out", "m.npz")
    assert res.exit_code == 0, res.output
    assert "None: the model is not private" in run("report", "m.npz").output


def test_out_directory_must_exist(shop):
    res = train("--model", "popularity", "--out", "nowhere/m.npz")
    assert res.exit_code == 2 and "--out nowhere/m.npz: the directory" in res.output and "mkdir -p" in res.output


@pytest.mark.parametrize("flag", ["--out", "--export-public"])
def test_bad_output_path_is_refused_before_the_ledger_is_charged(shop, flag):
    """A directory (or a missing folder) as an output path is found before the DP fit, so no budget is spent."""
    (shop / "adir").mkdir()
    paths = {"--out": "m.npz", "--export-public": "p.npz", flag: "adir"}
    res = train("--model", "dp-popularity", *DP, "--ledger", "shop.sqlite", *(x for kv in paths.items() for x in kv))
    assert res.exit_code == 2 and f"{flag} adir: is a directory" in res.output and "Traceback" not in res.output
    shown = run("budget", "show", "--ledger", "shop.sqlite", "--format", "json")
    assert json.loads(shown.stdout)["charges"] == [], shown.output
    assert not (shop / "m.npz").exists() and not (shop / "p.npz").exists()


# --------------------------------------------------------------------------------------------- recommend
def test_recommend_formats_and_fold_in(shop):
    assert (
        train(
            "--model", "dp-itemitem", *DP, "--ledger", "shop.sqlite", "--out", "m.npz", "--export-public", "p.npz"
        ).exit_code
        == 0
    )
    res = run("recommend", "m.npz", "--user", "3", "--user", "7", "-n", "4", "--format", "json")
    assert res.exit_code == 0, res.output
    recs = json.loads(res.output)["recommendations"]
    assert [r["user"] for r in recs] == [3, 7] and all(len(r["items"]) == 4 for r in recs)
    (shop / "users.txt").write_text("3\n7\n")
    csv = run("recommend", "m.npz", "--users-file", "users.txt", "-n", "2", "--format", "csv").output.splitlines()
    assert csv[0] == "user,rank,item,score" and len(csv) == 5
    table = run("recommend", "m.npz", "--user", "3", "-n", "2").output
    assert table.splitlines()[0].split() == ["user", "rank", "item", "score"]
    # new users from the public artifact: their own ratings only, seen items filtered
    res = run("recommend", "p.npz", "--fold-in", "new.csv", "-n", "3", "--format", "json")
    assert res.exit_code == 0, res.output
    recs = {r["user"]: [i["item"] for i in r["items"]] for r in json.loads(res.output)["recommendations"]}
    assert set(recs) == {900, 901} and not {0, 1} & set(recs[900]) and not {5, 45} & set(recs[901])
    # a public artifact holds no users
    res = run("recommend", "p.npz", "--user", "3")
    assert res.exit_code == 2 and "3" in res.output


def test_recommend_errors(shop):
    assert (
        train(
            "--model", "dp-popularity", *DP, "--ledger", "shop.sqlite", "--out", "m.npz", "--export-public", "p.npz"
        ).exit_code
        == 0
    )
    res = run("recommend", "m.npz", "--user", "9999")
    assert res.exit_code == 2 and "9999" in res.output
    res = run("recommend", "m.npz", "--user", "abc")
    assert res.exit_code == 2 and "--user" in res.output
    res = run("recommend", "p.npz")
    assert res.exit_code == 2 and "--fold-in" in res.output
    res = run("recommend", "missing.npz", "--user", "1")
    assert res.exit_code == 2 and "not found" in res.output
    (shop / "old.csv").write_text("user,item,rating\n3,0,5\n")
    res = run("recommend", "m.npz", "--fold-in", "old.csv")
    assert res.exit_code == 2 and "already in the model" in res.output
    res = run("recommend", "m.npz", "--user", "3", "-n", "0")
    assert res.exit_code == 2 and "-n" in res.output


def test_corrupt_model_file_exit_4(shop):
    assert train("--model", "popularity", "--out", "m.npz").exit_code == 0
    data = (shop / "m.npz").read_bytes()
    (shop / "m.npz").write_bytes(data[: len(data) // 2])
    for cmd in (("recommend", "m.npz", "--user", "3"), ("report", "m.npz")):
        res = run(*cmd)
        assert res.exit_code == 4 and "untrusted file" in res.output


# --------------------------------------------------------------------------------------------- config
def test_every_config_field_is_a_flag_with_help_and_default(shop):
    from dprec.cli.options import hyperparameter_specs

    specs = hyperparameter_specs()
    help_text = run("train", "--help").output
    skip = {"rng", "num_threads", "epsilon", "delta", "privacy_unit", "secure_noise"}
    for name, cls in MODELS.items():
        for field in set(cls.Config.model_fields) - skip:
            assert name in specs[field]["models"]
            assert f"--{field.replace('_', '-')}" in help_text
            assert (
                "default" in specs[field]["help"] and name in specs[field]["help"] or len(specs[field]["models"]) >= 1
            )
    for flag in ("--epsilon", "--delta", "--privacy-unit", "--secure-noise", "--seed", "--threads", "--items"):
        assert flag in help_text
    assert help_text.count("docs/choosing-epsilon.md") >= 1


def test_toml_config_with_flag_override(shop):
    (shop / "m.toml").write_text('model = "dpals"\n[params]\nfactors = 2\niterations = 1\nmax_ratings_per_user = 10\n')
    res = train("--config", "m.toml", *DP, "--iterations", "0", "--no-ledger", "--out", "m.npz")
    assert res.exit_code == 0, res.output
    p = Recommender.load(shop / "m.npz").get_params()
    assert p["factors"] == 2 and p["iterations"] == 0 and p["max_ratings_per_user"] == 10  # the flag wins
    # privacy parameters can live in the config too
    (shop / "p.toml").write_text('model = "dp-popularity"\n[params]\nepsilon = 0.5\ndelta = 1e-6\n')
    res = train("--config", "p.toml", "--no-ledger", "--out", "p.npz", "--format", "json")
    assert res.exit_code == 0 and json.loads(res.output)["privacy"]["epsilon"] == 0.5


@pytest.mark.parametrize(
    "toml, extra, match",
    [
        ('model = "dpals"\n[params]\nfactorz = 2\n', (), "m.toml: params.factorz"),
        ('model = "dpals"\n[params]\nfactorz = 2\n', (), "did you mean 'factors'"),
        ('model = "dpals"\n[params]\nfactors = -2\n', (), "m.toml: params.factors"),
        ('model = "dpals"\n[params]\nfactors = 2\n', ("--model", "als"), "disagrees"),
        ('modell = "dpals"\n', (), "unknown key 'modell'"),
        ("model = [\n", (), "not valid TOML"),
        ("[params]\nfactors = 2\n", (), "--model"),
    ],
)
def test_toml_config_errors_name_the_key(shop, toml, extra, match):
    (shop / "m.toml").write_text(toml)
    res = train("--config", "m.toml", *DP, "--no-ledger", "--out", "m.npz", *extra)
    assert res.exit_code == 2 and match in res.output, res.output
    assert "Traceback" not in res.output


# --------------------------------------------------------------------------------------------- guardrails
def test_errors_name_flags_not_python_arguments(shop):
    res = train("--model", "dpals", "--factors", "-3", *DP, "--no-ledger", "--out", "m.npz")
    assert res.exit_code == 2 and "--factors" in res.output and "factors:" not in res.output.replace("--factors:", "")
    res = train("--model", "dpals", "--epsilon", "1", "--no-ledger", "--out", "m.npz")
    assert res.exit_code == 2 and "--delta" in res.output and "delta=" not in res.output
    res = train("--model", "dpals", "--max-ratings-per-user", "0", *DP, "--no-ledger", "--out", "m.npz")
    assert res.exit_code == 2 and "--max-ratings-per-user" in res.output and "max_ratings_per_user" not in res.output
    res = train("--model", "popularity", "--factors", "3", "--out", "m.npz")
    assert res.exit_code == 2 and "does not take --factors" in res.output and "als" in res.output
    res = run("train", "--ratings", "ratings.csv", "--synthetic", "ratings", "--model", "popularity", "--out", "m.npz")
    assert res.exit_code == 2 and "--ratings and --synthetic" in res.output


def test_ignored_threads_and_alpha_warn_naming_the_flag(shop):
    res = train("--model", "popularity", "--threads", "2", "--out", "m.npz")
    assert res.exit_code == 0 and "warning: --threads is ignored by model 'popularity'" in res.output
    res = train("--model", "als", "--alpha", "5", "--factors", "2", "--iterations", "1", "--out", "m.npz")
    assert res.exit_code == 0 and "warning: --alpha is ignored by model 'als' with --feedback explicit" in res.output
    res = train(
        "--model",
        "als",
        "--feedback",
        "implicit",
        "--alpha",
        "5",
        "--factors",
        "2",
        "--iterations",
        "1",
        "--out",
        "m.npz",
    )
    assert res.exit_code == 0 and "warning" not in res.output
    res = train("--model", "als", "--threads", "1", "--factors", "2", "--iterations", "1", "--out", "m.npz")
    assert res.exit_code == 0 and "warning" not in res.output


def test_dp_item_selection_with_few_items_points_to_items(shop):
    # without --items: DP item selection on a small dataset keeps only the frequent items
    res = run("train", *NO_CATALOG, "--model", "dp-popularity", *DP, "--no-ledger", "--out", "m.npz")
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("warning: DP item selection")]
    assert len(lines) == 1 and "--items CATALOG_FILE" in lines[0]
    res = train("--model", "dp-popularity", *DP, "--no-ledger", "--out", "m.npz")
    assert "DP item selection" not in res.output


def test_items_as_a_csv_column_and_catalog_checks(shop):
    base = ("--ratings", "ratings.csv", "--rating-bounds", "1,5", "--model", "popularity", "--out", "m.npz")
    res = run("train", *base, "--items", "items.csv", "--items-col", "sku", "--format", "json")
    assert res.exit_code == 0 and json.loads(res.output)["n_items"] == 50
    res = run("train", *base, "--items", "items.csv")
    assert res.exit_code == 2 and "--items-col" in res.output
    (shop / "short.txt").write_text("0\n1\n2\n")
    res = run("train", *base, "--items", "short.txt")
    assert res.exit_code == 2 and "missing from the catalog" in res.output
    res = run("train", "--synthetic", "ratings", "--items", "items.txt", "--model", "popularity", "--out", "m.npz")
    assert res.exit_code == 2 and "--items applies to --ratings" in res.output


def test_budget_init_with_items_and_synthetic_sources(shop):
    # the catalog is part of the dataset's identity: the ledger of ratings+items refuses ratings alone
    res = run("train", *NO_CATALOG, "--model", "dp-popularity", *DP, "--ledger", "shop.sqlite", "--out", "m.npz")
    assert res.exit_code == 3 and "dataset" in res.output
    res = run("budget", "init", "--synthetic", "ratings", "--epsilon", "2", "--delta", "1e-5", "--ledger", "syn.sqlite")
    assert res.exit_code == 0, res.output
    res = run(
        "train", "--synthetic", "ratings", "--model", "dp-baseline", *DP, "--ledger", "syn.sqlite", "--out", "s.npz"
    )
    assert res.exit_code == 0, res.output
    assert "spent:     ε = 1.0000" in run("budget", "show", "--ledger", "syn.sqlite").output


def test_spent_and_remaining_delta_read_sensibly(shop):
    run("budget", "init", *NO_CATALOG, "--epsilon", "4", "--delta", "1e-5", "--ledger", "sel.sqlite")
    res = run("train", *NO_CATALOG, "--model", "dp-popularity", *DP, "--ledger", "sel.sqlite", "--out", "m.npz")
    assert res.exit_code == 0, res.output
    out = run("budget", "show", "--ledger", "sel.sqlite").output
    lines = {ln.split(":")[0].strip(): ln for ln in out.splitlines() if ":" in ln}
    # zCDP: the spent ε is stated at the total δ (not "spent δ = total δ" next to a non-zero "remaining δ")
    assert "at δ = 1e-05" in lines["spent"] and "stated at the total δ" in lines["spent"]
    assert "explicit-δ steps (DP item selection)" in out
    assert "δ left for further fits" in lines["remaining"]
    assert (
        "spent:     ε = 0.0000, δ = 0"
        in run(
            "budget", "init", "--synthetic", "ratings", "--epsilon", "1", "--delta", "1e-5", "--ledger", "z.sqlite"
        ).output
    )


def test_budget_show_into_a_closed_pipe_is_quiet(shop):
    from dprec.privacy import Ledger

    led = Ledger.open(shop / "shop.sqlite")
    for i in range(400):  # a long table: more than a pipe buffer
        led.charge(rho=1e-6, model="DPPopularity", mechanism="gaussian (zCDP)", label=f"fit {i} " + "x" * 150)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    cmd = f"{sys.executable} -m dprec.cli budget show --ledger shop.sqlite | head -n 3"
    proc = subprocess.run(["bash", "-c", "set -o pipefail; " + cmd], env=env, capture_output=True, text=True, cwd=shop)
    assert proc.stdout.count("\n") == 3 and proc.stdout.startswith("privacy ledger")
    assert "BrokenPipe" not in proc.stderr and "Traceback" not in proc.stderr and proc.stderr == ""
    assert proc.returncode in (0, 1)  # click's convention for a closed stdout: exit 1, silently


def test_evaluate_says_raw_data_and_not_for_release(shop):
    res = run("evaluate", *SRC, "--model", "dp-popularity", *DP)
    assert res.exit_code == 0, res.output
    assert "raw held-out data" in res.output and "not differentially private" in res.output
    assert "not for release" in res.output and "warning: --seed" not in res.output


def test_bench_is_a_group_and_old_forms_work(shop):
    assert "run" in run("bench", "--help").output and "summary" in run("bench", "--help").output
    res = run("bench", "summary", "nowhere")
    assert res.exit_code == 2
    res = run("bench-summary", "nowhere")
    assert res.exit_code == 2
    res = run("bench", "nowhere.toml", "--out", "o")  # `dprec bench CONFIG --out DIR` still means `bench run`
    assert res.exit_code == 2 and "nowhere.toml" in res.output


def test_a_model_registered_after_the_cli_gets_its_flags(shop, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "models"))
    import item_mean_model  # noqa: F401  (registers "item-mean", whose Config has `shrinkage`)

    res = run("evaluate", *SRC, "--model", "item-mean", "--shrinkage", "3", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["config"]["model_params"]["shrinkage"] == 3.0
    assert "--shrinkage" in run("train", "--help").output
    res = run("evaluate", *SRC, "--model", "popularity", "--shrinkage", "3")
    assert res.exit_code == 2 and "does not take --shrinkage (it applies to item-mean)" in res.output


def test_models_list_and_show():
    res = run("models", "list", "--format", "json")
    assert res.exit_code == 0 and {r["name"] for r in json.loads(res.output)} == set(MODELS)
    res = run("models", "show", "dpals", "--format", "json")
    rows = {r["key"]: r for r in json.loads(res.output)["parameters"]}
    assert rows["max_ratings_per_user"]["flag"] == "--max-ratings-per-user" and rows["epsilon"]["required"]
    assert rows["clip_norm"]["default"] == 1.0 and "rng" not in rows
    res = run("models", "show", "dpalz")
    assert res.exit_code == 2 and "did you mean 'dpals'" in res.output


def test_report_carries_no_user_count_seed_or_fingerprint(shop):
    res = train("--model", "dpals", *DP, "--no-ledger", "--seed", "4242", "--out", "m.npz")
    assert res.exit_code == 0, res.output
    for fmt in ("md", "json"):
        text = run("report", "m.npz", "--format", fmt).output
        assert "150" not in text and "4242" not in text  # 150 users in the data
        assert "per-user rows" in text


def test_epsilon_inf_is_labelled_non_private(shop):
    res = train("--model", "dp-popularity", "--epsilon", "inf", "--out", "m.npz", "--export-public", "p.npz")
    assert res.exit_code == 0, res.output
    assert "none: ε = ∞" in res.output and "NOT a DP artifact" in res.output and "the DP artifact" not in res.output
    assert "**None: ε = ∞" in run("report", "p.npz").output
    res = train("--model", "dp-popularity", "--epsilon", "inf", "--ledger", "shop.sqlite", "--out", "m.npz")
    assert res.exit_code == 2 and "non-private fit" in res.output


def test_library_hints_become_commands(shop):
    res = train("--model", "dp-popularity", *DP, "--ledger", "missing.sqlite", "--out", "m.npz")
    assert res.exit_code == 3 and "`dprec budget init`" in res.output and "Ledger.create" not in res.output
    (shop / "x.npz").write_text("not a model")
    res = run("recommend", "x.npz", "--user", "1")
    assert res.exit_code == 4 and "not a dprec model file" in res.output and "pickle" not in res.output


def test_warnings_are_one_line_on_stderr_and_json_stays_clean(shop):
    res = train(
        "--model",
        "dpals",
        "--epsilon",
        "1",
        "--delta",
        "0.5",
        "--seed",
        "1",
        "--no-ledger",
        "--out",
        "m.npz",
        "--format",
        "json",
    )
    assert res.exit_code == 0, res.output
    json.loads(res.stdout)  # stdout is only the JSON document
    warns = res.stderr.splitlines()
    assert len(warns) >= 2 and all(w.startswith("warning: ") for w in warns)
    assert any("--delta 0.5" in w for w in warns) and any("--seed" in w for w in warns)
    assert "warning: " not in res.stdout and "PrivacyWarning" not in res.stderr
    res = run("recommend", "m.npz", "--user", "1", "--user", "2", "--format", "json")
    assert res.stderr.count("warning: ") == 1 and "RankingWarning" not in res.stderr  # once per command
    assert len(json.loads(res.stdout)["recommendations"]) == 2


def test_evaluate_with_items_and_synthetic(shop):
    res = run("evaluate", *SRC, "--model", "dp-popularity", *DP, "--format", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)["config"]["public_items"] is True
    res = run("evaluate", "--synthetic", "ratings", "--model", "popularity", "--format", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)["config"]["n_users"] == 2000
