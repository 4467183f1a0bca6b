"""``dprec audit``: quality per user group, popularity bias and (``--privacy-audit``) an empirical lower bound
on ε from canaries, for one model at one or several ε — a measurement, never a release.

It splits the data (per-user holdout, ``--split-seed``), fits the model on the training part with ``--seed``
(reproducibility mode: fine for a measurement, not for release), runs :func:`dprec.audit.audit_bias` with the
activity quartiles plus the ``--groups`` attributes (ML-100K: ``gender``, ``age_band``, ``occupation``, ``age``
from :func:`dprec.datasets.attributes.load_user_attributes`; any source: columns of ``--user-attributes CSV``)
and, with ``--privacy-audit``, the one-run canary audit :func:`dprec.audit.audit_model` on the whole data. With
``--plot-dir`` it draws, per attribute, the per-group metric against ε, and the empirical ε̂ against the claimed
ε. Every figure is computed on private data and is **not** DP (:data:`dprec.audit.NOT_DP_NOTE`); the JSON
output feeds ``dprec report MODEL --audit AUDIT.json`` (opt-in, labelled there).
"""

from __future__ import annotations

import json
import math
import os
import warnings

import click

from .._json import to_jsonable
from ..errors import ConfigError, did_you_mean
from ..privacy.units import PrivacyWarning
from . import options as o
from ._app import echo, fmt, table
from .source import load_data, read_table, source_label

AUDIT_NOTICE = (
    "audit figures are computed on the private training and test data (and, for groups, private user "
    "attributes): they are measurements, not differentially private; the models fitted here use --seed "
    "(reproducibility mode) and are not for release"
)
#: the group metrics drawn against ε
PLOT_METRICS = ("ndcg_at_k", "recall_at_k", "precision_at_k", "hit_rate_at_k", "map_at_k", "rmse", "mae")

A = "audit"
P = "privacy (DP models only)"


def _epsilon_label(eps) -> str:
    eps = math.inf if eps in ("inf", "∞") else float(eps)  # JSON form: "inf"
    return "∞" if math.isinf(eps) else f"{eps:g}"


