"""The model card of a dprec model file: what a reader needs to judge a DP recommender, and nothing that leaks.

:func:`model_card` builds it (a JSON-able dict) from a model file (``dprec train --out`` or
``--export-public``) and, if given, the ledger's public summary; :func:`card_markdown` renders it. The
``dprec report`` command prints exactly this. Sections:

- **data**: the dataset's public name (a public input: the ledger's label or the caller's), the DP user count
  ñ rounded to :data:`COUNT_ROUNDING` (a DP release post-processed), the item count only when it is public
  (a declared catalog) or a DP output (the items released by DP item selection), the rating bounds (public);
- **privacy**: the unit, ε/δ spent with the per-step breakdown (statistic, mechanism, Δ₂, σ, ρ, share), the
  contribution bounds, the public assumptions, the noise origin and the ledger state;
- **contents**: what the file holds and which part is the DP artifact;
- **evaluation** and **audit** (opt-in, ``evaluation=`` / ``audit=``): figures computed on private data,
  labelled as such (:data:`NOT_DP_LABEL`), rounded to :data:`METRIC_DIGITS` decimals and stripped of every
  count, seed and fingerprint of the files they come from;
- **intended use** and **known limitations**, from the model's declared properties.

Publication hygiene (``docs/privacy-model.md`` §7): the card never carries a noise seed, a hash or
fingerprint of the data, a ledger hash or time, or an exact count — per-user and (private-catalog) per-item
arrays are listed without their length, and ``n_users_dp`` is dropped from the bounds at ε = ∞ (where it is the
exact count).
"""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np

from ._json import to_jsonable
from .errors import ConfigError, CorruptFileError

__all__ = ["model_card", "card_markdown", "NOT_DP_LABEL", "COUNT_ROUNDING", "METRIC_DIGITS", "round_count"]

#: the label of every evaluation or audit figure in a card
NOT_DP_LABEL = (
    "NOT differentially private: computed on the private training/test data (and, for groups, private user "
    "attributes) of a model of the same configuration fitted with a seed for measurement; included at the "
    "owner's request, outside the model's ε"
)
#: DP counts in a card are rounded to this many users (post-processing; hides the noise draw's digits)
COUNT_ROUNDING = 10
#: decimals of the evaluation and audit figures in a card
METRIC_DIGITS = 3

_EVAL_METRICS = ("rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k")
_EVAL_METRICS += ("recall_at_20", "coverage")
#: popularity-bias figures kept from an audit (n_tail_items is an exact count of the training data: dropped)
_POPULARITY = ("gini_exposure", "arp", "aplt", "coverage", "history_popularity", "popularity_lift")
#: per-group figures kept from an audit (never the group's n_users / n_test_ratings / n_ranked_users)
_GROUP_METRICS = ("rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "hit_rate_at_k", "arp", "aplt")


def round_count(x: float | None, step: int = COUNT_ROUNDING) -> int | None:
    """A DP count for publication: ``max(0, round(x / step) · step)`` (post-processing of a DP release)."""
    if x is None or not math.isfinite(float(x)):
        return None
    return int(max(0, round(float(x) / step) * step))


def _r(x, digits: int = METRIC_DIGITS):
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return round(v, digits) if math.isfinite(v) else (None if math.isnan(v) else v)


def _read_manifest(path: str) -> dict:
    try:
        with zipfile.ZipFile(path) as z, z.open("__manifest__.npy") as fh:
            raw = np.lib.format.read_array(fh, allow_pickle=False)
        manifest = json.loads(raw.tobytes().decode())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, UnicodeDecodeError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _load(path: str):
    """(model, manifest) of a model file; the loaders verify every checksum."""
    from .models._dp import DPModelMixin
    from .models.base import Recommender

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"model file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CorruptFileError(
            f"{path} is not a dprec model file (`dprec train` writes them with --out / --export-public)"
        )
    manifest = _read_manifest(path)
    if manifest.get("format") == "dprec-public":
        return DPModelMixin.load_public(path), manifest
    return Recommender.load(path), manifest


def _public_name(name: str | None) -> str | None:
    # a dataset id is "<public name>:<fingerprint>": only the part before the first ':' may be published
    if name is None:
        return None
    return str(name).split(":", 1)[0].strip() or None


def _read_json(obj, what: str) -> dict:
    if isinstance(obj, dict):
        return obj
    path = os.fspath(obj)
    if not os.path.isfile(path):
        raise ConfigError(f"{what}: file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{what} {path}: not a JSON document ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{what} {path}: expected a JSON object")
    return doc


