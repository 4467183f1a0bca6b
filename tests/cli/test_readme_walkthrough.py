"""The README's command-line walkthrough, run line by line through ``CliRunner`` so it cannot drift.

The README marks each walkthrough block with ``<!-- walkthrough: NAME -->`` before a fenced ``bash`` block and
each file it shows with ``<!-- walkthrough-file: NAME -->`` before a fenced block; every ``dprec …`` line of a
walkthrough block is run in a temporary directory, in order, and must exit 0.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dprec.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"<!-- walkthrough(-file)?: ([\w.\-]+) -->\s*```[a-z]*\n(.*?)```", re.S)


def readme_blocks() -> tuple[dict[str, list[str]], dict[str, str]]:
    """({walkthrough name: its dprec command lines}, {file name: its content}) from the README."""
    commands, files = {}, {}
    for is_file, name, body in _BLOCK.findall(README.read_text(encoding="utf-8")):
        if is_file:
            files[name] = body
        else:
            commands[name] = [ln.strip() for ln in body.splitlines() if ln.strip().startswith("dprec ")]
    return commands, files


def run_walkthrough(name: str, tmp_path: Path, monkeypatch) -> list:
    commands, files = readme_blocks()
    assert commands.get(name), f"README has no walkthrough block {name!r}"
    monkeypatch.chdir(tmp_path)
    for fname, content in files.items():
        (tmp_path / fname).write_text(content)
    runner = CliRunner()
    results = []
    for line in commands[name]:
        args = shlex.split(line)[1:]
        res = runner.invoke(cli, args, catch_exceptions=False)
        assert res.exit_code == 0, f"{line}\n{res.output}"
        results.append((line, res))
    return results


def test_readme_has_both_walkthroughs_in_order():
    commands, files = readme_blocks()
    assert set(commands) == {"ml-100k", "ratings-file"} and "model.toml" in files
    for lines in commands.values():
        verbs = [" ".join(shlex.split(ln)[1:3]) for ln in lines]
        order = ["budget init", "train --", "report", "recommend", "recommend", "budget show"]
        assert [v.split()[0] for v in verbs] == [o.split()[0] for o in order]
        assert any("--fold-in" in ln for ln in lines) and any("--export-public" in ln for ln in lines)


@pytest.fixture
def shop_files(tmp_path):
    """ratings.csv (120 users × 40 items, 1–5), items.txt (a catalog of 50 ids) and new-user.csv (user 500)."""
    g = np.random.default_rng(0)
    p = 1.0 / np.arange(1, 41)
    p /= p.sum()
    rows = [(u, int(i), int(g.integers(1, 6))) for u in range(120) for i in g.choice(40, 12, replace=False, p=p)]
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(tmp_path / "ratings.csv", index=False)
    (tmp_path / "items.txt").write_text("\n".join(str(i) for i in range(50)) + "\n")
    (tmp_path / "new-user.csv").write_text("user,item,rating\n500,0,5\n500,3,4\n500,7,5\n")
    return tmp_path


def test_walkthrough_on_a_ratings_file_with_items(shop_files, monkeypatch):
    results = dict(run_walkthrough("ratings-file", shop_files, monkeypatch))
    outs = list(results.values())
    assert "ε = 4.0000" in outs[0].output  # budget init
    assert (shop_files / "shop.npz").is_file() and (shop_files / "shop-public.npz").is_file()
    report = outs[2].output
    assert "privacy unit: **user**" in report and "## Release steps" in report and "## Ledger" in report
    assert "the item catalog is public" in report and "not** a DP artifact" in report
    csv_lines = outs[3].output.strip().splitlines()
    assert csv_lines[0] == "user,rank,item,score" and len(csv_lines) == 1 + 2 * 5
    folded = json.loads(outs[4].output)["recommendations"]
    assert [r["user"] for r in folded] == [500] and len(folded[0]["items"]) == 5
    assert not {0, 3, 7} & {it["item"] for it in folded[0]["items"]}  # seen items are filtered
    assert "spent:     ε = 2.0000" in outs[5].output and "#  model" in outs[5].output
    # the model came from model.toml: dp-itemitem with its [params]
    from dprec.models import Recommender

    m = Recommender.load(shop_files / "shop.npz")
    assert type(m).name == "dp-itemitem" and m.get_params()["counts_share"] == 0.2


@pytest.mark.realdata
def test_walkthrough_on_ml100k(ml100k_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DPREC_DATA", str(ml100k_dir.parent))
    (tmp_path / "new-user.csv").write_text("user,item,rating\n10000,50,5\n10000,181,4\n10000,100,5\n10000,258,3\n")
    outs = [r for _, r in run_walkthrough("ml-100k", tmp_path, monkeypatch)]
    assert "943 users × 1682 items" in outs[1].output
    assert "**DP artifact**" in outs[2].output and "ε = **4.0000**" in outs[2].output
    assert outs[3].output.count("\n196 ") == 10 or outs[3].output.count("196 ") >= 10
    assert "10000" in outs[4].output
    assert "remaining: ε = 6.0000" in outs[5].output