def _groups(kw, data):
    """(DataFrame of the requested attributes indexed by raw user id, or None; where they came from)."""
    import pandas as pd

    cols = list(kw["groups"])
    path = kw["user_attributes"]
    if not cols:
        if path is not None:
            raise ConfigError("--user-attributes needs --groups COL (the attribute columns to audit)")
        return None, None
    if path is not None:
        df = read_table(path, flag="--user-attributes", sep=kw["attributes_sep"])
        ucol = kw["attributes_user_col"] or kw.get("user_col") or "user"
        if ucol not in df.columns:
            raise ConfigError(
                f"--user-attributes {path}: no user column {ucol!r} (columns: {list(df.columns)}); name it with "
                "--attributes-user-col"
            )
        if df[ucol].duplicated().any():
            dup = df[ucol][df[ucol].duplicated()].iloc[0]
            raise ConfigError(f"--user-attributes {path}: user {dup!r} is listed twice")
        ids = df[ucol]
        if data.user_ids.dtype.kind not in "iu":
            ids = ids.astype(str)
        attrs, origin = df.set_index(ids).drop(columns=[ucol]), os.path.basename(path)
    elif kw.get("dataset") == "ml-100k":
        from ..datasets.attributes import load_user_attributes

        try:
            attrs = load_user_attributes("ml-100k", data_home=kw.get("data_home"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--groups: cannot read ML-100K's user attributes: {exc}") from None
        origin = "ml-100k u.user"
    else:
        raise ConfigError(
            "--groups needs user attributes: --dataset ml-100k has them (gender, age_band, occupation, age); "
            "for other data pass --user-attributes CSV (one row per user)"
        )
    for c in cols:
        if c not in attrs.columns:
            raise ConfigError(
                f"--groups {c}: no such attribute; {did_you_mean(c, list(attrs.columns))}available: "
                f"{', '.join(map(str, attrs.columns))}"
            )
    out = attrs[cols].copy()
    if out.index.dtype.kind not in "iu" and data.user_ids.dtype.kind in "iu":
        out.index = pd.to_numeric(out.index, errors="coerce")
    return out, origin


def _bias_run(model, train, test, groups, kw):
    from ..audit import audit_bias

    return audit_bias(model, train, test, groups=groups, k=kw["k"], min_group_users=kw["min_group_users"])


def _privacy_run(ctx, kw, eps, data):
    from ..audit import audit_model

    model = o.build_model(ctx, {**kw, "epsilon": eps})
    if not type(model).is_private or math.isinf(eps):
        return None
    try:
        return audit_model(
            model,
            data,
            n_canaries=kw["canaries"],
            items_per_canary=kw["items_per_canary"],
            rng=kw["split_seed"],
            statistic=kw["audit_statistic"],
        )
    except ConfigError as exc:
        raise ConfigError(f"--privacy-audit: {exc}") from None


def _plots(runs, plot_dir: str, metric: str, model: str) -> list[str]:
    """Per attribute: the group's metric against ε (one line per group); and ε̂ against the claimed ε."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    os.makedirs(plot_dir, exist_ok=True)
    written = []
    eps = [r["epsilon"] for r in runs]
    xs = list(range(len(eps)))
    labels = [_epsilon_label(e) for e in eps]
    attrs = []
    for r in runs:
        for g in r["bias"]["groups"]:
            if g["attribute"] not in attrs:
                attrs.append(g["attribute"])
    for attr in attrs:
        fig, ax = plt.subplots(figsize=(7.0, 4.4), dpi=100)
        names = []
        for r in runs:
            for g in r["bias"]["groups"]:
                if g["attribute"] == attr and g["group"] not in names:
                    names.append(g["group"])
        for name in names:
            ys = []
            for r in runs:
                row = next((g for g in r["bias"]["groups"] if g["attribute"] == attr and g["group"] == name), None)
                v = row.get(metric) if row else None
                ys.append(math.nan if v is None else float(v))
            ax.plot(xs, ys, marker="o", label=str(name))
        ax.set_xticks(xs, labels)
        ax.set_xlabel("ε")
        ax.set_ylabel(metric.replace("_at_k", f"@{runs[0]['bias']['k']}"))
        ax.set_title(f"{model}: {metric} per {attr} group against ε (not DP: private test data)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if len(names) > 8 else 1, loc="best")
        fig.tight_layout()
        path = os.path.join(plot_dir, f"{model}__{metric}__{attr}.png")
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    pa = [(r["epsilon"], r["privacy_audit"]["epsilon_lower"]) for r in runs if r.get("privacy_audit")]
    if pa:
        fig, ax = plt.subplots(figsize=(5.5, 4.4), dpi=100)
        claimed = [e for e, _ in pa]
        ax.plot(claimed, [v for _, v in pa], marker="o", label="empirical ε̂ (95% lower bound)")
        ax.plot(claimed, claimed, linestyle="--", color="grey", label="claimed ε")
        ax.set_xlabel("claimed ε")
        ax.set_ylabel("ε")
        ax.set_title(f"{model}: canary audit (ε̂ > ε would be a violation)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(plot_dir, f"{model}__privacy_audit.png")
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _markdown(out: dict) -> list[str]:
    k = out["k"]
    lines = [f"# Audit: {out['model']} on {out['data']}", "", f"> {out['notice']}.", ""]
    lines.append(
        f"Split: per-user holdout, test fraction {out['split']['test_fraction']}, split seed "
        f"{out['split']['split_seed']}; model seed {out['seed']}; k = {k}; groups: activity quartiles"
        + (f" and {', '.join(out['groups'])} ({out['groups_source']})" if out["groups"] else "")
        + "."
    )
    for r in out["runs"]:
        b = r["bias"]
        lines += ["", f"## ε = {_epsilon_label(r['epsilon'])}", ""]
        pop = b["overall"]["popularity"]
        lines += ["Popularity bias:", ""]
        rows = [[m, fmt(pop.get(m))] for m in ("gini_exposure", "arp", "aplt", "coverage", "popularity_lift")]
        lines += ["```", table(["metric", "value"], rows), "```", "", "Per group:", ""]
        metrics = [
            m for m in ("rmse", "ndcg_at_k", "recall_at_k", "hit_rate_at_k", "arp") if any(m in g for g in b["groups"])
        ]
        rows = [
            [g["attribute"], str(g["group"]), str(g["n_users"]), *(fmt(g.get(m)) for m in metrics)] for g in b["groups"]
        ]
        heads = ["attribute", "group", "users", *(m.replace("_at_k", f"@{k}") for m in metrics)]
        lines += ["```", table(heads, rows), "```", "", "Gaps (best − worst, groups with ≥ "
                  f"{b['min_group_users']} users):", ""]  # fmt: skip
        rows = [
            [g["attribute"], g["metric"].replace("_at_k", f"@{k}"), str(g["best_group"]), str(g["worst_group"]),
             fmt(g["gap"])]
            for g in b["gaps"]
        ]  # fmt: skip
        lines += ["```", table(["attribute", "metric", "best", "worst", "gap"], rows), "```"]
        if r.get("privacy_audit"):
            lines += ["", f"Privacy audit: {r['privacy_audit']['verdict']}"]
    if out.get("plots"):
        lines += ["", "Plots:", ""] + [f"- {p}" for p in out["plots"]]
    return lines


@click.command("audit", cls=o.GroupedCommand)
@o.data_source_options()
@o.model_options(seed_default=0, seed_help="model seed (rng): an audit measures, so it is seeded  [default: 0]")
@o.option("--epsilon", "epsilons", type=o.EPSILON, multiple=True, group=P, help=o.EPSILON_HELP + "; repeat for a sweep")
@o.option("--delta", type=o.DELTA, group=P, help="δ, required for a finite ε (e.g. 1e-5); see " + o.CHOOSING_EPSILON)
@o.option(
    "--privacy-unit",
    type=click.Choice(["user", "rating"]),
    group=P,
    help="what neighbouring datasets differ by  [default: user]",
)
@o.option(
    "--secure-noise/--no-secure-noise",
    default=None,
    group=P,
    help="draw every release through OpenDP's Gaussian measurement  [default: no-secure-noise]",
)
@o.option(
    "--groups",
    metavar="COL",
    multiple=True,
    group=A,
    help="a user attribute to group by (repeatable), beside the activity quartiles; ML-100K: gender, age_band, "
    "occupation, age",
)
@o.option("--user-attributes", metavar="CSV", group=A, help="user attributes file, one row per user (for --groups)")
@o.option(
    "--attributes-user-col",
    metavar="NAME",
    group=A,
    help="user id column of --user-attributes  [default: --user-col or user]",
)
@o.option("--attributes-sep", metavar="SEP", group=A, help="field separator of --user-attributes  [default: ',']")
@o.option("--test-fraction", type=float, default=0.2, show_default=True, group=A, help="per-user share held out")
@o.option("--split-seed", type=int, default=0, show_default=True, group=A, help="seed of the split and the canaries")
@o.option("--k", type=int, default=10, show_default=True, group=A, help="length of recommendation lists")
@o.option(
    "--min-group-users",
    type=int,
    default=20,
    show_default=True,
    group=A,
    help="smaller groups are left out of the gaps",
)
@o.option(
    "--privacy-audit",
    is_flag=True,
    group=A,
    help="also run the one-run canary audit (DP models, finite ε): an empirical lower bound ε̂ on the privacy loss",
)
@o.option(
    "--canaries",
    type=click.IntRange(min=2),
    default=1000,
    show_default=True,
    group=A,
    help="--privacy-audit: canary users",
)
@o.option(
    "--items-per-canary",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    group=A,
    help="--privacy-audit: items of each canary",
)
@o.option(
    "--audit-statistic",
    metavar="NAME",
    default="item_counts_",
    show_default=True,
    group=A,
    help="--privacy-audit: the released per-item array scored",
)
@o.option("--plot-dir", metavar="DIR", group=A, help="write PNG plots: per-group metric against ε, ε̂ against ε")
@o.option(
    "--plot-metric",
    type=click.Choice(PLOT_METRICS),
    default="ndcg_at_k",
    show_default=True,
    group=A,
    help="the metric plotted per group",
)
@o.option(
    "--out",
    "out_file",
    metavar="AUDIT.json",
    group=A,
    help="also write the JSON results here (for `dprec report --audit`)",
)
@o.option(
    "--format",
    "fmt_",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    group=A,
    help="output format",
)
@click.pass_context
def audit(ctx, **kw):
    """Audit a model: quality per user group (activity quartiles, --groups) and popularity bias, optionally the
    canary privacy audit, at each --epsilon.

    The data is split per user (--test-fraction, --split-seed); the model is fitted with --seed (reproducibility
    mode: a measurement, not for release). The figures are computed on private data and are not DP.
    """
    from ..split import user_holdout

    if kw["k"] < 1:
        raise ConfigError(f"--k must be a positive integer, got {kw['k']}")
    if kw["min_group_users"] < 1:
        raise ConfigError(f"--min-group-users must be a positive integer, got {kw['min_group_users']}")
    if not 0.0 < kw["test_fraction"] < 1.0:
        raise ConfigError(f"--test-fraction must lie strictly between 0 and 1, got {kw['test_fraction']}")
    epsilons = sorted(set(kw.pop("epsilons")))
    first = o.build_model(ctx, {**kw, "epsilon": epsilons[0] if epsilons else None})  # validates every flag
    cls = type(first)
    if not cls.is_private and kw["privacy_audit"]:
        raise ConfigError(f"--privacy-audit applies to DP models; model {cls.name!r} is not private")
    if cls.is_private and kw["privacy_audit"] and all(math.isinf(e) for e in epsilons):
        raise ConfigError("--privacy-audit needs a finite --epsilon (ε = ∞ claims nothing to audit)")
    if kw["plot_dir"] is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigError('--plot-dir needs matplotlib (pip install "dprec[bench]")') from None
    data, source = load_data(kw)
    if cls.is_private and data.rating_bounds is None:
        raise ConfigError(
            f"model {cls.name!r} is differentially private and needs the public bounds of the rating scale: pass "
            "--rating-bounds LO,HI (e.g. 1,5)"
        )
    groups, groups_source = _groups(kw, data)
    train, test = user_holdout(data, kw["test_fraction"], rng=kw["split_seed"])

    runs = []
    for eps in epsilons or [math.inf]:
        model = first if not runs else o.build_model(ctx, {**kw, "epsilon": eps if cls.is_private else None})
        with warnings.catch_warnings():  # seeded on purpose: the notice says so
            warnings.filterwarnings("ignore", message=r".*reproducibility mode", category=PrivacyWarning)
            model.fit(train)
            bias = _bias_run(model, train, test, groups, kw)
            pa = _privacy_run(ctx, kw, eps, data) if kw["privacy_audit"] else None
        runs.append(
            {
                "epsilon": eps if cls.is_private else math.inf,
                "bias": bias.to_dict(),
                "flat_metrics": bias.flat_metrics(),
                "privacy_audit": pa.to_dict() if pa is not None else None,
            }
        )
    runs = to_jsonable(runs)
    out = {
        "kind": "dprec-audit",
        "notice": AUDIT_NOTICE,
        "model": cls.name,
        "model_class": cls.__name__,
        "private": bool(cls.is_private),
        "data": source_label(source) if "synthetic" not in source else f"--synthetic {source['synthetic']}",
        "split": {"protocol": "user", "test_fraction": kw["test_fraction"], "split_seed": kw["split_seed"]},
        "seed": kw["seed"],
        "k": kw["k"],
        "groups": list(kw["groups"]),
        "groups_source": groups_source,
        "delta": kw["delta"],
        "privacy_unit": kw["privacy_unit"] or ("user" if cls.is_private else None),
        "runs": runs,
        "plots": [],
    }
    if kw["plot_dir"] is not None:
        out["plots"] = _plots(runs, kw["plot_dir"], kw["plot_metric"], cls.name)
    out = to_jsonable(out)
    if kw["out_file"]:
        try:
            with open(kw["out_file"], "w", encoding="utf-8") as fh:
                json.dump(out, fh, indent=2)
        except OSError as exc:
            raise ConfigError(f"--out {kw['out_file']}: cannot write ({exc})") from None
    if kw["fmt_"] == "json":
        echo(json.dumps(out, indent=2))
    else:
        echo("\n".join(_markdown(out)))