def _same_epsilon(a, b) -> bool:
    a = math.inf if a in (None, "inf", "∞") else float(a)
    b = math.inf if b in (None, "inf", "∞") else float(b)
    return a == b or (math.isfinite(a) and math.isfinite(b) and math.isclose(a, b, rel_tol=1e-9))


def _evaluation_section(doc: dict, model_name: str, epsilon, what: str) -> dict:
    """The figures of a ``dprec evaluate --format json`` document, without its counts, seeds and checksums."""
    cfg = doc.get("config")
    if not isinstance(cfg, dict) or "rmse" not in doc:
        raise ConfigError(f"{what}: not the output of `dprec evaluate --format json`")
    if cfg.get("model") != model_name:
        raise ConfigError(f"{what}: evaluates model {cfg.get('model')!r}, but the model file holds {model_name!r}")
    if cfg.get("private") and not _same_epsilon(cfg.get("epsilon"), epsilon):
        raise ConfigError(f"{what}: evaluated at ε = {cfg.get('epsilon')}, but the model file has ε = {epsilon}")
    return {
        "source": "dprec evaluate",
        "split": cfg.get("split"),
        "test_fraction": cfg.get("test_fraction") if cfg.get("split") != "strong" else None,
        "k": doc.get("k"),
        "metrics": {m: _r(doc.get(m)) for m in _EVAL_METRICS if m in doc},
        "label": NOT_DP_LABEL,
    }


def _audit_section(doc: dict, model_name: str, epsilon, what: str) -> dict:
    """The run at the model's ε of a ``dprec audit --format json`` document, without counts and seeds."""
    if doc.get("kind") != "dprec-audit" or not isinstance(doc.get("runs"), list):
        raise ConfigError(f"{what}: not the output of `dprec audit --format json`")
    if doc.get("model") != model_name:
        raise ConfigError(f"{what}: audits model {doc.get('model')!r}, but the model file holds {model_name!r}")
    runs = [r for r in doc["runs"] if _same_epsilon(r.get("epsilon"), epsilon)]
    if not runs:
        have = ", ".join(str(r.get("epsilon")) for r in doc["runs"])
        raise ConfigError(f"{what}: has no run at the model's ε = {epsilon} (it has ε = {have})")
    run = runs[0]
    bias = run.get("bias") or {}
    out = {
        "source": "dprec audit",
        "split": doc.get("split", {}).get("protocol"),
        "k": bias.get("k"),
        "popularity": {
            m: _r(v) for m, v in (bias.get("overall", {}).get("popularity") or {}).items() if m in _POPULARITY
        },
        "gaps": [
            {
                "attribute": g.get("attribute"),
                "metric": g.get("metric"),
                "best_group": g.get("best_group"),
                "worst_group": g.get("worst_group"),
                "gap": _r(g.get("gap")),
            }
            for g in bias.get("gaps", [])
        ],
        "groups": [
            {
                "attribute": g.get("attribute"),
                "group": g.get("group"),
                **{m: _r(g.get(m)) for m in _GROUP_METRICS if m in g},
            }
            for g in bias.get("groups", [])
        ],
        "label": NOT_DP_LABEL,
    }
    pa = run.get("privacy_audit")
    if pa:
        out["privacy_audit"] = {
            "claimed_epsilon": pa.get("claimed_epsilon"),
            "epsilon_lower": _r(pa.get("epsilon_lower")),
            "confidence": 1 - float(pa.get("alpha", 0.05)),
            "n_canaries": pa.get("m"),  # a design input of the audit, not a count of the data
            "statistic": pa.get("statistic"),
            "violation": bool(pa.get("violation")),
            "note": "one-run canary audit (Steinke, Nasr & Jagielski 2023): ε̂ is a lower bound; ε̂ ≤ ε is "
            "consistent with the claim, not a proof of privacy",
        }
    return out


