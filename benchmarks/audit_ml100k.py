"""MovieLens-100K audit: per-group quality and popularity bias, empirical privacy audit, membership inference.

Writes ``benchmarks/results/audit-ml100k/`` (``audit.json``, ``summary.md``, ``groups.png``, ``epsilon.png``):

* bias audit (:func:`dprec.audit.audit_bias`) of ALS (explicit; and implicit as the ranking reference), DP-ALS
  and DP item-item at ε ∈ {1, 10} (noise seeds 0, 1, 2), on the per-user holdout (20%, split seed 0): RMSE and
  NDCG@10 per gender, age band, occupation and activity quartile, the best–worst gaps, popularity bias;
* one-run privacy audit (:func:`dprec.audit.audit_model`, Steinke–Nasr–Jagielski 2023) of DP-ALS, DP item-item
  and DP popularity at ε ∈ {1, 10}: 1,000 canaries of 20 own items each, inserted with probability ½, scored on
  the released item counts of the ``export_public`` artifact; plus the same audit with the noise switched off
  while claiming ε = 1 (must be flagged);
* multi-run Clopper–Pearson audit of DP popularity (2,000 + 2,000 fits) and DP-ALS (300 + 300) at ε ∈ {1, 10}
  with one canary;
* membership inference (:mod:`dprec.audit.membership`) on ALS's served scores (record and user level), with
  DP-ALS for contrast.

Reproduce (about 3 minutes on 2 cores)::

    DPREC_DATA=/path/to/datasets PYTHONPATH=src python benchmarks/audit_ml100k.py

Every figure here is computed from private data: measurements, not DP releases. DP models are fitted with
explicit seeds (reproducibility mode): nothing fitted here is for release.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from dprec import Interactions
from dprec._json import to_jsonable
from dprec._provenance import versions
from dprec.audit import (
    NOT_DP_NOTE,
    audit_bias,
    audit_model,
    insert_canaries,
    make_canaries,
    multi_run_epsilon,
    one_run_epsilon,
    record_membership_auc,
    user_membership_auc,
)
from dprec.audit.privacy import DEFAULT_GUESS_FRACTIONS
from dprec.datasets import dataset_checksum, load_dataset
from dprec.datasets.attributes import load_user_attributes
from dprec.models import ALS, DPALS, DPSGD, DPGlobalEffects, DPImplicitALS, DPItemItem, DPPopularity, DPRanker
from dprec.privacy.noise import NoiseSource
from dprec.privacy.units import PrivacyWarning
from dprec.split import user_holdout

OUT = Path(__file__).resolve().parent / "results" / "audit-ml100k"
DELTA = 1e-5
EPSILONS = (1.0, 10.0)
NOISE_SEEDS = (0, 1, 2)
SPLIT = {"protocol": "user_holdout", "test_fraction": 0.2, "split_seed": 0}
CANARIES = {"n_canaries": 1000, "items_per_canary": 20, "alpha": 0.05, "statistic": "item_counts_"}
#: fits with the canary and as many without, per model (DP popularity fits in milliseconds)
MULTI_RUNS = {"dp-popularity": 2000, "dp-als": 300}
ATTRIBUTES = ("gender", "age_band", "occupation")

MODELS = {
    "als": ("ALS (explicit)", lambda eps, seed: ALS(rng=seed)),
    "als-implicit": (
        "ALS (implicit feedback)",
        lambda eps, seed: ALS(factors=32, iterations=15, feedback="implicit", alpha=1.0, rng=seed),
    ),
    "dp-als": ("DP-ALS", lambda eps, seed: DPALS(epsilon=eps, delta=DELTA, rng=seed)),
    "dp-itemitem": ("DP item-item (EASE)", lambda eps, seed: DPItemItem(epsilon=eps, delta=DELTA, rng=seed)),
    "dp-popularity": ("DP popularity", lambda eps, seed: DPPopularity(epsilon=eps, delta=DELTA, rng=seed)),
    "dp-baseline": ("DP global effects", lambda eps, seed: DPGlobalEffects(epsilon=eps, delta=DELTA, rng=seed)),
    "dp-implicit-als": ("DP implicit ALS", lambda eps, seed: DPImplicitALS(epsilon=eps, delta=DELTA, rng=seed)),
    "dp-ranker": ("DP ranker (default)", lambda eps, seed: DPRanker(epsilon=eps, delta=DELTA, rng=seed)),
    "dp-sgd": ("DP-SGD", lambda eps, seed: DPSGD(epsilon=eps, delta=DELTA, rng=seed)),
}
#: every DP model gets the one-run canary audit (each releases DP item counts, the scored statistic)
PRIVACY_AUDITED = ("dp-als", "dp-itemitem", "dp-popularity", "dp-baseline", "dp-implicit-als", "dp-ranker", "dp-sgd")


def _no_noise(self, values, *, step, sigma, sensitivity, index=0):
    """A deliberately broken Gaussian mechanism: the exact statistic, while the model claims its ε."""
    self.samplers.setdefault(step, "BROKEN: no noise")
    return np.asarray(values, dtype=np.float64).copy()


def bias_rows(train, test, attrs, log):
    rows = []
    cells = [("als", math.inf, 0), ("als-implicit", math.inf, 0)]
    cells += [(name, eps, s) for name in ("dp-als", "dp-itemitem") for eps in EPSILONS for s in NOISE_SEEDS]
    for name, eps, seed in cells:
        t = time.perf_counter()
        model = MODELS[name][1](eps, seed).fit(train)
        res = audit_bias(model, train, test, groups=attrs, k=10)
        rows.append(
            {
                "model": name,
                "label": MODELS[name][0],
                "epsilon": eps,
                "seed": seed,
                **res.to_dict(),
                "seconds": time.perf_counter() - t,
            }
        )
        log(f"bias  {name:13s} ε={eps:<4} seed={seed}  NDCG@10={res.overall['ndcg_at_k']:.4f}")
    return rows


def privacy_rows(data, log):
    rows = []
    for name in PRIVACY_AUDITED:
        for eps in EPSILONS:
            for seed in NOISE_SEEDS:
                res = audit_model(
                    MODELS[name][1](eps, seed),
                    data,
                    n_canaries=CANARIES["n_canaries"],
                    items_per_canary=CANARIES["items_per_canary"],
                    alpha=CANARIES["alpha"],
                    statistic=CANARIES["statistic"],
                    rng=1000 + seed,
                )
                rows.append(
                    {**res.to_dict(), "class": res.model, "model": name, "epsilon": eps, "seed": seed, "broken": False}
                )
                log(f"audit {name:13s} ε={eps:<4} seed={seed}  ε̂={res.epsilon_lower:.3f}  {res.v}/{res.r}")
    original = NoiseSource.release
    NoiseSource.release = _no_noise
    try:
        for name in ("dp-als", "dp-itemitem", "dp-popularity"):
            res = audit_model(MODELS[name][1](1.0, 0), data, rng=1000, **{k: v for k, v in CANARIES.items()})
            rows.append({**res.to_dict(), "class": res.model, "model": name, "epsilon": 1.0, "seed": 0, "broken": True})
            log(f"audit {name:13s} BROKEN (claims ε=1)  ε̂={res.epsilon_lower:.3f}  {res.verdict[:9]}")
    finally:
        NoiseSource.release = original
    return rows


def multi_run_rows(data, log):
    design = make_canaries(data, 1, CANARIES["items_per_canary"], rng=7)
    design.included[:] = True
    with_canary = insert_canaries(data, design)
    design.included[:] = False
    without = insert_canaries(data, design)  # same catalog, canary absent
    cols = without.item_inner(design.item_ids.ravel())
    rows = []
    for name, n_runs in MULTI_RUNS.items():
        for eps in EPSILONS:
            t = time.perf_counter()
            s_in, s_out = [], []
            for run in range(n_runs):
                for d, acc in ((with_canary, s_in), (without, s_out)):
                    m = MODELS[name][1](eps, 10_000 + 2 * run + (acc is s_out)).fit(d)
                    acc.append(float(np.asarray(m.item_counts_)[cols].sum()))  # a released array
            res = multi_run_epsilon(s_in, s_out, delta=DELTA, alpha=0.05)
            rows.append({"model": name, "epsilon": eps, "runs_each": n_runs, **res})
            log(f"multi {name:13s} ε={eps:<4} ε̂={res['epsilon_lower']:.3f}  ({time.perf_counter() - t:.0f} s)")
    return rows


def membership_rows(data, train, test, log):
    rows = []
    df = data.to_pandas()
    inm = np.random.default_rng(0).random(data.n_users) < 0.5

    def part(keep):
        sub = df[df.user.isin(data.user_ids[keep])]
        return Interactions.from_pandas(sub, rating_bounds=data.rating_bounds, item_catalog=data.item_ids)

    members, nonmembers = part(inm), part(~inm)
    for name, eps in [("als", math.inf), ("als-implicit", math.inf), ("dp-als", 1.0), ("dp-als", 10.0)]:
        rec = record_membership_auc(MODELS[name][1](eps, 0).fit(train), train, test, rng=0)
        usr = user_membership_auc(MODELS[name][1](eps, 0).fit(members), members, nonmembers)
        rows.append({"model": name, "epsilon": eps, "record": rec, "user": usr})
        log(f"mia   {name:13s} ε={eps:<4} record AUC={rec['auc']:.3f}  user AUC={usr['auc']:.3f}")
    return rows


# ---------------------------------------------------------------------------------------------- output
def _fmt(x, nd=3):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _eps(e):
    return "∞" if math.isinf(e) else f"{e:g}"


def _mean_sd(vals):
    v = np.array([x for x in vals if x is not None and not math.isnan(x)], dtype=float)
    if v.size == 0:
        return "—"
    return f"{v.mean():.3f}" if v.size == 1 else f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def _cells(bias):
    out = {}
    for r in bias:
        out.setdefault((r["model"], r["epsilon"]), []).append(r)
    return out


def _one_run_ceiling() -> float:
    m = CANARIES["n_canaries"]
    return max(
        one_run_epsilon(m, r, r, DELTA, alpha=CANARIES["alpha"] / len(DEFAULT_GUESS_FRACTIONS))
        for r in (2 * (int(f * m) // 2) for f in DEFAULT_GUESS_FRACTIONS)
    )


def _multi_ceiling(n_runs: int) -> float:
    return multi_run_epsilon(np.ones(n_runs), np.zeros(n_runs), delta=DELTA, alpha=0.05)["epsilon_lower"]


def summary_md(result) -> str:
    bias, priv, multi, mia = result["bias"], result["privacy"], result["multi_run"], result["membership"]
    cells = _cells(bias)
    L = [
        "# MovieLens-100K audit: per-group quality, popularity bias, empirical privacy",
        "",
        "Generated by `benchmarks/audit_ml100k.py` (see its docstring to reproduce). Per-user holdout (20% of each "
        "user's ratings, split seed 0); DP models at δ = 1e-5, user-level DP, noise seeds 0, 1, 2 (mean ± std).",
        "",
        f"**Not DP.** {NOT_DP_NOTE}. DP models were fitted in reproducibility mode (explicit seeds): nothing "
        "fitted here is for release.",
        "",
        "## Quality per group (RMSE and NDCG@10)",
        "",
        "Gap = best − worst group (groups with ≥ 20 users; occupation has 21 groups, see `audit.json`).",
        "",
        "| model | ε | RMSE | NDCG@10 | NDCG@10 F / M | NDCG@10 activity Q1 / Q4 | RMSE gap gender | RMSE gap age "
        "| RMSE gap activity | NDCG gap gender | NDCG gap age | NDCG gap activity | NDCG gap occupation |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def grp(rows, attr, group, metric):
        vals = []
        for r in rows:
            for g in r["groups"]:
                if g["attribute"] == attr and g["group"] == group:
                    vals.append(g[metric])
        return _mean_sd(vals)

    def gap(rows, attr, metric):
        vals = [g["gap"] for r in rows for g in r["gaps"] if g["attribute"] == attr and g["metric"] == metric]
        return _mean_sd(vals)

    for (name, eps), rows in cells.items():
        L.append(
            f"| {MODELS[name][0]} | {_eps(eps)} | {_mean_sd([r['overall']['rmse'] for r in rows])} "
            f"| {_mean_sd([r['overall']['ndcg_at_k'] for r in rows])} "
            f"| {grp(rows, 'gender', 'F', 'ndcg_at_k')} / {grp(rows, 'gender', 'M', 'ndcg_at_k')} "
            f"| {grp(rows, 'activity', 'Q1', 'ndcg_at_k')} / {grp(rows, 'activity', 'Q4', 'ndcg_at_k')} "
            f"| {gap(rows, 'gender', 'rmse')} | {gap(rows, 'age_band', 'rmse')} | {gap(rows, 'activity', 'rmse')} "
            f"| {gap(rows, 'gender', 'ndcg_at_k')} | {gap(rows, 'age_band', 'ndcg_at_k')} "
            f"| {gap(rows, 'activity', 'ndcg_at_k')} | {gap(rows, 'occupation', 'ndcg_at_k')} |"
        )
    cols = [("gender", g) for g in ("F", "M")] + [("age_band", a) for a in _AGE]
    cols += [("activity", q) for q in ("Q1", "Q2", "Q3", "Q4")]
    for metric, title, rating_only in (("rmse", "RMSE", True), ("ndcg_at_k", "NDCG@10", False)):
        L += [
            "",
            f"{title} per group (gender; age band; activity quartile, Q1 = lightest users):",
            "",
            "| model | ε | " + " | ".join(g for _, g in cols) + " |",
            "|---|---|" + "---|" * len(cols),
        ]
        for (name, eps), rows in cells.items():
            if rating_only and all(r["overall"]["rmse"] is None or math.isnan(r["overall"]["rmse"]) for r in rows):
                continue
            L.append(
                f"| {MODELS[name][0]} | {_eps(eps)} | " + " | ".join(grp(rows, a, g, metric) for a, g in cols) + " |"
            )
    L += [
        "",
        "Group sizes (users): "
        + ", ".join(
            f"{g} {x['n_users']}" for a, g in cols for x in bias[0]["groups"] if x["attribute"] == a and x["group"] == g
        )
        + ".",
    ]
    L += [
        "",
        "## Popularity bias of the top-10 lists",
        "",
        "ARP and history popularity in training interactions per item; APLT: share of long-tail items (the least "
        "popular items holding 20% of the interactions); lift = (ARP_u − history_u) / history_u, averaged.",
        "",
        "| model | ε | Gini of exposure | ARP | APLT | coverage | history popularity | popularity lift |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, eps), rows in cells.items():
        p = [r["overall"]["popularity"] for r in rows]
        L.append(
            f"| {MODELS[name][0]} | {_eps(eps)} | {_mean_sd([x['gini_exposure'] for x in p])} "
            f"| {_mean_sd([x['arp'] for x in p])} | {_mean_sd([x['aplt'] for x in p])} "
            f"| {_mean_sd([x['coverage'] for x in p])} | {_mean_sd([x['history_popularity'] for x in p])} "
            f"| {_mean_sd([x['popularity_lift'] for x in p])} |"
        )
    L += [
        "",
        "## Empirical privacy audit (one run, Steinke–Nasr–Jagielski 2023)",
        "",
        f"{CANARIES['n_canaries']} canary users, each rating {CANARIES['items_per_canary']} items of its own at 5 "
        "stars, inserted with probability ½; score = sum of the released item counts of the canary's items, "
        "read from the `export_public` artifact; guesses on the top and bottom scores, ε̂ at confidence 95% "
        "(Bonferroni over 6 guess counts). ε̂ is a lower bound on the true ε: it must not exceed the claim. "
        "It audits the counts release only, so a small ε̂ is not a proof of privacy. With "
        f"{CANARIES['n_canaries']} canaries the most a run can certify (every guess right) is "
        f"ε̂ = {_one_run_ceiling():.2f}.",
        "",
        "| model | claimed ε | ε̂ (seed 0, 1, 2) | guesses right (seed 0) | verdict |",
        "|---|---|---|---|---|",
    ]
    groups = {}
    for r in priv:
        groups.setdefault((r["model"], r["epsilon"], r["broken"]), []).append(r)
    for (name, eps, broken), rows in groups.items():
        label = MODELS[name][0] + (" — **noise off (broken)**" if broken else "")
        bad = any(r["violation"] for r in rows)
        L.append(
            f"| {label} | {_eps(eps)} | {', '.join(_fmt(r['epsilon_lower']) for r in rows)} "
            f"| {rows[0]['v']}/{rows[0]['r']} | {'VIOLATION' if bad else 'consistent (ε̂ ≤ ε)'} |"
        )
    L += [
        "",
        "## Multi-run audit (Clopper–Pearson)",
        "",
        f"One canary ({CANARIES['items_per_canary']} own items, 5 stars); N fits with it and N without (a fresh "
        "noise seed each); score = sum of the released item counts of its items; threshold chosen on the first "
        "half of the runs, TPR/FPR Clopper–Pearson intervals (97.5% each) on the second half. Ceiling: the ε̂ "
        "of a perfect separation with the same N (the most these runs can certify).",
        "",
        "| model | claimed ε | N | TPR | FPR | ε̂ | ceiling |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in multi:
        L.append(
            f"| {MODELS[r['model']][0]} | {_eps(r['epsilon'])} | {r['runs_each']} | {_fmt(r['tpr'])} | {_fmt(r['fpr'])} "
            f"| {_fmt(r['epsilon_lower'])} | {_fmt(_multi_ceiling(r['runs_each']))} |"
        )
    L += [
        "",
        "## Membership inference on served scores (AUC; 0.5 = no leak)",
        "",
        "Record level: loss attack, training vs held-out ratings of the same users (20,000 of each). User level: "
        "the candidate's ratings folded in as a new user, score = −mean squared error of the fold-in; members = a "
        "random half of the users (the model's training set), non-members = the other half.",
        "",
        "| model | ε | record-level AUC | user-level AUC |",
        "|---|---|---|---|",
    ]
    for r in mia:
        L.append(
            f"| {MODELS[r['model']][0]} | {_eps(r['epsilon'])} | {_fmt(r['record']['auc'])} | {_fmt(r['user']['auc'])} |"
        )
    L.append("")
    return "\n".join(L)


_AGE = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")


def plots(result, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = _cells(result["bias"])
    panels = [("gender", ("F", "M")), ("age_band", _AGE), ("activity", ("Q1", "Q2", "Q3", "Q4"))]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [2, 7, 4]})
    keys = list(cells)
    width = 0.8 / len(keys)
    for ax, (attr, groups) in zip(axes, panels):
        for j, key in enumerate(keys):
            vals = []
            for g in groups:
                v = [
                    x["ndcg_at_k"]
                    for r in cells[key]
                    for x in r["groups"]
                    if x["attribute"] == attr and x["group"] == g
                ]
                vals.append(np.mean(v) if v else np.nan)
            ax.bar(np.arange(len(groups)) + (j - len(keys) / 2 + 0.5) * width, vals, width,
                   label=f"{MODELS[key[0]][0]} ε={_eps(key[1])}")  # fmt: skip
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_title(attr)
        ax.set_ylabel("NDCG@10")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(keys))
    fig.suptitle("MovieLens-100K: NDCG@10 per user group (mean over noise seeds; not DP)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(out / "groups.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    markers = dict(zip(PRIVACY_AUDITED, "os^vDP*"))
    for r in result["privacy"]:
        x = r["epsilon"] + 0.12 * (list(markers).index(r["model"]) - 3)
        ax.scatter(x, r["epsilon_lower"], marker=markers[r["model"]], color="red" if r["broken"] else "C0", alpha=0.8)
    for name, mk in markers.items():
        ax.scatter([], [], marker=mk, color="C0", label=MODELS[name][0])
    ax.scatter([], [], marker="o", color="red", label="noise off, claims ε = 1")
    xs = np.linspace(0, 11, 50)
    ax.plot(xs, xs, "k--", lw=1, label="ε̂ = claimed ε")
    m = CANARIES["n_canaries"]
    ceiling = _one_run_ceiling()
    ax.axhline(ceiling, color="gray", lw=1, ls=":", label=f"ceiling: every guess right ({m} canaries)")
    ax.set_xlim(0, 11)
    ax.set_ylim(-0.2, 11)
    ax.set_xticks(list(EPSILONS))
    ax.set_xlabel("claimed ε")
    ax.set_ylabel("one-run empirical lower bound ε̂ (95%)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Empirical privacy audit, MovieLens-100K (δ = 1e-5)")
    fig.tight_layout()
    fig.savefig(out / "epsilon.png", dpi=110)
    plt.close(fig)
    return ["groups.png", "epsilon.png"]


def _load(path: Path) -> dict:
    """``audit.json`` back with numeric ε (``"inf"`` → ``math.inf``)."""
    result = json.loads(path.read_text())
    for part in ("bias", "privacy", "multi_run", "membership"):
        for r in result[part]:
            r["epsilon"] = float(r["epsilon"])
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--skip-multi-run", action="store_true", help="skip the multi-run audit (9,200 fits)")
    ap.add_argument("--replot", action="store_true", help="only redraw summary.md and the plots from audit.json")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        result = _load(out / "audit.json")
        plots(result, out)
        (out / "summary.md").write_text(summary_md(result))
        return 0
    warnings.simplefilter("ignore", PrivacyWarning)  # reproducibility mode is intended here, and stated
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    data = load_dataset("ml-100k")
    attrs = load_user_attributes()[list(ATTRIBUTES)]
    train, test = user_holdout(data, SPLIT["test_fraction"], rng=SPLIT["split_seed"])
    result = {
        "schema": "dprec-audit/1",
        "dataset": {
            "name": "ml-100k",
            "checksum": dataset_checksum("ml-100k"),
            "checksum_kind": "sha256 of u.data",
            "n_users": data.n_users,
            "n_items": data.n_items,
            "n_ratings": data.nnz,
        },
        "config": {
            "split": SPLIT,
            "delta": DELTA,
            "epsilons": EPSILONS,
            "noise_seeds": NOISE_SEEDS,
            "attributes": ATTRIBUTES,
            "k": 10,
            "min_group_users": 20,
            "long_tail_share": 0.2,
            "canaries": CANARIES,
            "canary_seeds": [1000 + s for s in NOISE_SEEDS],
            "multi_runs_each": MULTI_RUNS,
            "membership_split_seed": 0,
            "models": {k: v[0] for k, v in MODELS.items()},
        },
        "notes": [
            NOT_DP_NOTE,
            "DP models fitted with explicit seeds (reproducibility mode, PrivacyWarning silenced): not for release",
            "the privacy audit scores the released item counts only; ε̂ is a lower bound, not a proof of privacy",
        ],
        "versions": versions(),
        "machine": {"cpu_count": os.cpu_count(), "system": platform.system(), "arch": platform.machine()},
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
    }
    result["bias"] = bias_rows(train, test, attrs, log)
    result["privacy"] = privacy_rows(data, log)
    result["multi_run"] = [] if args.skip_multi_run else multi_run_rows(data, log)
    result["membership"] = membership_rows(data, train, test, log)
    result["seconds"] = time.perf_counter() - t0
    result["plots"] = plots(result, out)
    (out / "audit.json").write_text(json.dumps(to_jsonable(result), indent=1, ensure_ascii=False) + "\n")
    (out / "summary.md").write_text(summary_md(result))
    claims = [r for r in result["privacy"] if not r["broken"]]
    ok = all(not r["violation"] for r in claims) and all(r["violation"] for r in result["privacy"] if r["broken"])
    log(f"wrote {out} — honest models within their claims and broken ones flagged: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
