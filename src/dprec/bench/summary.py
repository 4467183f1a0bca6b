"""Summaries of a sweep: mean ± std over seeds per (dataset, model, ε), as Markdown tables, CSV and plots.

``summary.md``: per dataset, one table per metric (rows = models, columns = ε, cells ``mean ± std``; std is
the sample standard deviation over seeds, ddof = 1; ``—`` = not run, ``n/a`` = undefined; a model for which
the metric is undefined at every ε, e.g. RMSE of a ranking-only model, is listed under the table instead of
as a row of n/a). It holds no timings, so two runs of the same config give identical files.

``summary.csv``: long format, one line per (dataset, model, ε, metric), columns
``dataset, dataset_checksum, model, model_name, private, epsilon, metric, mean, std, n_seeds, seeds`` and, last,
the timing column ``fit_seconds_mean`` (exclude it when comparing runs).

Ordering is deterministic: datasets and models in config order, ε ascending (∞ last), metrics in config order.
"""

from __future__ import annotations

import csv
import io
import math
import os

import numpy as np
import pandas as pd

from .config import AUDIT_PREFIX, metric_names, split_metric_name
from .runner import RESULTS_FILE, as_float, read_results

__all__ = ["aggregate", "write_summary", "summarize_dir", "CSV_COLUMNS", "TIMING_COLUMNS", "fmt_mean_std"]

CSV_COLUMNS = (
    "dataset",
    "dataset_checksum",
    "model",
    "model_name",
    "private",
    "epsilon",
    "metric",
    "mean",
    "std",
    "n_seeds",
    "seeds",
    "fit_seconds_mean",
)
TIMING_COLUMNS = ("fit_seconds_mean",)

_METRIC_TITLES = {
    "rmse": "RMSE (lower is better)",
    "mae": "MAE (lower is better)",
    "precision": "Precision",
    "recall": "Recall",
    "ndcg": "NDCG",
    "map": "MAP",
    "hit_rate": "Hit rate",
    "coverage": "Catalog coverage",
}


def metric_title(name: str) -> str:
    if name.startswith(AUDIT_PREFIX):
        return f"Audit: {name[len(AUDIT_PREFIX) :]} (not DP)"
    base, k = split_metric_name(name)
    t = _METRIC_TITLES.get(base, base)
    return f"{t}@{k}" if k else t


def eps_label(eps: float) -> str:
    if math.isinf(eps):
        return "∞"
    return f"{eps:g}"


def _order(rows: list[dict]):
    """Config order of datasets, models and metrics (from the rows' embedded config; else sorted)."""
    datasets, models, metrics = [], [], []
    for r in rows:
        cfg = r.get("config") or {}
        for d in cfg.get("datasets", []):
            if d["label"] not in datasets:
                datasets.append(d["label"])
        for m in cfg.get("models", []):
            if m["label"] not in models:
                models.append(m["label"])
        run = cfg.get("run", {})
        ks = run.get("k", [])
        ks = ks if isinstance(ks, list) else [ks]
        for name in metric_names(run.get("metrics", []), ks):
            if name not in metrics:
                metrics.append(name)
    for r in sorted(rows, key=lambda r: r["key"]):
        if r["dataset"]["label"] not in datasets:
            datasets.append(r["dataset"]["label"])
        if r["model"]["label"] not in models:
            models.append(r["model"]["label"])
        for name in r["metrics"]:
            if name not in metrics:
                metrics.append(name)
    return datasets, models, metrics