def _limitations(cls, rep: dict | None, contents: dict) -> list[str]:
    out = []
    if rep is None or not rep.get("is_private"):
        out.append(
            "not differentially private: nothing in the file may be shared beyond those who may see the raw data"
        )
    else:
        if "reproducibility mode" in str(rep.get("noise", "")):
            out.append("trained in reproducibility mode (a caller-given seed): for measurement, not for release")
        if "no ledger" in str(rep.get("ledger", "")):
            out.append("trained without a ledger: this fit's privacy cost is not tracked against a dataset total")
        if any(s.get("name") == "item_selection" for s in rep.get("steps", [])):
            out.append("no public item catalog: only items passing the DP selection threshold can be recommended")
        out.append(
            "the guarantee covers the released item side (the public export); recommendations shown to a user "
            "depend on that user's own data (joint DP) and the full model file is not a DP artifact"
        )
        out.append(
            "DP noise costs accuracy, most for small datasets and small ε; users with few ratings and "
            "unpopular items are affected most (measure it with `dprec audit`)"
        )
    advice = getattr(cls, "ranking_advice", None)
    if advice:
        out.append(f"ranking: {advice}")
    if not getattr(cls, "predicts_ratings", True):
        out.append("a ranking model: its scores are not ratings (RMSE/MAE do not apply)")
    out.append("hyperparameter defaults were tuned on MovieLens-100K (docs/tuning.md); other data may need others")
    return out


def _intended_use(cls, rep: dict | None) -> str:
    what = (
        "rating prediction and top-N recommendation"
        if getattr(cls, "predicts_ratings", False)
        else ("top-N recommendation")
    )
    if rep is not None and rep.get("is_private"):
        return (
            f"{what} for the users of the training data (from the private model file) and for new users folded "
            "in from the public export at no privacy cost; the public export may be shared"
        )
    return f"{what}; a non-private reference for comparison, not for sharing"


def model_card(
    path,
    *,
    ledger=None,
    dataset_name: str | None = None,
    evaluation=None,
    audit=None,
    intended_use: str | None = None,
) -> dict:
    """The model card of a model file (module docstring), JSON-able.

    Parameters
    ----------
    path : path-like
        A model file (``save``/``dprec train --out``) or a public export (``export_public``).
    ledger : path-like, optional
        The dataset's ledger: its public summary (totals, spent, remaining, charges; no MACs, times or seeds)
        is added, and its label names the data.
    dataset_name : str, optional
        The public name of the training data (a public input), if no ledger names it. Only the part before
        a ``:`` is kept (a dataset id's fingerprint is never published).
    evaluation, audit : path-like or dict, optional
        The JSON output of ``dprec evaluate --format json`` / ``dprec audit --format json`` for this model
        and ε. **Opt-in**: these figures are computed on private data and are not DP; the card labels them so.
    intended_use : str, optional
        The owner's statement of intended use (replaces the default one).

    Raises
    ------
    ConfigError
        A missing file, or evaluation/audit results of another model or ε.
    CorruptFileError
        A file that is not a dprec model file or fails its checksums.
    """
    model, manifest = _load(path)
    cls = type(model)
    public = manifest.get("format") == "dprec-public"
    rep = model.privacy_report() if getattr(cls, "is_private", False) else None
    private = bool(rep and rep.get("is_private"))
    catalog_public = not (rep and any(s.get("name") == "item_selection" for s in rep.get("steps", [])))
    if rep is not None:
        rep = dict(rep)
        bounds = dict(rep.get("bounds") or {})
        n_dp = bounds.pop("n_users_dp", None)  # exact at ε = ∞; a DP figure otherwise, shown rounded below
        n_dp = rep.pop("n_users_dp", None) or n_dp  # every DP model's report carries ñ; shown rounded below
        rep["bounds"] = bounds
    else:
        n_dp = None
    if private and n_dp is None:
        hp = manifest.get("hyperparameters") or {}
        n_dp = getattr(model, "n_users_dp_", None) or hp.get("n_users_dp")

    # items: the declared public catalog, or the items DP selection released (a DP output); for a non-private
    # model the item set is the raw data's, so no count is stated
    if not private:
        n_items, items_text = None, "not stated: the model is not private"
    elif catalog_public:
        n_items, items_text = int(len(model.item_ids)), "the public item catalog (declared by the caller)"
    else:
        mask = getattr(model, "_released_item_mask", None)
        n_items = int(len(model.item_ids)) if public or not callable(mask) else int(np.sum(mask()))
        items_text = "released by DP item selection (a DP output)"
    per_item_len = private and (catalog_public or public)
    arrays = {}
    for k, v in sorted((manifest.get("arrays") or {}).items()):
        if k.startswith("__"):
            continue
        shape = list(v.get("shape") or [])
        if "user" in k:
            arrays[k] = "per-user rows"
        elif shape and not per_item_len and shape[0] == len(model.item_ids):
            arrays[k] = "per-item rows" + (f" × {shape[1]}" if len(shape) > 1 else "")
        else:
            arrays[k] = shape

    led = None
    if ledger is not None:
        from .privacy import Ledger

        led = Ledger.open(ledger).public_summary()
    name = _public_name(dataset_name) or (_public_name(led["dataset"]) if led else None)
    epsilon = rep.get("epsilon") if rep else math.inf
    card = {
        "card": "dprec-model-card/1",
        "file": os.path.basename(os.fspath(path)),
        "model": cls.name,
        "model_class": cls.__name__,
        "dprec_version": manifest.get("dprec_version"),
        "data": {
            "dataset": name or "not stated (pass the ledger or the dataset's public name)",
            "n_users_dp": round_count(n_dp) if private else None,
            "n_users_note": (
                "not released: the model is not private"
                if not private
                else f"DP count ñ of users (a release of the fit), rounded to {COUNT_ROUNDING}"
                if n_dp is not None
                else "the DP user count ñ is not recorded in this model's file"
            ),
            "n_items": n_items,
            "items": items_text,
            "rating_bounds": manifest.get("rating_bounds"),
            "feedback": getattr(cls, "feedback", None),
        },
        "params": manifest.get("params", {}),
        "contents": {
            "format": manifest.get("format", "dprec-model"),
            "contains_user_data": bool(manifest.get("contains_user_data", not public)),
            "is_dp_artifact": bool(private and public),
            "arrays": arrays,
        },
        "privacy": rep,
        "intended_use": intended_use or _intended_use(cls, rep),
        "limitations": None,
    }
    card["limitations"] = _limitations(cls, rep, card["contents"])
    if led is not None:
        card["ledger"] = led
    if evaluation is not None:
        card["evaluation"] = _evaluation_section(_read_json(evaluation, "evaluation"), cls.name, epsilon, "evaluation")
    if audit is not None:
        card["audit"] = _audit_section(_read_json(audit, "audit"), cls.name, epsilon, "audit")
    return to_jsonable(card)


