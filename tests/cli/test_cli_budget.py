"""`dprec budget init/show` and ledger charging through `dprec evaluate` (exit code 3 on refusal)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dprec.cli import main
from dprec.privacy import Ledger

JSON_KEYS = {"dataset", "total_epsilon", "total_delta", "spent_epsilon", "remaining_epsilon", "charges"}


@pytest.fixture
def ratings_csv(tmp_path):
    g = np.random.default_rng(0)
    rows = [(u, int(i), int(g.integers(1, 6))) for u in range(80) for i in g.choice(60, 15, replace=False)]
    path = tmp_path / "r.csv"
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(path, index=False)
    return str(path)


@pytest.fixture(autouse=True)
def ledger_dir(tmp_path, monkeypatch):
    d = tmp_path / "ledgers"
    monkeypatch.setenv("DPREC_LEDGER_DIR", str(d))  # the default ledger path lives under tmp_path
    return d


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _file_id(path):
    from dprec.cli.source import load_data

    return load_data({"ratings": path, "rating_bounds": "1,5"})[0].dataset_id


SRC = lambda f: ("--ratings", f, "--rating-bounds", "1,5")  # noqa: E731
EVAL = lambda f, eps, led: (
    "evaluate",
    *SRC(f),
    "--model",
    "dp-baseline",
    "--epsilon",
    eps,
    "--delta",
    "1e-5",  # noqa: E731
    "--ledger",
    led,
    "--format",
    "json",
)


def test_init_and_show(tmp_path, capsys, ratings_csv):
    led = tmp_path / "l.sqlite"
    rc, out, err = _run(capsys, "budget", "init", *SRC(ratings_csv), "--epsilon", 2, "--delta", "1e-5", "--ledger", led)
    assert rc == 0, err
    assert "ε = 2.0000" in out
    rc, out, err = _run(capsys, "budget", "show", "--ledger", led, "--format", "json")
    assert rc == 0, err
    d = json.loads(out)
    assert JSON_KEYS <= set(d)
    assert d["dataset"] == _file_id(ratings_csv).split(":")[0]  # the public name only, never the fingerprint
    assert d["total_epsilon"] == 2.0 and d["total_delta"] == 1e-5
    assert d["spent_epsilon"] == 0.0 and d["remaining_epsilon"] == 2.0 and d["charges"] == []
    rc, out, _ = _run(capsys, "budget", "show", "--ledger", led)
    assert rc == 0 and "no charges yet" in out


def test_init_default_path(capsys, ratings_csv, ledger_dir):
    rc, _, err = _run(capsys, "budget", "init", *SRC(ratings_csv), "--epsilon", 1, "--delta", "1e-6")
    assert rc == 0, err
    expected = Ledger.default_path(_file_id(ratings_csv))
    assert expected.exists() and expected.parent == ledger_dir
    rc, out, err = _run(capsys, "budget", "show", *SRC(ratings_csv), "--format", "json")
    assert rc == 0, err
    assert json.loads(out)["path"] == str(expected)
    # re-running init with the same totals is idempotent; with other totals it is refused (exit 3)
    assert _run(capsys, "budget", "init", *SRC(ratings_csv), "--epsilon", 1, "--delta", "1e-6")[0] == 0
    rc, _, err = _run(capsys, "budget", "init", *SRC(ratings_csv), "--epsilon", 5, "--delta", "1e-6")
    assert rc == 3 and "ledger" in err


@pytest.mark.parametrize(
    "bad",
    [
        ("--epsilon", "inf", "--delta", "1e-5"),
        ("--epsilon", "1", "--delta", "0"),
        ("--epsilon", "0", "--delta", "1e-5"),
        ("--epsilon", "1"),
    ],
)
def test_init_rejects_bad_budget(tmp_path, capsys, ratings_csv, bad):
    led = tmp_path / "l.sqlite"
    rc, _, err = _run(capsys, "budget", "init", *SRC(ratings_csv), *bad, "--ledger", led)
    assert rc == 2 and err
    assert not led.exists()


def test_show_needs_a_ledger(capsys):
    rc, _, err = _run(capsys, "budget", "show")
    assert rc == 2 and "--ledger" in err


def test_evaluate_charges_ledger(tmp_path, capsys, ratings_csv):
    led = tmp_path / "l.sqlite"
    assert _run(capsys, "budget", "init", *SRC(ratings_csv), "--epsilon", 2, "--delta", "1e-5", "--ledger", led)[0] == 0
    rc, out, err = _run(capsys, *EVAL(ratings_csv, 1, led))
    assert rc == 0, err
    report = json.loads(out)["privacy"]
    charges = Ledger.open(led).charges()
    assert len(charges) == 1
    assert charges[0]["rho"] == pytest.approx(report["total_rho"], rel=1e-9)
    rc, out, _ = _run(capsys, "budget", "show", "--ledger", led, "--format", "json")
    d = json.loads(out)
    assert len(d["charges"]) == 1 and 0.9 < d["spent_epsilon"] <= 1.0 + 1e-9
    assert d["remaining_epsilon"] == pytest.approx(2.0 - d["spent_epsilon"])


def test_evaluate_exceeding_exits_3_and_records_nothing(tmp_path, capsys, ratings_csv):
    led = tmp_path / "l.sqlite"
    _run(capsys, "budget", "init", *SRC(ratings_csv), "--epsilon", 1.2, "--delta", "1e-5", "--ledger", led)
    assert _run(capsys, *EVAL(ratings_csv, 1, led))[0] == 0
    before = Ledger.open(led).charges()
    rc, out, err = _run(capsys, *EVAL(ratings_csv, 1, led))
    assert rc == 3
    assert "budget" in err and out == ""
    assert Ledger.open(led).charges() == before


def test_evaluate_corrupted_ledger_exits_3(tmp_path, capsys, ratings_csv):
    led = tmp_path / "l.sqlite"
    _run(capsys, "budget", "init", *SRC(ratings_csv), "--epsilon", 2, "--delta", "1e-5", "--ledger", led)
    data = led.read_bytes()
    led.write_bytes(data[: len(data) // 2])
    rc, out, err = _run(capsys, *EVAL(ratings_csv, 1, led))
    assert rc == 3 and "ledger" in err and out == ""
    rc, _, err = _run(capsys, "budget", "show", "--ledger", led)
    assert rc == 3 and "ledger" in err


def test_evaluate_ledger_of_other_dataset_exits_3(tmp_path, capsys, ratings_csv):
    other = tmp_path / "other.csv"
    pd.read_csv(ratings_csv).iloc[:-5].to_csv(other, index=False)
    led = tmp_path / "l.sqlite"
    _run(capsys, "budget", "init", *SRC(str(other)), "--epsilon", 2, "--delta", "1e-5", "--ledger", led)
    rc, _, err = _run(capsys, *EVAL(ratings_csv, 1, led))
    assert rc == 3 and "dataset" in err
    assert Ledger.open(led).charges() == []
    # and `budget show --ratings` refuses a ledger that belongs to another dataset
    rc, _, err = _run(capsys, "budget", "show", *SRC(ratings_csv), "--ledger", led)
    assert rc == 3


@pytest.mark.realdata
def test_ml100k_budget_then_evaluate(ml100k_dir, capsys, ledger_dir):
    home = str(ml100k_dir.parent)
    rc, _, err = _run(
        capsys, "budget", "init", "--dataset", "ml-100k", "--data-home", home, "--epsilon", 2, "--delta", "1e-5"
    )
    assert rc == 0, err
    rc, out, err = _run(
        capsys,
        "evaluate",
        "--dataset",
        "ml-100k",
        "--data-home",
        home,
        "--model",
        "dp-baseline",
        "--epsilon",
        1,
        "--delta",
        "1e-5",
        "--ledger",
        _default(home),
        "--format",
        "json",
    )
    assert rc == 0, err
    rc, out, err = _run(capsys, "budget", "show", "--dataset", "ml-100k", "--data-home", home, "--format", "json")
    assert rc == 0, err
    d = json.loads(out)
    assert len(d["charges"]) == 1 and d["dataset"].startswith("ml-100k")
    rc, _, err = _run(
        capsys,
        "evaluate",
        "--dataset",
        "ml-100k",
        "--data-home",
        home,
        "--model",
        "dp-baseline",
        "--epsilon",
        1.9,
        "--delta",
        "1e-5",
        "--ledger",
        _default(home),
    )
    assert rc == 3 and "budget" in err
    assert len(Ledger.open(_default(home)).charges()) == 1


def _default(home):
    from dprec.datasets import load_dataset

    data = load_dataset("ml-100k", data_home=home)
    data = data[0] if isinstance(data, tuple) else data
    return str(Ledger.default_path(data.dataset_id))


def test_show_prints_no_fingerprint_digest_or_time(tmp_path, capsys, ratings_csv, ledger_dir):
    import re

    fid = _file_id(ratings_csv)
    name, fp = fid.split(":", 1)
    assert _run(capsys, "budget", "init", *SRC(ratings_csv), "--epsilon", 2, "--delta", "1e-5")[0] == 0
    path = Ledger.default_path(fid)
    assert fp not in path.name and path.name == f"{name}.ledger.sqlite"  # nothing data-dependent in the name
    Ledger.open(path, dataset=fid).charge(
        rho=0.01, model="m", mechanism="gaussian", label="fit", params={"rng": 7, "sigma": 1.0}, seed=31337
    )
    for fmt in ("json", "table"):
        rc, out, err = _run(capsys, "budget", "show", *SRC(ratings_csv), "--format", fmt)
        assert rc == 0, err
        text = out.replace(str(path), "")
        assert fp not in text and fp[:8] not in text and "31337" not in text
        assert not re.search(r"[0-9a-f]{64}", text)
        assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", text), "a time is shown"
        for word in ("seq", "hash", "mac", "params", "sigma", "time", "created"):
            assert word not in text.lower(), word
    d = json.loads(_run(capsys, "budget", "show", *SRC(ratings_csv), "--format", "json")[1])
    assert d["dataset"] == name and d["n_charges"] == 1 and d["charges"][0]["mechanism"] == "gaussian"


def test_init_edited_data_at_default_path_explains_new_dataset(tmp_path, capsys, ratings_csv):
    assert _run(capsys, "budget", "init", *SRC(ratings_csv), "--epsilon", 2, "--delta", "1e-5")[0] == 0
    before = _file_id(ratings_csv)
    pd.read_csv(ratings_csv).iloc[:-3].to_csv(ratings_csv, index=False)  # edited data, same file name
    assert _file_id(ratings_csv) != before
    rc, _, err = _run(capsys, "budget", "init", *SRC(ratings_csv), "--epsilon", 2, "--delta", "1e-5")
    assert rc == 3 and "another version" in err and "new dataset" in err and "--ledger" in err
    rc, _, err = _run(capsys, "budget", "show", *SRC(ratings_csv))
    assert rc == 3 and "another version" in err
