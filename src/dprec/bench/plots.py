"""Accuracy-versus-privacy plots: one PNG per (dataset, metric).

x = ε on a log axis (finite ε only); one line per DP model with error bars (sample std over seeds); each DP
model's ε = ∞ point as a dotted horizontal line in its colour; non-private models as dashed horizontal lines.
Needs matplotlib (the ``[bench]`` extra); without it no plots are written (a warning says so).
"""

from __future__ import annotations

import math
import os
import re
import warnings

from .config import split_metric_name

__all__ = ["write_plots", "plot_filename"]


def plot_filename(dataset: str, metric: str) -> str:
    safe = lambda s: re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")  # noqa: E731
    base, k = split_metric_name(metric)
    return f"{safe(dataset)}__{safe(f'{base}_at_{k}' if k else base)}.png"


def write_plots(out, agg: list[dict]) -> list[str]:
    """Write the plots of aggregated rows (see :func:`dprec.bench.summary.aggregate`) into ``OUT/plots``."""
    try:
        import matplotlib
    except ImportError:
        warnings.warn('matplotlib is not installed (pip install "dprec[bench]"): no plots written', stacklevel=2)
        return []

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from .summary import metric_title

    plot_dir = os.path.join(os.fspath(out), "plots")
    os.makedirs(plot_dir, exist_ok=True)
    written = []
    keys = []
    for a in agg:
        if (a["dataset"], a["metric"]) not in keys:
            keys.append((a["dataset"], a["metric"]))
    for dataset, metric in keys:
        rows = [a for a in agg if a["dataset"] == dataset and a["metric"] == metric and math.isfinite(a["mean"])]
        if not rows:
            continue
        models = []
        for a in rows:
            if a["model"] not in models:
                models.append(a["model"])
        finite_eps = sorted({a["epsilon"] for a in rows if math.isfinite(a["epsilon"])})
        fig, ax = plt.subplots(figsize=(7.0, 4.4), dpi=100)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        have_x = bool(finite_eps)
        for i, m in enumerate(models):
            color = colors[i % len(colors)]
            pts = sorted((a for a in rows if a["model"] == m), key=lambda a: a["epsilon"])
            private = pts[0]["private"]
            fin = [a for a in pts if math.isfinite(a["epsilon"])]
            inf = [a for a in pts if not math.isfinite(a["epsilon"])]
            if private and fin:
                ax.errorbar(
                    [a["epsilon"] for a in fin],
                    [a["mean"] for a in fin],
                    yerr=[a["std"] if math.isfinite(a["std"]) else 0.0 for a in fin],
                    marker="o",
                    capsize=3,
                    color=color,
                    label=m,
                )
                for a in inf:
                    ax.axhline(a["mean"], color=color, linestyle=":", linewidth=1.2, label=f"{m} (ε = ∞)")
            else:
                for a in inf or fin:
                    ax.axhline(
                        a["mean"],
                        color=color,
                        linestyle="--",
                        linewidth=1.2,
                        label=f"{m} (non-private)" if not private else f"{m} (ε = ∞)",
                    )
        if have_x:
            ax.set_xscale("log")
            lo, hi = finite_eps[0], finite_eps[-1]
            ax.set_xlim(lo / 1.5, hi * 1.5)
            ax.set_xticks(finite_eps)
            ax.set_xticklabels([f"{e:g}" for e in finite_eps])
            ax.minorticks_off()
        ax.set_xlabel("ε (log scale)")
        ax.set_ylabel(metric_title(metric))
        ax.set_title(f"{dataset}: {metric_title(metric)} vs ε")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
        path = os.path.join(plot_dir, plot_filename(dataset, metric))
        fig.savefig(path, metadata={"Software": None}, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