# ================================================================================ markdown
def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return "∞" if x in ("inf", "∞") else x
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):
            return "∞"
        return f"{x:.{digits}f}"
    return str(x)


def _ledger_lines(led: dict) -> list[str]:
    lines = [
        f"- dataset: {led['dataset']}",
        f"- total: ε = {_fmt(led['total_epsilon'], 4)}, δ = {led['total_delta']:g}",
        f"- spent: ε = {_fmt(led['spent_epsilon'], 4)}, δ = {led['spent_delta']:g} ({led['n_charges']} charge(s))",
        f"- remaining: ε = {_fmt(led['remaining_epsilon'], 4)}, δ = {led['remaining_delta']:g}",
    ]
    for c in led.get("charges", []):
        lines.append(
            f"  - {c.get('model')}: {c.get('mechanism')}, ε = {_fmt(c.get('epsilon'), 4)}, δ = {c.get('delta')}"
        )
    return lines


def card_markdown(card: dict) -> str:
    """The card as Markdown (headings: Model, Data, Guarantee, Release steps, …)."""
    c, p, d = card["contents"], card["privacy"], card["data"]
    lines = [f"# Model card: `{card['file']}`", ""]
    lines += [f"- model: {card['model_class']} (`{card['model']}`), written by dprec {card['dprec_version']}"]
    lines += [f"- intended use: {card['intended_use']}"]
    lines += ["", "## Data", ""]
    lines += [f"- dataset: {d['dataset']}"]
    lines += [
        f"- users: {'≈ ' + format(d['n_users_dp'], ',') if d['n_users_dp'] is not None else 'n/a'} — {d['n_users_note']}"
    ]
    lines += [f"- items: {d['n_items'] if d['n_items'] is not None else 'n/a'} — {d['items']}"]
    if d.get("rating_bounds"):
        lines += [f"- rating bounds: {d['rating_bounds'][0]:g}–{d['rating_bounds'][1]:g} (public, declared)"]
    lines += [f"- feedback: {d['feedback']}"]
    if p is None or not p["is_private"]:
        why = "the model is not private" if p is None else "ε = ∞: the non-private reference, no noise"
        lines += [
            "",
            "## Guarantee",
            "",
            f"**None: {why}.** Nothing in this file is a DP artifact; it is computed from the raw data. "
            "Share it only where the raw data could be shared.",
        ]
    else:
        total = p["total_rho"] or 1.0
        lines += [
            "",
            "## Guarantee",
            "",
            f"- privacy unit: **{p['unit']}** (neighbouring datasets differ by one {p['unit']}"
            + (" with all their ratings)" if p["unit"] == "user" else ")"),
            f"- ε = **{_fmt(p['epsilon'], 4)}**, δ = **{p['delta']:g}** (verified from the steps: ε = "
            f"{_fmt(p['verified_epsilon'], 4)})",
            f"- accounting: {p['accounting']}",
            f"- noise: {p['noise']}" + ("; OpenDP secure noise" if p.get("secure_noise") else ""),
            f"- ledger: {p['ledger']}",
            "",
            "## Release steps",
            "",
            "| step | statistic | mechanism | L2 sensitivity | σ | count | ρ | share of ρ |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in p["steps"]:
            rho = s["rho"] * s.get("count", 1)
            lines.append(
                f"| {s['name']} | {s.get('statistic', '')} | {s.get('mechanism', '')} | "
                f"{_fmt(s.get('sensitivity_l2'), 4)} | {_fmt(s.get('sigma'), 4)} | {s.get('count', 1)} | "
                f"{_fmt(s['rho'], 6)} | {100 * rho / total:.1f}% |"
            )
        if p.get("bounds"):
            lines += ["", "## Contribution bounds and resolved settings (public)", ""]
            lines += [f"- {k}: {v}" for k, v in p["bounds"].items()]
        lines += ["", "## Public assumptions", ""] + [f"- {a}" for a in p["public_assumptions"]]
        lines += ["", "## What is released", ""] + [f"- {k}: {v}" for k, v in p["released"].items()]
        lines += ["", f"Joint DP: {p['joint_dp']}"]
    lines += ["", "## What this file contains", ""]
    if c["is_dp_artifact"]:
        lines.append(
            "This file is the **DP artifact** (`dprec train --export-public`): the released item side and the "
            "public item ids, no per-user data. It may be shared; serve new users from it with "
            "`dprec recommend FILE --fold-in RATINGS`."
        )
    elif c["contains_user_data"]:
        dp_part = " Its DP part is what `dprec train --export-public` writes." if p and p["is_private"] else ""
        lines.append(
            "This file holds **per-user state** (user parameters, seen items): it is **not** a DP artifact, keep "
            "it private." + dp_part
        )
    else:
        lines.append("This file holds no per-user data.")
    lines += ["", "| array | shape |", "|---|---|"] + [f"| {k} | {v} |" for k, v in c["arrays"].items()]
    lines += ["", "## Hyperparameters (public inputs)", ""] + [f"- {k}: {v}" for k, v in card["params"].items()]
    if "ledger" in card:
        lines += ["", "## Ledger", ""] + _ledger_lines(card["ledger"])
    if "evaluation" in card:
        e = card["evaluation"]
        lines += ["", "## Evaluation (not DP)", "", f"> {e['label']}.", ""]
        tf = f", test fraction {e['test_fraction']}" if e.get("test_fraction") else ""
        lines += [f"Split: {e['split']}{tf}; k = {e['k']}.", "", "| metric | value |", "|---|---|"]
        lines += [f"| {m} | {_fmt(v, METRIC_DIGITS)} |" for m, v in e["metrics"].items()]
    if "audit" in card:
        a = card["audit"]
        lines += ["", "## Audit (not DP)", "", f"> {a['label']}.", ""]
        if a["popularity"]:
            lines += ["Popularity bias of the top-" + str(a["k"]) + " lists:", "", "| metric | value |", "|---|---|"]
            lines += [f"| {m} | {_fmt(v, METRIC_DIGITS)} |" for m, v in a["popularity"].items()]
        if a["gaps"]:
            lines += ["", "Quality gaps between user groups (best − worst):", ""]
            lines += ["| attribute | metric | best group | worst group | gap |", "|---|---|---|---|---|"]
            lines += [
                f"| {g['attribute']} | {g['metric']} | {g['best_group']} | {g['worst_group']} | "
                f"{_fmt(g['gap'], METRIC_DIGITS)} |"
                for g in a["gaps"]
            ]
        if "privacy_audit" in a:
            pa = a["privacy_audit"]
            verdict = "**VIOLATION**" if pa["violation"] else "consistent with the claim"
            lines += [
                "",
                f"Empirical privacy (canaries): ε̂ ≥ {_fmt(pa['epsilon_lower'], METRIC_DIGITS)} at confidence "
                f"{pa['confidence']:g} for claimed ε = {_fmt(pa['claimed_epsilon'], 4)} ({pa['n_canaries']} "
                f"canaries, statistic {pa['statistic']}): {verdict}. {pa['note']}.",
            ]
    lines += ["", "## Known limitations", ""] + [f"- {x}" for x in card["limitations"]]
    return "\n".join(lines)