_CELL = ["dataset", "model", "epsilon"]


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean ± std over seeds of every (dataset, model, ε, metric), in deterministic order.

    A cell's mean and std are NaN unless every seed gave a finite value; std is the sample std (ddof = 1, NaN
    for one seed). A metric is listed for a cell when its first seed's row has it.
    """
    if not rows:
        return []
    datasets, models, metrics = _order(rows)
    runs = pd.DataFrame(
        {
            "dataset": [r["dataset"]["label"] for r in rows],
            "model": [r["model"]["label"] for r in rows],
            "epsilon": [as_float(r["epsilon"]) for r in rows],
            "seed": [r["seed"] for r in rows],
            "dataset_checksum": [r["dataset"].get("checksum") for r in rows],
            "model_name": [r["model"]["name"] for r in rows],
            "private": [bool(r.get("private")) for r in rows],
            "fit_seconds": [float(r.get("fit_seconds", math.nan)) for r in rows],
            "metrics": [r["metrics"] for r in rows],
        }
    ).sort_values(["seed"], kind="stable")
    cells = runs.groupby(_CELL, sort=False).agg(
        dataset_checksum=("dataset_checksum", "first"),
        model_name=("model_name", "first"),
        private=("private", "first"),
        n_seeds=("seed", "size"),
        seeds=("seed", lambda s: " ".join(str(x) for x in s)),
        fit_seconds_mean=("fit_seconds", _np_mean),
        first_metrics=("metrics", "first"),
    )
    values = runs.drop(columns="metrics").join(
        pd.DataFrame([{name: as_float(v) for name, v in m.items()} for m in runs["metrics"]], index=runs.index)
    )
    names = [n for n in metrics if n in values.columns]
    long = values.melt(id_vars=_CELL, value_vars=names, var_name="metric", value_name="value")
    stats = long.groupby(_CELL + ["metric"], sort=False)["value"].agg(mean=_finite_mean, std=_finite_std)

    out = []
    order = sorted(cells.index, key=lambda c: (datasets.index(c[0]), models.index(c[1]), c[2]))
    for cell in order:
        c = cells.loc[cell]
        for name in metrics:
            if name not in c["first_metrics"]:
                continue
            mean, std = stats.loc[(*cell, name)]
            out.append(
                {
                    "dataset": cell[0],
                    "dataset_checksum": c["dataset_checksum"],
                    "model": cell[1],
                    "model_name": c["model_name"],
                    "private": bool(c["private"]),
                    "epsilon": cell[2],
                    "metric": name,
                    "mean": float(mean),
                    "std": float(std),
                    "n_seeds": int(c["n_seeds"]),
                    "seeds": c["seeds"],
                    "fit_seconds_mean": float(c["fit_seconds_mean"]),
                }
            )
    return out


def _np_mean(s: pd.Series) -> float:
    return float(np.mean(s.to_numpy(np.float64)))


def _finite_mean(s: pd.Series) -> float:
    v = s.to_numpy(np.float64)
    return float(np.mean(v)) if np.isfinite(v).all() else math.nan


def _finite_std(s: pd.Series) -> float:
    v = s.to_numpy(np.float64)
    return float(np.std(v, ddof=1)) if len(v) > 1 and np.isfinite(v).all() else math.nan


def fmt_mean_std(mean: float, std: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if not math.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _fmt_float(x: float) -> str:
    if math.isnan(x):
        return ""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


def markdown_tables(agg: list[dict], *, heading_level: int = 2, datasets=None, metrics=None) -> str:
    """Markdown: per dataset a heading, per metric a table with models as rows and ε as columns."""
    buf = io.StringIO()
    ds_order = []
    for a in agg:
        if a["dataset"] not in ds_order:
            ds_order.append(a["dataset"])
    for d in ds_order:
        if datasets is not None and d not in datasets:
            continue
        sub = [a for a in agg if a["dataset"] == d]
        checksum = sub[0]["dataset_checksum"]
        buf.write(f"{'#' * heading_level} {d}\n\n")
        if checksum:
            buf.write(f"Dataset checksum `{str(checksum)[:16]}…`; n = seeds per cell.\n\n")
        m_order, metric_order = [], []
        for a in sub:
            if a["model"] not in m_order:
                m_order.append(a["model"])
            if a["metric"] not in metric_order:
                metric_order.append(a["metric"])
        for metric in metric_order:
            if metrics is not None and metric not in metrics:
                continue
            rows = [a for a in sub if a["metric"] == metric]
            eps_cols = sorted({a["epsilon"] for a in rows})
            buf.write(f"{'#' * (heading_level + 1)} {metric_title(metric)}\n\n")
            buf.write("| model | n | " + " | ".join(f"ε = {eps_label(e)}" for e in eps_cols) + " |\n")
            buf.write("|---|---|" + "---|" * len(eps_cols) + "\n")
            undefined = []
            for m in m_order:
                cells = {a["epsilon"]: a for a in rows if a["model"] == m}
                if not cells:
                    continue
                if not any(math.isfinite(a["mean"]) for a in cells.values()):
                    undefined.append(m)  # e.g. RMSE of a ranking-only model: a row of n/a says nothing
                    continue
                n = max(a["n_seeds"] for a in cells.values())
                label = m + ("" if next(iter(cells.values()))["private"] else " (non-private)")
                vals = [fmt_mean_std(cells[e]["mean"], cells[e]["std"]) if e in cells else "—" for e in eps_cols]
                buf.write(f"| {label} | {n} | " + " | ".join(vals) + " |\n")
            if undefined:
                buf.write(f"\nNot defined for (not shown): {', '.join(undefined)}.\n")
            buf.write("\n")
    return buf.getvalue()


def write_summary(out, rows: list[dict] | None = None, *, plots: bool = True) -> dict:
    """Write ``summary.md``, ``summary.csv`` and the plots of a results directory. Returns their paths."""
    out = os.fspath(out)
    if rows is None:
        rows = read_results(os.path.join(out, RESULTS_FILE))
    agg = aggregate(rows)
    runs = sorted({r.get("run", "") for r in rows})
    first = min(rows, key=lambda r: r["key"]) if rows else {}
    md = io.StringIO()
    md.write(f"# Benchmark results: {', '.join(runs) or '(no rows)'}\n\n")
    if rows:
        split = first["split"]
        proto = {"random": "random split of ratings", "user": "per-user holdout"}.get(
            split["protocol"], split["protocol"]
        )
        v = first.get("versions", {})
        deltas = sorted({r["delta"] for r in rows if r.get("delta") is not None})
        units = sorted({r["privacy_unit"] for r in rows if r.get("privacy_unit")})
        md.write(f"- split: {proto}, test fraction {split['test_fraction']}, split seed {split['split_seed']}\n")
        if deltas:
            md.write(f"- DP models: δ = {', '.join(f'{x:g}' for x in deltas)}, privacy unit: {', '.join(units)}\n")
        md.write(f"- cells: {len(rows)}; mean ± sample std over seeds\n")
        if any(n.startswith(AUDIT_PREFIX) for r in rows for n in r["metrics"]):
            md.write(
                "- `audit:` columns: dprec.audit.audit_bias at the first k (gaps: best − worst group; groups: "
                "activity quartiles and the sweep's audit_groups). **Not DP**: computed on the private test data "
                "(and user attributes), like every figure here\n"
            )
        md.write(
            f"- dprec {v.get('dprec')}, numpy {v.get('numpy')}, numba {v.get('numba')}, "
            f"implicit {v.get('implicit')}, opendp {v.get('opendp')}, python {v.get('python')}; "
            f"{first.get('machine', {}).get('cpu_count')} CPUs\n"
        )
        sources = sorted({r.get("versions", {}).get("dprec_source_sha256") or "?" for r in rows})
        if len(sources) > 1:
            md.write(
                f"- **warning: the rows come from {len(sources)} different dprec source trees** (code changed "
                "between cells, e.g. across a --resume); re-run into a fresh --out for consistent numbers\n"
            )
        elif sources != ["?"]:
            md.write(f"- dprec source tree sha256 `{sources[0][:16]}…`\n")
        md.write("\n")
    md.write(markdown_tables(agg))
    paths = {"md": os.path.join(out, "summary.md"), "csv": os.path.join(out, "summary.csv")}
    with open(paths["md"], "w", encoding="utf-8") as fh:
        fh.write(md.getvalue())
    with open(paths["csv"], "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for a in agg:
            w.writerow(
                [
                    a["dataset"],
                    a["dataset_checksum"] or "",
                    a["model"],
                    a["model_name"],
                    int(a["private"]),
                    _fmt_float(a["epsilon"]),
                    a["metric"],
                    _fmt_float(a["mean"]),
                    _fmt_float(a["std"]),
                    a["n_seeds"],
                    a["seeds"],
                    f"{a['fit_seconds_mean']:.3f}",
                ]
            )
    if plots and agg:
        from .plots import write_plots

        paths["plots"] = write_plots(out, agg)
    return paths


def summarize_dir(out, *, plots: bool = True) -> dict:
    """Regenerate summary and plots of a results directory from its ``results.jsonl``."""
    path = os.path.join(os.fspath(out), RESULTS_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {RESULTS_FILE} in {out!r}: run `dprec bench run CONFIG --out {out}` first")
    return write_summary(out, read_results(path), plots=plots)


def read_summary_csv(path) -> list[dict]:
    """Rows of a summary.csv with numbers parsed (epsilon/mean/std floats, NaN for empty)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in ("epsilon", "mean", "std"):
            r[k] = float(r[k]) if r[k] not in ("", None) else math.nan
        r["private"] = r["private"] in ("1", "True", "true")
        r["n_seeds"] = int(r["n_seeds"])
    return rows
