"""Benchmark sweep configuration: a TOML file, parsed and validated before any training.

Format (every key is checked; a typo is an error that names the key and suggests the fix)::

    [run]
    name = "quick"                 # label of the sweep (default: the file's stem)
    seeds = [0, 1]                 # one cell per seed; the seed is the model's / noise's ``rng``
    split = "random"               # "random" (ratings, the explicit protocol of docs/conventions.md), "user" (per-user holdout, top-N)
                                   # or "strong" (held-out users, Liang et al. 2018; the keys below apply to it only)
    test_fraction = 0.2            # random / user
    heldout_users = 10000          # strong: test users, a count or a fraction in (0, 1) of the eligible users
    validation_users = 0           # strong: validation users, also removed from training (count or fraction)
    history_fraction = 0.8         # strong: share of a held-out user's items folded in (the rest are targets)
    positive_threshold = 3.5       # strong, optional: keep ratings > threshold as positives (value 1), drop the rest
    min_ratings = 2                # strong: minimum (positive) ratings of a held-out user
    split_seed = 0                 # the split is computed once per dataset with this seed
    k = 10                         # list length for ranking metrics; a list (e.g. [20, 50]) evaluates each
    metrics = ["rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "recall@20"]
                                   # "<base>@<c>" asks for one metric at one fixed cut-off c (beside the k list)
    delta = 1e-6                   # δ of every DP model (0 < δ < 1)
    privacy_unit = "user"          # "user" or "rating"
    audit = true                   # optional: add dprec.audit.audit_bias's BiasAudit.flat_metrics() as result
                                   # columns "audit:<name>" (split random / user only); NOT DP (private test data)
    audit_metrics = ["gini_exposure", "gap_ndcg_at_k"]   # optional: only these (implies audit = true); a gap
                                   # name without "[attribute]" selects it for every attribute
    audit_groups = ["gender"]      # optional: ML-100K user attributes to group by, beside activity quartiles

    [[datasets]]                   # exactly one of name / ratings / synthetic
    name = "ml-100k"               # registry dataset (dprec.datasets.load_dataset; must be present locally)
    # data_home = "/path"          # optional, default $DPREC_DATA or the user cache

    [[datasets]]
    label = "my-file"
    ratings = "data/ratings.csv"   # a CSV/TSV/Parquet file, relative to the config file's directory
    columns = { user = "userId", item = "movieId", rating = "rating" }   # optional (defaults shown: user/item/rating)
    sep = ","                      # optional
    rating_bounds = [0.5, 5.0]     # public bounds of the rating scale (required for DP models)

    [[datasets]]
    label = "synth"
    synthetic = { n_users = 2000, n_items = 1000, rank = 8, seed = 0 }   # dprec.datasets.synthetic keyword
                                                                          # arguments; ``seed`` is its rng

    [[models]]
    name = "dpals"                 # a registered model: als | implicit-als | popularity | dp-baseline | dp-popularity | dpals
    label = "DP-ALS"               # unique; default: the name
    params = { factors = 16 }      # hyperparameters, validated by the model's Config (never epsilon/delta/privacy_unit/rng)
    epsilons = [1, 10, inf]        # DP models only ("inf" or inf = the non-private setting of the same code)

Non-private models ignore ``epsilons`` and run once per seed with ε = ∞.

:func:`load_config` parses and validates everything that can be checked without training, including loading
every dataset (so that a missing file or a registry dataset absent from the data directory fails first), and
raises :class:`~dprec.errors.ConfigError` otherwise. Model names and capabilities (``is_private``) come from the
model registry (:mod:`dprec.models.registry`); a model's ``params`` are validated by its ``Config`` class.
Result rows name metrics by :func:`metric_names` (the one ``@k`` rule: ``ndcg_at_k`` with ``k = 10`` is
``ndcg@10``).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import numbers
import os
import tomllib
from dataclasses import dataclass, field

from ..errors import ConfigError, CorruptFileError, did_you_mean
from ..models.config import validate_config
from ..models.registry import get_model, model_names
from ..privacy.units import PRIVACY_UNITS, check_epsilon
from . import adapters as _adapters  # noqa: F401  (registers implicit-als)

__all__ = [
    "ConfigError",
    "BenchConfig",
    "RunSpec",
    "SweepDataset",
    "ModelSpec",
    "METRICS",
    "metric_names",
    "split_metric_name",
    "load_config",
    "parse_config",
    "format_epsilon",
    "AUDIT_PREFIX",
]

#: canonical metric names (keys of :func:`dprec.metrics.evaluate`) and accepted aliases.
METRICS = ("rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k", "coverage")
RATING_METRICS = ("rmse", "mae")
_METRIC_ALIASES = {
    "precision": "precision_at_k",
    "recall": "recall_at_k",
    "ndcg": "ndcg_at_k",
    "map": "map_at_k",
    "hit_rate": "hit_rate_at_k",
    "hr": "hit_rate_at_k",
    "catalog_coverage": "coverage",
}
SPLITS = ("random", "user", "strong")
_STRONG_KEYS = ("heldout_users", "validation_users", "history_fraction", "positive_threshold", "min_ratings")


def metric_names(metrics, ks) -> list[str]:
    """Result-row names of canonical metrics (the one ``@k`` rule): ``rmse``/``mae`` as they are, every other
    ``<base>_at_k`` (or ``<base>``) as ``<base>@<k>`` for each cut-off in ``ks``, in that order."""
    names = []
    for m in metrics:
        if m in RATING_METRICS or "@" in m:  # a fixed cut-off ("recall@20") is its own name
            names.append(m)
        else:
            base = m[: -len("_at_k")] if m.endswith("_at_k") else m
            names.extend(f"{base}@{k}" for k in ks)
    return list(dict.fromkeys(names))  # "recall_at_k" with k = 20 and "recall@20" name one column


def split_metric_name(name: str) -> tuple[str, str]:
    """Inverse of :func:`metric_names` for one name: ``"ndcg@10"`` → ``("ndcg", "10")``, ``"rmse"`` → ``("rmse", "")``."""
    base, _, k = name.partition("@")
    return base, k


_TOP_KEYS = ("run", "datasets", "models")
_RUN_KEYS = (
    "name",
    "seeds",
    "split",
    "test_fraction",
    "split_seed",
    "k",
    "metrics",
    "delta",
    "privacy_unit",
    *_STRONG_KEYS,
    "audit",
    "audit_metrics",
    "audit_groups",
)
#: BiasAudit.flat_metrics() names: the popularity-bias figures, and gap_<metric> (per attribute, "[attr]")
AUDIT_POPULARITY = ("gini_exposure", "arp", "aplt", "coverage", "history_popularity", "popularity_lift", "n_tail_items")
AUDIT_GAPS = tuple(
    f"gap_{m}"
    for m in (
        "rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k", "arp", "aplt",
        "popularity_lift",
    )
)  # fmt: skip
AUDIT_GROUPS = ("gender", "age_band", "occupation", "age")
#: prefix of the audit columns in result rows
AUDIT_PREFIX = "audit:"
_DATASET_KEYS = ("name", "label", "data_home", "ratings", "columns", "sep", "rating_bounds", "synthetic")
_COLUMN_KEYS = ("user", "item", "rating", "timestamp")
_MODEL_KEYS = ("name", "label", "params", "epsilons")
_RESERVED_PARAMS = ("epsilon", "delta", "privacy_unit", "rng")

_RUN_DEFAULTS = {
    "split": "random",
    "test_fraction": 0.2,
    "split_seed": 0,
    "k": 10,
    "metrics": ["rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k"],
    "delta": 1e-6,
    "privacy_unit": "user",
}


# ---------------------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class RunSpec:
    name: str
    seeds: tuple[int, ...]
    split: str
    test_fraction: float
    split_seed: int
    ks: tuple[int, ...]
    metrics: tuple[str, ...]
    delta: float
    privacy_unit: str
    #: split = "strong" only: heldout_users, validation_users, history_fraction, positive_threshold, min_ratings
    strong: dict = field(default_factory=dict)
    #: audit columns: None = off, () = every BiasAudit.flat_metrics() name, else the selected names
    audit: tuple[str, ...] | None = None
    #: ML-100K user attributes the audit groups by (beside activity quartiles)
    audit_groups: tuple[str, ...] = ()

    def audit_selected(self, name: str) -> bool:
        """True if the flat audit metric ``name`` (e.g. ``gap_ndcg_at_k[gender]``) is a column of this sweep."""
        if self.audit is None:
            return False
        return not self.audit or name in self.audit or name.partition("[")[0] in self.audit

    def cutoffs(self) -> tuple[int, ...]:
        """Every cut-off the metrics need: ``ks`` and those of fixed-cut-off metrics (``recall@20``)."""
        extra = {int(m.partition("@")[2]) for m in self.metrics if "@" in m}
        return tuple(sorted(set(self.ks) | extra))


@dataclass
class SweepDataset:
    label: str
    source: str  # "registry" | "file" | "synthetic"
    name: str | None = None
    data_home: str | None = None
    path: str | None = None
    columns: dict = field(default_factory=dict)
    sep: str | None = None
    rating_bounds: tuple[float, float] | None = None
    synthetic: dict = field(default_factory=dict)

    def load(self):
        """Load the dataset as :class:`~dprec.data.Interactions` (raises the loader's own errors)."""
        if self.source == "registry":
            from dprec.datasets import load_dataset

            data = load_dataset(self.name, data_home=self.data_home, download=False)
        elif self.source == "file":
            from dprec.data import Interactions

            cols = {"user": "user", "item": "item", "rating": "rating", **self.columns}
            kwargs = dict(
                user_col=cols["user"],
                item_col=cols["item"],
                rating_col=cols["rating"],
                timestamp_col=cols.get("timestamp"),
                rating_bounds=self.rating_bounds,
                name=self.label,
            )
            if self.sep is not None:
                kwargs["sep"] = self.sep
            data = Interactions.read(self.path, **kwargs)
        else:
            from dprec.datasets import synthetic

            params = dict(self.synthetic)
            seed = params.pop("seed", 0)
            data = synthetic(**params, rng=seed)
        return data

    def checksum(self, data) -> tuple[str, str]:
        """(checksum, kind): the registry's checksum for registry datasets, else ``Interactions.fingerprint``."""
        if self.source == "registry":
            from dprec.datasets import dataset_checksum

            return str(dataset_checksum(self.name, self.data_home)), "dataset_checksum"
        return data.fingerprint(), "interactions_fingerprint"


@dataclass
class ModelSpec:
    name: str
    label: str
    params: dict
    epsilons: tuple[float, ...]

    @property
    def is_dp(self) -> bool:
        return bool(self.model_class().is_private)

    def model_class(self):
        return get_model(self.name)

    def build(self, *, epsilon: float, delta: float, privacy_unit: str, seed: int, num_threads: int | None = None):
        """A fresh, unfitted model for one cell."""
        cls = self.model_class()
        kwargs = dict(self.params)
        if self.is_dp:
            kwargs.update(epsilon=epsilon, delta=delta, privacy_unit=privacy_unit)
        kwargs["rng"] = seed
        if num_threads is not None and "num_threads" not in kwargs and getattr(cls, "uses_threads", True):
            kwargs["num_threads"] = num_threads  # (a model without threaded kernels would warn it is ignored)
        return cls(**kwargs)


@dataclass
class BenchConfig:
    run: RunSpec
    datasets: list[SweepDataset]
    models: list[ModelSpec]
    raw: dict  # the normalised configuration, JSON-able (stored in every result row)
    path: str | None = None
    _data_cache: dict = field(default_factory=dict, repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()

    def load_data(self, label: str):
        """The dataset with this label (loaded once; :func:`load_config` already loaded it)."""
        if label not in self._data_cache:
            spec = next(d for d in self.datasets if d.label == label)
            self._data_cache[label] = spec.load()
        return self._data_cache[label]


# ---------------------------------------------------------------------------------------------- helpers
def format_epsilon(eps: float) -> str:
    """Stable text form of ε: ``"inf"`` or the shortest float repr (``1.0`` → ``"1"``)."""
    if math.isinf(eps):
        return "inf"
    return str(int(eps)) if float(eps).is_integer() else repr(float(eps))


def _suggest(key: str, allowed) -> str:
    return f"{did_you_mean(key, allowed)}allowed keys: {', '.join(allowed)}"


def _check_keys(table: dict, allowed, where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {type(table).__name__}")
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key {key!r} in {where}; {_suggest(key, allowed)}")


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _parse_epsilon(value, where: str) -> float:
    """ε of a config (a number, ``inf`` or the text ``"inf"``), checked by :func:`dprec.privacy.units.check_epsilon`."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("inf", "infinity", "+inf", "∞"):
            return math.inf
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f'{where} = {value!r} is not a number; write a positive number or "inf"') from None
    try:
        return check_epsilon(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


# ---------------------------------------------------------------------------------------------- parsing
def load_config(path, *, check_data: bool = True) -> BenchConfig:
    """Read, parse and validate a TOML sweep configuration (see module docstring)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    default_name = os.path.splitext(os.path.basename(path))[0]
    return parse_config(
        doc,
        base_dir=os.path.dirname(os.path.abspath(path)),
        default_name=default_name,
        check_data=check_data,
        path=path,
    )


def parse_config(
    doc: dict, *, base_dir: str = ".", default_name: str = "bench", check_data: bool = True, path: str | None = None
) -> BenchConfig:
    """Validate a configuration given as a dict (the parsed TOML). Raises :class:`ConfigError`."""
    doc = copy.deepcopy(doc)
    _check_keys(doc, _TOP_KEYS, "the config's top level")
    run = _parse_run(doc.get("run", {}), default_name)
    datasets_doc = doc.get("datasets")
    if not datasets_doc:
        raise ConfigError("no [[datasets]] given; add at least one [[datasets]] table with name, ratings or synthetic")
    if not isinstance(datasets_doc, list):
        raise ConfigError("datasets must be an array of tables: write [[datasets]], not [datasets]")
    models_doc = doc.get("models")
    if not models_doc:
        raise ConfigError(
            "no [[models]] given; add at least one [[models]] table with name = one of " + ", ".join(model_names())
        )
    if not isinstance(models_doc, list):
        raise ConfigError("models must be an array of tables: write [[models]], not [models]")

    models = [_parse_model(m, i) for i, m in enumerate(models_doc)]
    labels = [m.label for m in models]
    for lab in labels:
        if labels.count(lab) > 1:
            raise ConfigError(f'two [[models]] share the label {lab!r}; give each a distinct label = "..."')
    datasets = [_parse_dataset(d, i, base_dir) for i, d in enumerate(datasets_doc)]
    for i, d in enumerate(datasets):
        if run.audit_groups and not (d.source == "registry" and d.name == "ml-100k"):
            raise ConfigError(
                f"[[datasets]] #{i + 1} ({d.label}): [run] audit_groups uses ML-100K's user attributes; this "
                "dataset has none (remove audit_groups, or sweep ml-100k only)"
            )
    dlabels = [d.label for d in datasets]
    for lab in dlabels:
        if dlabels.count(lab) > 1:
            raise ConfigError(f'two [[datasets]] share the label {lab!r}; give each a distinct label = "..."')

    raw = {
        "run": {
            "name": run.name,
            "seeds": list(run.seeds),
            "split": run.split,
            "test_fraction": run.test_fraction,
            "split_seed": run.split_seed,
            "k": list(run.ks) if len(run.ks) > 1 else run.ks[0],
            "metrics": list(run.metrics),
            "delta": run.delta,
            "privacy_unit": run.privacy_unit,
            **run.strong,  # only for split = "strong" (older configs keep their hashes)
            # only with audit columns (older configs keep their hashes)
            **({"audit": list(run.audit), "audit_groups": list(run.audit_groups)} if run.audit is not None else {}),
        },
        "datasets": [_dataset_raw(d) for d in datasets],
        "models": [
            {
                "name": m.name,
                "label": m.label,
                "params": m.params,
                "epsilons": [format_epsilon(e) if math.isinf(e) else e for e in m.epsilons],
            }
            for m in models
        ],
    }
    try:
        json.dumps(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the config holds a value that cannot be recorded in results ({exc})") from None
    cfg = BenchConfig(run=run, datasets=datasets, models=models, raw=raw, path=path)
    _check_models_constructible(cfg)
    if check_data:
        _check_datasets(cfg)
    return cfg


def _parse_run(run: dict, default_name: str) -> RunSpec:
    _check_keys(run, _RUN_KEYS, "[run]")
    r = {**_RUN_DEFAULTS, **run}
    name = r.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"[run] name must be a non-empty string, got {name!r}")
    if "seeds" not in r:
        raise ConfigError("[run] seeds is missing; add e.g. seeds = [0, 1, 2] (one run per seed)")
    seeds = r["seeds"]
    if _is_int(seeds):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError("[run] seeds is empty; give at least one seed, e.g. seeds = [0, 1, 2]")
    for s in seeds:
        if not _is_int(s) or s < 0:
            raise ConfigError(f"[run] seeds must be non-negative integers, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"[run] seeds has duplicates {seeds}; each seed must appear once")
    split = r["split"]
    if split not in SPLITS:
        raise ConfigError(
            f'[run] split = {split!r}; use "random" (ratings), "user" (per-user holdout) or "strong" (held-out users)'
        )
    strong = _parse_strong(run, split)
    tf = r["test_fraction"]
    if isinstance(tf, bool) or not isinstance(tf, numbers.Real) or not (0 < tf < 1):
        raise ConfigError(f"[run] test_fraction = {tf!r}; it must lie strictly between 0 and 1 (e.g. 0.2)")
    ss = r["split_seed"]
    if not _is_int(ss) or ss < 0:
        raise ConfigError(f"[run] split_seed = {ss!r}; use a non-negative integer (default 0)")
    ks = r["k"]
    ks = [ks] if not isinstance(ks, list) else ks
    if not ks or any(not _is_int(k) or k < 1 for k in ks):
        raise ConfigError(f"[run] k = {r['k']!r}; use a positive integer or a list of them, e.g. k = 10")
    metrics = r["metrics"]
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list) or not metrics:
        raise ConfigError("[run] metrics is empty; list some of: " + ", ".join(METRICS))
    canon = []
    for m in metrics:
        c = _METRIC_ALIASES.get(m, m) if isinstance(m, str) else m
        if isinstance(c, str) and "@" in c:
            base, _, cut = c.partition("@")
            base = _METRIC_ALIASES.get(base, base)
            base = base[: -len("_at_k")] if base.endswith("_at_k") else base
            if f"{base}_at_k" not in METRICS or base == "coverage" or not cut.isdigit() or int(cut) < 1:
                ranking = [x[: -len("_at_k")] for x in METRICS if x.endswith("_at_k")]
                raise ConfigError(
                    f'[run] metrics: {m!r} is not <ranking metric>@<cut-off>; write e.g. "recall@20" with one of '
                    + ", ".join(ranking)
                )
            c = f"{base}@{int(cut)}"
            if c not in canon:
                canon.append(c)
            continue
        if c not in METRICS:
            hint = did_you_mean(m, list(METRICS) + list(_METRIC_ALIASES))
            raise ConfigError(f"[run] metrics: unknown metric {m!r}; {hint}known metrics: {', '.join(METRICS)}")
        if c not in canon:
            canon.append(c)
    delta = r["delta"]
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not (0 < delta < 1):
        raise ConfigError(f"[run] delta = {delta!r}; δ must lie strictly between 0 and 1 (e.g. 1e-6)")
    unit = r["privacy_unit"]
    if unit not in PRIVACY_UNITS:
        raise ConfigError(f'[run] privacy_unit = {unit!r}; use "user" (default) or "rating"')
    audit, audit_groups = _parse_audit(run, split)
    return RunSpec(
        name=name,
        seeds=tuple(int(s) for s in seeds),
        split=split,
        test_fraction=float(tf),
        split_seed=int(ss),
        ks=tuple(sorted(set(int(k) for k in ks))),
        metrics=tuple(canon),
        delta=float(delta),
        privacy_unit=unit,
        strong=strong,
        audit=audit,
        audit_groups=audit_groups,
    )


def _parse_audit(run: dict, split: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """``audit`` / ``audit_metrics`` / ``audit_groups`` of ``[run]``: (None = off | () = all | names, groups)."""
    flag = run.get("audit", None)
    if flag is not None and not isinstance(flag, bool):
        raise ConfigError(f"[run] audit = {flag!r}; write audit = true (or false)")
    names = run.get("audit_metrics")
    groups = run.get("audit_groups", [])
    if flag is False and (names is not None or groups):
        raise ConfigError("[run] audit = false but audit_metrics / audit_groups are set; remove one or the other")
    on = bool(flag) or names is not None or bool(groups)
    if not on:
        return None, ()
    if split == "strong":
        raise ConfigError(
            '[run] audit columns need split = "random" or "user" (the bias audit compares train and test of the '
            "same users); remove audit or change the split"
        )
    if names is None:
        names = []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or (run.get("audit_metrics") is not None and not names):
        raise ConfigError('[run] audit_metrics must be a non-empty list, e.g. ["gini_exposure", "gap_ndcg_at_k"]')
    known = list(AUDIT_POPULARITY) + list(AUDIT_GAPS)
    for n in names:
        base = n.partition("[")[0] if isinstance(n, str) else n
        if not isinstance(n, str) or base not in known or ("[" in n and not (n.endswith("]") and base in AUDIT_GAPS)):
            raise ConfigError(
                f"[run] audit_metrics: unknown audit metric {n!r}; {did_you_mean(str(base), known)}known: "
                + ", ".join(known)
                + ' (a gap may name its attribute: "gap_ndcg_at_k[gender]")'
            )
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list):
        raise ConfigError('[run] audit_groups must be a list, e.g. ["gender", "age_band"]')
    for g in groups:
        if g not in AUDIT_GROUPS:
            raise ConfigError(
                f"[run] audit_groups: unknown attribute {g!r}; {did_you_mean(str(g), AUDIT_GROUPS)}ML-100K's are "
                + ", ".join(AUDIT_GROUPS)
            )
    return tuple(dict.fromkeys(names)), tuple(dict.fromkeys(groups))


def _parse_strong(run: dict, split: str) -> dict:
    """The ``split = "strong"`` keys, validated (``{}`` for the other protocols, which refuse them)."""
    given = [k for k in _STRONG_KEYS if k in run]
    if split != "strong":
        if given:
            raise ConfigError(f'[run] {given[0]} applies to split = "strong" only (split is {split!r}); remove it')
        return {}
    if "test_fraction" in run:
        raise ConfigError(
            '[run] test_fraction does not apply to split = "strong"; use heldout_users and history_fraction'
        )
    if "heldout_users" not in run:
        raise ConfigError('[run] split = "strong" needs heldout_users (a count, e.g. 10000, or a fraction in (0, 1))')
    out = {}
    for key, default in (("heldout_users", None), ("validation_users", 0)):
        v = run.get(key, default)
        ok = (_is_int(v) and v >= (1 if key == "heldout_users" else 0)) or (isinstance(v, float) and 0 < v < 1)
        if not ok:
            raise ConfigError(
                f"[run] {key} = {v!r}; use a user count (e.g. 10000) or a fraction strictly between 0 and 1"
            )
        out[key] = v
    hf = run.get("history_fraction", 0.8)
    if isinstance(hf, bool) or not isinstance(hf, numbers.Real) or not (0 < hf < 1):
        raise ConfigError(f"[run] history_fraction = {hf!r}; it must lie strictly between 0 and 1 (e.g. 0.8)")
    out["history_fraction"] = float(hf)
    if "positive_threshold" in run:
        t = run["positive_threshold"]
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t):
            raise ConfigError(f"[run] positive_threshold = {t!r}; use a number (ratings > it are positives), e.g. 3.5")
        out["positive_threshold"] = float(t)
    mr = run.get("min_ratings", 2)
    if not _is_int(mr) or mr < 2:
        raise ConfigError(f"[run] min_ratings = {mr!r}; use an integer >= 2 (history and targets both non-empty)")
    out["min_ratings"] = int(mr)
    return out


def _parse_model(m: dict, i: int) -> ModelSpec:
    where = f"[[models]] #{i + 1}"
    _check_keys(m, _MODEL_KEYS, where)
    name = m.get("name")
    if name is None:
        raise ConfigError(f"{where} has no name; set name = one of {', '.join(model_names())}")
    try:
        cls = get_model(name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    where = f"[[models]] #{i + 1} ({name})"
    label = m.get("label", name)
    if not isinstance(label, str) or not label or "|" in label:
        raise ConfigError(f"{where}: label must be a non-empty string without '|', got {label!r}")
    params = m.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: params must be a table, e.g. params = {{ factors = 16 }}")
    for p in _RESERVED_PARAMS:
        if p in params:
            where_set = "[run] seeds" if p == "rng" else ("epsilons" if p == "epsilon" else f"[run] {p}")
            raise ConfigError(f"{where}: params.{p} is set by the sweep; remove it and use {where_set} instead")
    eps_raw = m.get("epsilons")
    if cls.is_private:
        if eps_raw is None:
            raise ConfigError(f"{where}: epsilons is missing; a DP model needs e.g. epsilons = [1, 10, inf]")
        if not isinstance(eps_raw, list) or not eps_raw:
            raise ConfigError(f"{where}: epsilons must be a non-empty list, e.g. epsilons = [1, 10, inf]")
        eps = [_parse_epsilon(e, f"{where} epsilons[{j}]") for j, e in enumerate(eps_raw)]
        if len(set(eps)) != len(eps):
            raise ConfigError(f"{where}: epsilons has duplicates {eps_raw}; list each ε once")
        epsilons = tuple(sorted(eps))
    else:
        if eps_raw is not None:  # validated (a NaN is a mistake anywhere), then ignored
            if not isinstance(eps_raw, list):
                raise ConfigError(f"{where}: epsilons must be a list")
            for j, e in enumerate(eps_raw):
                _parse_epsilon(e, f"{where} epsilons[{j}]")
        epsilons = (math.inf,)
    return ModelSpec(name=name, label=label, params=params, epsilons=epsilons)


def _parse_dataset(d: dict, i: int, base_dir: str) -> SweepDataset:
    where = f"[[datasets]] #{i + 1}"
    _check_keys(d, _DATASET_KEYS, where)
    sources = [k for k in ("name", "ratings", "synthetic") if k in d]
    if len(sources) != 1:
        raise ConfigError(
            f"{where}: give exactly one of name (registry), ratings (file) or synthetic (generator); "
            f"got {sources or 'none'}"
        )
    src = sources[0]
    label = d.get("label")
    if label is not None and (not isinstance(label, str) or not label or "|" in label):
        raise ConfigError(f"{where}: label must be a non-empty string without '|', got {label!r}")
    bounds = d.get("rating_bounds")
    if bounds is not None:
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in bounds)
            or not bounds[0] < bounds[1]
        ):
            raise ConfigError(f"{where}: rating_bounds = {bounds!r}; write rating_bounds = [lo, hi] with lo < hi")
        bounds = (float(bounds[0]), float(bounds[1]))
    if src == "name":
        for k in ("columns", "sep", "synthetic", "rating_bounds"):
            if k in d:
                raise ConfigError(
                    f"{where}: {k} applies to ratings files, not registry datasets (the registry "
                    "declares the bounds); remove it"
                )
        name = d["name"]
        if not isinstance(name, str):
            raise ConfigError(f"{where}: name must be a string, got {name!r}")
        data_home = d.get("data_home")
        if data_home is not None:
            data_home = os.path.join(base_dir, os.path.expanduser(str(data_home)))
        return SweepDataset(label=label or name, source="registry", name=name, data_home=data_home)
    if src == "ratings":
        if "data_home" in d:
            raise ConfigError(f"{where}: data_home applies to registry datasets; give the file path in ratings")
        p = d["ratings"]
        if not isinstance(p, str):
            raise ConfigError(f"{where}: ratings must be a file path string, got {p!r}")
        path = os.path.join(base_dir, os.path.expanduser(os.path.expandvars(p)))
        cols = d.get("columns", {})
        _check_keys(cols, _COLUMN_KEYS, f"{where} columns")
        sep = d.get("sep")
        return SweepDataset(
            label=label or os.path.basename(p),
            source="file",
            path=path,
            columns=dict(cols),
            sep=sep,
            rating_bounds=bounds,
        )
    syn = d["synthetic"]
    if not isinstance(syn, dict):
        raise ConfigError(
            f"{where}: synthetic must be a table, e.g. synthetic = {{ n_users = 2000, n_items = 1000, rank = 8 }}"
        )
    for k in ("n_users", "n_items", "rank"):
        if k not in syn:
            raise ConfigError(f"{where}: synthetic.{k} is missing; synthetic needs n_users, n_items and rank")
    for k in ("columns", "sep", "data_home"):
        if k in d:
            raise ConfigError(f"{where}: {k} does not apply to synthetic data; remove it")
    if "rng" in syn:
        raise ConfigError(f"{where}: synthetic.rng: write synthetic.seed = <int> (the generator's seed) instead")
    from dprec.datasets import synthetic as _synthetic

    allowed = sorted((set(inspect.signature(_synthetic).parameters) - {"rng"}) | {"seed"})
    for k in syn:
        if k not in allowed:
            raise ConfigError(f"unknown key {k!r} in {where} synthetic; {_suggest(k, allowed)}")
    if bounds is not None:
        syn = {**syn, "rating_bounds": list(bounds)}
    default_label = f"synthetic-{syn['n_users']}x{syn['n_items']}-r{syn['rank']}"
    return SweepDataset(label=label or default_label, source="synthetic", synthetic=dict(syn))


def _dataset_raw(d: SweepDataset) -> dict:
    if d.source == "registry":
        return {"label": d.label, "name": d.name}  # data_home is machine-specific; not part of identity
    if d.source == "file":
        return {
            "label": d.label,
            "ratings": os.path.basename(d.path),
            "columns": d.columns,
            "sep": d.sep,
            "rating_bounds": list(d.rating_bounds) if d.rating_bounds else None,
        }
    return {"label": d.label, "synthetic": d.synthetic}


def _check_models_constructible(cfg: BenchConfig) -> None:
    """Each model's params must be valid: checked by the model's ``Config`` class (with the values the sweep
    sets: ε, δ, privacy unit, seed), then by building one model, cheaply, unfitted."""
    for i, m in enumerate(cfg.models):
        where = f"[[models]] #{i + 1} ({m.label})"
        cls = m.model_class()
        swept = {"rng": cfg.run.seeds[0]}
        if m.is_dp:
            swept.update(epsilon=m.epsilons[0], delta=cfg.run.delta, privacy_unit=cfg.run.privacy_unit)
        validate_config(cls.Config, {**m.params, **swept}, where=f"{where} params")
        try:
            m.build(
                epsilon=m.epsilons[0], delta=cfg.run.delta, privacy_unit=cfg.run.privacy_unit, seed=cfg.run.seeds[0]
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except (TypeError, ValueError) as exc:  # the constructor's own validation of the params
            raise ConfigError(f"{where}: {cls.__name__} rejects these params ({exc})") from None


def _check_datasets(cfg: BenchConfig) -> None:
    """Load every dataset now, so a missing one fails before any training."""
    any_dp = any(m.is_dp for m in cfg.models)
    for i, d in enumerate(cfg.datasets):
        where = f"[[datasets]] #{i + 1} ({d.label})"
        if d.source == "file" and not os.path.exists(d.path):
            raise ConfigError(
                f"{where}: ratings file {d.path!r} does not exist; fix the path (relative paths are "
                "relative to the config file)"
            )
        try:
            data = d.load()
        except (ConfigError, CorruptFileError):
            raise
        except FileNotFoundError as exc:  # the loader's message already says where to put the files / how to get them
            raise ConfigError(f"{where}: {exc}") from None
        except (ValueError, KeyError, OSError) as exc:  # the loaders' validation errors; prefix where it happened
            if d.source == "registry":
                fix = (
                    "check the name (`dprec datasets list` shows the registry), or put the files under "
                    f"$DPREC_DATA (currently {os.environ.get('DPREC_DATA', 'unset')!r}) or download them with "
                    f"dprec.datasets.load_dataset({d.name!r}, download=True)"
                )
            elif d.source == "file":
                fix = "check the file format, columns = {...}, sep and rating_bounds"
            else:
                fix = "check the synthetic = {...} parameters against dprec.datasets.synthetic"
            raise ConfigError(f"{where}: cannot load dataset: {type(exc).__name__}: {exc}. Fix: {fix}") from None
        if any_dp and data.rating_bounds is None:
            raise ConfigError(f"{where}: DP models need public rating bounds; add rating_bounds = [lo, hi]")
        cfg._data_cache[d.label] = data
