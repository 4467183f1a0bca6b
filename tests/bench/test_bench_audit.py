"""Audit metrics as optional bench columns: [run] audit / audit_metrics / audit_groups, validated; not DP."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dprec.bench import ConfigError, read_results, run_bench
from dprec.bench.config import load_config, parse_config
from dprec.bench.runner import build_cells

BASE = {
    "run": {"seeds": [0], "split": "user", "k": 5, "metrics": ["ndcg_at_k"]},
    "datasets": [{"label": "syn", "synthetic": {"n_users": 200, "n_items": 60, "rank": 3, "seed": 0}}],
    "models": [{"name": "popularity"}, {"name": "dp-popularity", "epsilons": [1, 4]}],
}


def _cfg(**run):
    doc = {**BASE, "run": {**BASE["run"], **run}}
    return parse_config(doc)


def test_audit_off_leaves_configs_and_cell_keys_unchanged():
    plain, off = _cfg(), _cfg(audit=False)
    assert "audit" not in plain.raw["run"] and plain.run.audit is None and off.raw == plain.raw
    assert [c.key for c in build_cells(plain)] == [c.key for c in build_cells(off)]
    on = _cfg(audit=True)
    assert on.run.audit == () and on.raw["run"]["audit"] == []
    assert [c.key for c in build_cells(on)] != [c.key for c in build_cells(plain)]  # resume refuses a mix


@pytest.mark.parametrize(
    "run, needle",
    [
        ({"audit": "yes"}, "audit = true"),
        ({"audit_metrics": ["gini_exposur"]}, "did you mean 'gini_exposure'"),
        ({"audit_metrics": []}, "non-empty list"),
        ({"audit_metrics": ["gini_exposure[gender]"]}, "unknown audit metric"),
        ({"audit": False, "audit_metrics": ["arp"]}, "audit = false"),
        ({"audit_groups": ["gendr"]}, "did you mean 'gender'"),
        ({"audit_groups": ["gender"]}, "ML-100K's user attributes"),  # synthetic data has none
        ({"audit": True, "split": "strong", "heldout_users": 20}, 'split = "random" or "user"'),
        ({"audit_metric": ["arp"]}, "did you mean 'audit_metrics'"),
    ],
)
def test_audit_keys_are_validated(run, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        _cfg(**run)


def test_selected_audit_columns_in_rows_and_summary(tmp_path):
    cfg = _cfg(audit_metrics=["gini_exposure", "gap_ndcg_at_k"])
    rows = run_bench(cfg, tmp_path / "out", progress=False)
    assert len(rows) == 3
    for r in rows:
        audit = {n for n in r["metrics"] if n.startswith("audit:")}
        assert audit == {"audit:gini_exposure", "audit:gap_ndcg_at_k[activity]"}, audit
        assert 0.0 <= r["metrics"]["audit:gini_exposure"] <= 1.0 and "ndcg@5" in r["metrics"]
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "Audit: gini_exposure (not DP)" in md and "**Not DP**" in md
    assert "audit:gini_exposure" in (tmp_path / "out" / "summary.csv").read_text()


def test_audit_true_adds_every_flat_metric(tmp_path):
    from dprec.audit import audit_bias
    from dprec.bench.runner import compute_splits

    cfg = _cfg(audit=True)
    rows = run_bench(cfg, tmp_path / "out", progress=False, summarize=False)
    row = next(r for r in rows if r["model"]["name"] == "popularity")
    # the very columns of BiasAudit.flat_metrics() for this model and split
    from dprec.models import Popularity

    train, test = compute_splits(cfg)["syn"]
    flat = audit_bias(Popularity().fit(train), train, test, k=5).flat_metrics()
    got = {n[len("audit:") :]: v for n, v in row["metrics"].items() if n.startswith("audit:")}
    assert set(got) == set(flat) and got["gini_exposure"] == pytest.approx(flat["gini_exposure"])
    assert read_results(tmp_path / "out") == rows


@pytest.mark.realdata
def test_ml100k_audit_groups_config(tmp_path):
    data = os.environ.get("DPREC_DATA", "")
    if not os.path.isdir(os.path.join(data, "ml-100k")):
        pytest.skip("needs DPREC_DATA with ml-100k")
    p = Path(tmp_path) / "a.toml"
    p.write_text(
        '[run]\nseeds = [0]\nsplit = "user"\naudit_groups = ["gender", "age_band"]\n'
        '[[datasets]]\nname = "ml-100k"\n[[models]]\nname = "popularity"\n'
    )
    cfg = load_config(p)
    assert cfg.run.audit == () and cfg.run.audit_groups == ("gender", "age_band")
    rows = run_bench(cfg, tmp_path / "out", progress=False, summarize=False)
    assert "audit:gap_ndcg_at_k[gender]" in rows[0]["metrics"] and "audit:gap_ndcg_at_k[age_band]" in rows[0]["metrics"]
