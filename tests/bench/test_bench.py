"""Benchmark suite (dprec.bench): config validation, runs, reproducibility, resume after a kill, summaries."""

from __future__ import annotations

import csv
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dprec.bench import ConfigError, read_results, run_bench, strip_timing, summarize_dir
from dprec.bench.config import load_config
from dprec.errors import CorruptFileError

TINY = """
[run]
name = "tiny"
seeds = [0, 1]
split = "random"
test_fraction = 0.2
split_seed = 0
k = 5
metrics = ["rmse", "mae", "precision_at_k", "ndcg_at_k"]
delta = 1e-6
privacy_unit = "user"

[[datasets]]
label = "syn"
synthetic = { n_users = 150, n_items = 80, rank = 3, mean_ratings_per_user = 15, seed = 0 }

[[models]]
name = "popularity"

[[models]]
name = "als"
label = "ALS"
params = { factors = 4, iterations = 2 }

[[models]]
name = "dp-baseline"
epsilons = [1, inf]
"""


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


HAS_MATPLOTLIB = _has("matplotlib")  # plots are the [bench] extra


def _config(tmp_path: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _csv_without_timing(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    drop = rows[0].index("fit_seconds_mean")
    return [[v for i, v in enumerate(r) if i != drop] for r in rows]


def _rows_by_key(out: Path) -> dict:
    return {r["key"]: strip_timing(r) for r in read_results(out / "results.jsonl")}


def _assert_same_rows(out_a: Path, out_b: Path) -> None:
    """Same cells with identical rows apart from timing fields; on failure name the fields that differ.
    (dprec's source hash is part of each row: editing dprec between the two runs makes them differ.)"""
    a, b = _rows_by_key(out_a), _rows_by_key(out_b)
    assert sorted(a) == sorted(b)
    for key in a:
        diff = sorted(f for f in set(a[key]) | set(b[key]) if a[key].get(f) != b[key].get(f))
        assert not diff, (
            f"cell {key}: fields {diff} differ, e.g. {diff[0]}: {a[key].get(diff[0])!r} vs {b[key].get(diff[0])!r}"
        )


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted run of the tiny config (shared by the comparison tests)."""
    base = tmp_path_factory.mktemp("bench_ref")
    cfg = _config(base)
    out = base / "out"
    rows = run_bench(cfg, out, progress=False)
    return cfg, out, rows


# ------------------------------------------------------------------------------------------ validation
TYPO_CASES = {
    "unknown model": (('name = "popularity"', 'name = "popularty"'), ["popularty", "popularity"]),
    "epsilon zero": (("epsilons = [1, inf]", "epsilons = [0, inf]"), ["epsilons", "> 0"]),
    "epsilon negative": (("epsilons = [1, inf]", "epsilons = [-1, inf]"), ["epsilons", "> 0"]),
    "epsilon nan": (("epsilons = [1, inf]", "epsilons = [nan, 1]"), ["epsilons", "NaN"]),
    "epsilon text": (("epsilons = [1, inf]", 'epsilons = ["lots"]'), ["epsilons", "inf"]),
    "delta zero": (("delta = 1e-6", "delta = 0.0"), ["delta", "between 0 and 1"]),
    "delta one": (("delta = 1e-6", "delta = 1.0"), ["delta", "between 0 and 1"]),
    "seeds empty": (("seeds = [0, 1]", "seeds = []"), ["seeds", "at least one seed"]),
    "unknown metric": (('"ndcg_at_k"]', '"ndgc_at_k"]'), ["ndgc_at_k", "ndcg_at_k"]),
    "run key typo": (("split_seed = 0", "split_sed = 0"), ["split_sed", "split_seed", "[run]"]),
    "model key typo": (('label = "ALS"', 'lable = "ALS"'), ["lable", "label"]),
    "model param typo": (("factors = 4", "factros = 4"), ["factros", "factors"]),
    "dataset key typo": (('label = "syn"', 'labl = "syn"'), ["labl", "label"]),
    "split unknown": (('split = "random"', 'split = "temporal"'), ["split", "random"]),
    "test fraction": (("test_fraction = 0.2", "test_fraction = 1.5"), ["test_fraction"]),
    "reserved param": (("factors = 4, iterations = 2", "factors = 4, rng = 3"), ["rng", "seeds"]),
    "bad param value": (("factors = 4", "factors = -4"), ["ALS", "factors"]),
    "synthetic key typo": (
        ("mean_ratings_per_user = 15", "mean_rating_per_user = 15"),
        ["mean_rating_per_user", "mean_ratings_per_user"],
    ),
}


@pytest.mark.parametrize("case", sorted(TYPO_CASES))
def test_config_errors_name_the_key_before_training(tmp_path, case):
    (old, new), needles = TYPO_CASES[case]
    assert old in TINY
    cfg = _config(tmp_path, TINY.replace(old, new, 1))
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as exc:
        run_bench(cfg, out, progress=False)
    msg = str(exc.value)
    for n in needles:
        assert n in msg, f"{n!r} not in error message: {msg}"
    assert not out.exists(), "nothing may be written before validation passes"


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_missing_ratings_file(tmp_path):
    text = TINY.replace(
        'label = "syn"\nsynthetic = { n_users = 150, n_items = 80, rank = 3, mean_ratings_per_user = 15, seed = 0 }',
        'ratings = "no/such/ratings.csv"\nrating_bounds = [1, 5]',
    )
    cfg = _config(tmp_path, text)
    with pytest.raises(ConfigError, match="ratings.csv.*does not exist"):
        run_bench(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_unknown_registry_dataset(tmp_path):
    text = TINY.replace(
        'label = "syn"\nsynthetic = { n_users = 150, n_items = 80, rank = 3, mean_ratings_per_user = 15, seed = 0 }',
        'name = "ml-100kk"',
    )
    with pytest.raises(ConfigError, match="ml-100kk"):
        run_bench(_config(tmp_path, text), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_registry_dataset_not_present_locally(tmp_path):
    empty = tmp_path / "empty_data_home"
    empty.mkdir()
    text = TINY.replace(
        'label = "syn"\nsynthetic = { n_users = 150, n_items = 80, rank = 3, mean_ratings_per_user = 15, seed = 0 }',
        f'name = "ml-1m"\ndata_home = "{empty}"',
    )
    with pytest.raises(ConfigError) as exc:
        run_bench(_config(tmp_path, text), tmp_path / "out", progress=False)
    assert "ml-1m" in str(exc.value) and "download=True" in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_ratings_file_dataset_runs(tmp_path, ratings_df):
    ratings_df.to_csv(tmp_path / "r.csv", index=False)
    text = TINY.replace(
        'label = "syn"\nsynthetic = { n_users = 150, n_items = 80, rank = 3, mean_ratings_per_user = 15, seed = 0 }',
        'ratings = "r.csv"\nrating_bounds = [0.5, 5]',
    )
    text = text.replace("seeds = [0, 1]", "seeds = [0]").replace("epsilons = [1, inf]", "epsilons = [inf]")
    rows = run_bench(_config(tmp_path, text), tmp_path / "out", progress=False)
    assert rows and all(r["dataset"]["checksum_kind"] == "interactions_fingerprint" for r in rows)
    assert rows[0]["dataset"]["label"] == "r.csv"


def test_resume_refuses_changed_data(tmp_path, ratings_df):
    ratings_df.to_csv(tmp_path / "r.csv", index=False)
    text = TINY.replace(
        'label = "syn"\nsynthetic = { n_users = 150, n_items = 80, rank = 3, mean_ratings_per_user = 15, seed = 0 }',
        'ratings = "r.csv"\nrating_bounds = [0.5, 5]',
    )
    text = text.replace("seeds = [0, 1]", "seeds = [0]").split('[[models]]\nname = "als"')[0]
    cfg = _config(tmp_path, text)
    run_bench(cfg, tmp_path / "out", progress=False)
    (tmp_path / "out" / "results.jsonl").write_text((tmp_path / "out" / "results.jsonl").read_text())
    ratings_df.assign(rating=ratings_df["rating"].clip(upper=4.5)).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ConfigError, match="changed since that sweep"):
        run_bench(cfg, tmp_path / "out", resume=True, progress=False)


def test_non_private_models_ignore_epsilons(tmp_path):
    text = TINY.replace('label = "ALS"', 'label = "ALS"\nepsilons = [1, 2]')
    cfg = load_config(_config(tmp_path, text))
    als = next(m for m in cfg.models if m.name == "als")
    assert als.epsilons == (math.inf,)


CONFIG_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "configs"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG_DIR.glob("*.toml")))
def test_shipped_configs_are_valid(name):
    """Every committed sweep config parses and its models accept their params (data not loaded here)."""
    cfg = load_config(CONFIG_DIR / name, check_data=False)
    assert cfg.run.seeds and cfg.models and cfg.datasets
    dp = [m for m in cfg.models if m.is_dp]
    assert all(math.inf in m.epsilons for m in dp), "DP sweeps include the ε = ∞ reference"


# ------------------------------------------------------------------------------------------ runs
def test_full_run_writes_results_summary_and_plots(reference_run):
    cfg, out, rows = reference_run
    assert (out / "results.jsonl").is_file() and (out / "summary.md").is_file() and (out / "summary.csv").is_file()
    pngs = sorted((out / "plots").glob("*.png"))
    assert len(pngs) == (4 if HAS_MATPLOTLIB else 0)  # one per (dataset, metric): rmse, mae, precision@5, ndcg@5
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert len(rows) == 2 + 2 + 2 * 2
    r = rows[0]
    for field in (
        "key",
        "dataset",
        "model",
        "epsilon",
        "delta",
        "privacy_unit",
        "seed",
        "split",
        "metrics",
        "privacy_report",
        "fit_seconds",
        "wall_seconds",
        "versions",
        "machine",
        "config",
    ):
        assert field in r
    assert r["dataset"]["checksum"] and r["dataset"]["n_ratings"] > 0
    assert set(r["versions"]) >= {
        "dprec",
        "dprec_source_sha256",
        "numpy",
        "scipy",
        "numba",
        "implicit",
        "opendp",
        "python",
    }
    assert "hostname" not in json.dumps(r["machine"]) and r["machine"]["cpu_count"] >= 1
    assert set(r["metrics"]) == {"rmse", "mae", "precision@5", "ndcg@5"}
    assert r["config"]["run"]["name"] == "tiny"
    dp = [x for x in rows if x["model"]["name"] == "dp-baseline"]
    for x in dp:
        assert x["privacy_report"] is not None and x["delta"] == 1e-6 and x["privacy_unit"] == "user"
    assert {x["epsilon"] for x in dp} <= {1.0, "inf"}
    assert all(
        x["epsilon"] == "inf" and x["privacy_report"] is None for x in rows if x["model"]["name"] != "dp-baseline"
    )
    md = (out / "summary.md").read_text()
    assert "## syn" in md and "ε = ∞" in md and "±" in md and "seconds" not in md
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert header[-1] == "fit_seconds_mean"


def test_two_runs_identical_apart_from_timing(reference_run, tmp_path):
    cfg, out, _ = reference_run
    out2 = tmp_path / "again"
    run_bench(cfg, out2, progress=False)
    _assert_same_rows(out, out2)
    assert (out / "summary.md").read_text() == (out2 / "summary.md").read_text()
    assert _csv_without_timing(out / "summary.csv") == _csv_without_timing(out2 / "summary.csv")


def test_existing_results_need_resume(reference_run, tmp_path):
    cfg, out, _ = reference_run
    out2 = tmp_path / "copy"
    shutil.copytree(out, out2)
    with pytest.raises(FileExistsError, match="--resume"):
        run_bench(cfg, out2, progress=False)
    before = (out2 / "results.jsonl").read_bytes()
    run_bench(cfg, out2, resume=True, progress=False)  # nothing left to do
    assert (out2 / "results.jsonl").read_bytes() == before


def test_resume_after_truncated_kill_matches_uninterrupted(reference_run, tmp_path):
    cfg, out, rows = reference_run
    lines = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    k = 3
    out2 = tmp_path / "killed"
    out2.mkdir()
    (out2 / "results.jsonl").write_bytes(b"".join(lines[:k]) + lines[k][: len(lines[k]) // 2])  # cut mid-line
    assert len(read_results(out2 / "results.jsonl")) == k  # the partial line is tolerated and dropped
    run_bench(cfg, out2, resume=True, progress=False)
    again = read_results(out2 / "results.jsonl")
    assert len(again) == len(rows) and len({r["key"] for r in again}) == len(rows)
    _assert_same_rows(out, out2)
    assert (out / "summary.md").read_text() == (out2 / "summary.md").read_text()
    assert _csv_without_timing(out / "summary.csv") == _csv_without_timing(out2 / "summary.csv")


def test_resume_refuses_rows_of_another_config(reference_run, tmp_path):
    cfg, out, _ = reference_run
    out2 = tmp_path / "other"
    shutil.copytree(out, out2)
    changed = _config(tmp_path, cfg.read_text().replace("factors = 4", "factors = 5"), name="changed.toml")
    with pytest.raises(ConfigError, match="another --out"):
        run_bench(changed, out2, resume=True, progress=False)


def test_corrupt_middle_line_is_an_error(reference_run, tmp_path):
    _, out, _ = reference_run
    lines = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    p = tmp_path / "results.jsonl"
    p.write_bytes(lines[0] + b"{not json\n" + b"".join(lines[1:]))
    with pytest.raises(CorruptFileError, match="line 2"):
        read_results(p)


def test_bench_summary_regenerates(reference_run, tmp_path):
    _, out, _ = reference_run
    out2 = tmp_path / "resum"
    out2.mkdir()
    shutil.copy(out / "results.jsonl", out2 / "results.jsonl")
    summarize_dir(out2)
    assert (out / "summary.md").read_text() == (out2 / "summary.md").read_text()
    assert len(list((out2 / "plots").glob("*.png"))) == (4 if HAS_MATPLOTLIB else 0)


def test_rows_written_in_any_order_give_the_same_summary(reference_run, tmp_path):
    _, out, _ = reference_run
    out2 = tmp_path / "shuffled"
    out2.mkdir()
    lines = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    (out2 / "results.jsonl").write_bytes(b"".join(reversed(lines)))
    summarize_dir(out2, plots=False)
    assert (out / "summary.md").read_text() == (out2 / "summary.md").read_text()


def test_implicit_adapter_has_no_rmse(tmp_path):
    pytest.importorskip("implicit")
    text = TINY.split("[[models]]")[0] + '[[models]]\nname = "implicit-als"\nparams = { factors = 4, iterations = 2 }\n'
    text = text.replace("seeds = [0, 1]", "seeds = [0]")
    rows = run_bench(_config(tmp_path, text), tmp_path / "out", progress=False)
    m = rows[0]["metrics"]
    assert m["rmse"] is None and m["mae"] is None  # NaN is stored as null
    assert 0 <= m["precision@5"] <= 1 and 0 <= m["ndcg@5"] <= 1


def test_multiple_cutoffs(tmp_path):
    text = TINY.replace("k = 5", "k = [5, 10]").replace("seeds = [0, 1]", "seeds = [0]")
    text = text.split('[[models]]\nname = "als"')[0]
    rows = run_bench(_config(tmp_path, text), tmp_path / "out", progress=False)
    assert set(rows[0]["metrics"]) == {"rmse", "mae", "precision@5", "precision@10", "ndcg@5", "ndcg@10"}


def test_jobs_two_matches_serial(reference_run, tmp_path):
    cfg, out, _ = reference_run
    out2 = tmp_path / "parallel"
    run_bench(cfg, out2, jobs=2, progress=False)
    _assert_same_rows(out, out2)
    assert (out / "summary.md").read_text() == (out2 / "summary.md").read_text()


def _readme_tool():
    """The repository script benchmarks/readme.py (not part of the package), imported from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_dprec_readme_tool", CONFIG_DIR.parent / "readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_block_is_regenerated(reference_run, tmp_path):
    tool = _readme_tool()
    END, START, update_readme = tool.END, tool.START, tool.update_readme

    _, out, _ = reference_run
    res = tmp_path / "benchmarks" / "results" / "tiny"
    res.mkdir(parents=True)
    shutil.copy(out / "summary.csv", res / "summary.csv")
    readme = tmp_path / "README.md"
    readme.write_text(f"# dprec\n\nintro\n\n{START}\nold\n{END}\n\nfooter\n")
    assert update_readme(str(readme), str(tmp_path / "benchmarks" / "results"))
    text = readme.read_text()
    assert "old" not in text and "intro" in text and "footer" in text and "Sweep `tiny`" in text and "±" in text
    assert not update_readme(str(readme), str(tmp_path / "benchmarks" / "results"))  # idempotent
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="results:start"):
        update_readme(str(readme), str(tmp_path / "benchmarks" / "results"))


def test_cli_bench_and_bench_summary(reference_run, tmp_path, capsys):
    cli = pytest.importorskip("dprec.cli")
    cfg, out, _ = reference_run
    out2 = tmp_path / "cli"
    assert cli.main(["bench", str(cfg), "--out", str(out2), "--no-progress"]) == 0
    _assert_same_rows(out, out2)
    assert cli.main(["bench", str(cfg), "--out", str(out2), "--no-progress"]) == 2  # needs --resume
    assert "--resume" in capsys.readouterr().err
    (out2 / "summary.md").unlink()
    assert cli.main(["bench-summary", str(out2)]) == 0
    assert (out / "summary.md").read_text() == (out2 / "summary.md").read_text()
    bad = _config(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = []"), name="bad.toml")
    assert cli.main(["bench", str(bad), "--out", str(tmp_path / "bad")]) == 2
    assert "seeds" in capsys.readouterr().err and not (tmp_path / "bad").exists()


# ------------------------------------------------------------------------------------------ a real kill
def _bench_command(cfg: Path, out: Path, *extra: str) -> list[str]:
    try:
        from dprec import cli

        parser = cli.build_parser()
        parser.parse_args(["bench", str(cfg), "--out", str(out)])
        return [sys.executable, "-m", "dprec.cli", "bench", str(cfg), "--out", str(out), "--no-progress", *extra]
    except (ImportError, AttributeError, SystemExit):
        return [sys.executable, "-m", "dprec.bench", str(cfg), "--out", str(out), "--no-progress", *extra]


@pytest.mark.slow  # ~30 s: three interpreter start-ups plus the sweep
def test_sigkill_then_resume(tmp_path):
    """SIGKILL a running sweep after its first rows appear; --resume then completes it exactly."""
    text = TINY.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3, 4, 5, 6, 7]")
    text = text.replace("factors = 4, iterations = 2", "factors = 8, iterations = 6")
    cfg = _config(tmp_path, text)
    out = tmp_path / "out"
    results = out / "results.jsonl"
    proc = subprocess.Popen(_bench_command(cfg, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and results.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.02)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert results.exists(), proc.stderr.read().decode()
    n_total = len(load_config(cfg).datasets) * sum(len(m.epsilons) for m in load_config(cfg).models) * 8
    n_before = len(read_results(results))
    assert killed, "the sweep finished before it could be killed; make the config larger"
    if killed:
        assert n_before < n_total
        assert proc.returncode == -signal.SIGKILL
    done = subprocess.run(_bench_command(cfg, out), capture_output=True)
    assert done.returncode == 2 and b"--resume" in done.stderr  # refuses without --resume
    done = subprocess.run(_bench_command(cfg, out, "--resume"), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    rows = read_results(results)
    assert len(rows) == n_total and len({r["key"] for r in rows}) == n_total
    ref = tmp_path / "ref"
    run_bench(cfg, ref, progress=False)
    _assert_same_rows(ref, out)
    assert (ref / "summary.md").read_text() == (out / "summary.md").read_text()


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["ml100k-explicit.toml", "ml100k-topn.toml"])
def test_ml100k_configs_load_their_data(ml100k_dir, name):
    cfg = load_config(CONFIG_DIR / name)  # loads ml-100k from $DPREC_DATA
    data = cfg.load_data("ml-100k")
    assert data.n_users == 943 and data.rating_bounds == (1.0, 5.0)


# ------------------------------------------------------------------------------------------ registry and config classes
def test_models_come_from_the_registry():
    from dprec.bench.adapters import ImplicitALS
    from dprec.models.registry import MODELS, get_model, model_names

    assert MODELS["implicit-als"] is ImplicitALS  # registered when the bench is imported
    assert get_model("implicit-als").is_private is False and ImplicitALS.predicts_ratings is False
    assert ImplicitALS.feedback == "implicit"
    assert {"als", "popularity", "dp-baseline", "dp-popularity", "dpals", "implicit-als"} <= set(model_names())
    assert get_model("dpals").is_private and not get_model("als").is_private


def test_model_params_are_validated_by_the_config_class(tmp_path):
    text = TINY.split("[[models]]")[0] + '[[models]]\nname = "implicit-als"\nparams = { factros = 4 }\n'
    with pytest.raises(ConfigError) as exc:
        load_config(_config(tmp_path, text), check_data=False)
    msg = str(exc.value)
    assert "[[models]] #1 (implicit-als) params.factros" in msg and "did you mean 'factors'?" in msg
    text = TINY.split("[[models]]")[0] + '[[models]]\nname = "implicit-als"\nparams = { alpha = 0 }\n'
    with pytest.raises(ConfigError, match=r"params.alpha: .*greater than 0"):
        load_config(_config(tmp_path, text), check_data=False)


def test_metric_names_rule():
    from dprec.bench.config import metric_names, split_metric_name
    from dprec.bench.plots import plot_filename

    assert metric_names(["rmse", "ndcg_at_k", "coverage"], [5, 10]) == [
        "rmse",
        "ndcg@5",
        "ndcg@10",
        "coverage@5",
        "coverage@10",
    ]
    assert split_metric_name("ndcg@10") == ("ndcg", "10") and split_metric_name("rmse") == ("rmse", "")
    assert plot_filename("ml-100k", "ndcg@10") == "ml-100k__ndcg_at_10.png"


@pytest.mark.parametrize("sweep", ["quick", "ml100k-explicit", "ml100k-topn", "synthetic-10m-scale"])
def test_committed_summaries_regenerate_identically(tmp_path, sweep):
    """summary.csv/.md of every committed sweep, rebuilt from its results.jsonl, match byte for byte."""
    src = CONFIG_DIR.parent / "results" / sweep
    shutil.copy(src / "results.jsonl", tmp_path / "results.jsonl")
    summarize_dir(tmp_path, plots=False)
    assert (tmp_path / "summary.csv").read_text() == (src / "summary.csv").read_text()
    assert (tmp_path / "summary.md").read_text() == (src / "summary.md").read_text()


STRONG = """
[run]
name = "strong"
seeds = [0]
split = "strong"
heldout_users = 30
validation_users = 10
history_fraction = 0.8
positive_threshold = 3.5
split_seed = 0
k = 5
metrics = ["precision_at_k", "recall_at_k", "ndcg_at_k", "recall@20"]

[[datasets]]
label = "syn"
synthetic = { n_users = 200, n_items = 60, rank = 3, mean_ratings_per_user = 15, seed = 0 }

[[models]]
name = "popularity"

[[models]]
name = "als"
params = { factors = 4, iterations = 2, feedback = "implicit" }

[[models]]
name = "dp-popularity"
epsilons = [1]
"""


def test_strong_protocol_sweep(tmp_path):
    from dprec.datasets import synthetic
    from dprec.metrics import evaluate_strong
    from dprec.models import Popularity
    from dprec.split import strong_generalization

    rows = run_bench(_config(tmp_path, STRONG), tmp_path / "out", progress=False)
    assert len(rows) == 3
    r = next(x for x in rows if x["model"]["name"] == "popularity")
    assert set(r["metrics"]) == {"precision@5", "recall@5", "ndcg@5", "recall@20"}
    assert r["split"]["protocol"] == "strong" and r["split"]["heldout_users"] == 30
    assert r["split"]["positive_threshold"] == 3.5 and r["config"]["run"]["validation_users"] == 10
    # the same numbers as evaluate_strong on the same split
    data = synthetic(n_users=200, n_items=60, rank=3, mean_ratings_per_user=15, rng=0)
    s = strong_generalization(data, n_heldout_users=30, n_validation_users=10, positive_threshold=3.5, rng=0)
    assert r["dataset"]["n_train"] == s.train.nnz and r["dataset"]["n_test"] == s.targets.nnz
    ref = evaluate_strong(Popularity().fit(s.train), s, k=5)
    assert r["metrics"]["recall@20"] == pytest.approx(ref["recall_at_20"])
    assert r["metrics"]["ndcg@5"] == pytest.approx(ref["ndcg_at_k"])
    for x in rows:
        assert all(0 <= v <= 1 for v in x["metrics"].values())


@pytest.mark.parametrize(
    "edit, match",
    [
        (("heldout_users = 30\n", ""), "needs heldout_users"),
        (("heldout_users = 30", "heldout_users = -3"), r"\[run\] heldout_users"),
        (("history_fraction = 0.8", "history_fraction = 1.5"), r"\[run\] history_fraction"),
        (("positive_threshold = 3.5", 'positive_threshold = "high"'), r"\[run\] positive_threshold"),
        (('split = "strong"', 'split = "user"'), r'applies to split = "strong" only'),
        (('"recall@20"', '"recall@x"'), r"\[run\] metrics: 'recall@x'"),
        (("split_seed = 0", "split_seed = 0\ntest_fraction = 0.3"), "test_fraction does not apply"),
    ],
)
def test_strong_config_errors(tmp_path, edit, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_config(tmp_path, STRONG.replace(*edit)))


def test_shipped_ml20m_config_is_the_paper_protocol():
    cfg = load_config(Path(__file__).parents[2] / "benchmarks/configs/dpals-ml20m.toml", check_data=False)
    assert cfg.run.split == "strong"
    assert cfg.run.strong["heldout_users"] == cfg.run.strong["validation_users"] == 10000
    assert cfg.run.strong["positive_threshold"] == 3.5 and cfg.run.strong["history_fraction"] == 0.8
    assert cfg.run.cutoffs() == (20, 50, 100)


@pytest.mark.skipif(not _has("implicit"), reason="needs the implicit package ([bench] extra)")
def test_implicit_adapter_serves_heldout_users_without_changing_itself():
    from dprec.bench.adapters import ImplicitALS
    from dprec.datasets import synthetic
    from dprec.metrics import evaluate_strong
    from dprec.split import strong_generalization

    data = synthetic(n_users=200, n_items=60, rank=3, rng=0)
    s = strong_generalization(data, n_heldout_users=20, positive_threshold=3.5, rng=0)
    model = ImplicitALS(factors=4, iterations=2, rng=0).fit(s.train)
    before = model._model.user_factors.copy()
    res = evaluate_strong(model, s, k=5)
    assert res["n_users_evaluated"] == 20 and 0 <= res["recall_at_20"] <= 1
    assert np.array_equal(model._model.user_factors, before) and len(model._user_index) == s.train.n_users
