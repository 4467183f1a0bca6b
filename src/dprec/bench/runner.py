"""Sweep runner: a grid of (dataset, model, ε, seed) cells, one JSON line per finished cell.

Rows are appended to ``OUT/results.jsonl`` as soon as a cell finishes (flush + fsync), so a killed sweep loses at
most the cell in flight; ``resume=True`` skips the cells already recorded (a truncated last line, the trace
of a kill, is dropped). With ``jobs > 1`` cells run in worker processes and the parent writes the rows in
completion order; summaries sort rows, so the order does not matter.

Row schema (``schema = "dprec-bench-row/1"``)::

    key            "dataset|model-label|eps=…|seed=…#<hash of the cell's specification>"
    run            sweep name
    dataset        {label, source, name, checksum, checksum_kind, n_users, n_items, n_ratings, n_train, n_test}
    model          {label, name, params}
    epsilon        number or "inf";  delta, privacy_unit, seed
    split          {protocol, test_fraction, split_seed} (+ heldout_users, validation_users, history_fraction,
                   positive_threshold, min_ratings for protocol "strong"; n_test then counts the test users' targets)
    k              list of cut-offs
    metrics        {"rmse": …, "precision@10": …, …}   (null = NaN: undefined for this model); with ``audit`` in
                   [run], also "audit:<name>" for the selected :meth:`dprec.audit.BiasAudit.flat_metrics`
                   (at the first k; computed on private test data: not DP, like every metric here)
    privacy_report the DP model's privacy_report() (null for non-private models)
    fit_seconds, eval_seconds, wall_seconds   timings (excluded from identity comparisons: TIMING_FIELDS)
    versions       :func:`dprec._provenance.versions`: python, dprec (+ dprec_source_sha256: hash of its .py
                   files), numpy, scipy, pandas, numba, opendp, dp-accounting, implicit, pydantic
    machine        {cpu_count, system, arch}   (no hostname)
    config, config_sha256   the full normalised configuration

Non-finite floats are stored as JSON-safe values: ``"inf"``/``"-inf"`` strings and ``null`` for NaN.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass

from .._json import to_jsonable
from .._provenance import versions
from ..errors import ConfigError, CorruptFileError, DataWarning
from ..privacy.units import PrivacyWarning
from .config import AUDIT_PREFIX, RATING_METRICS, BenchConfig, format_epsilon, load_config, metric_names

__all__ = ["run_bench", "read_results", "strip_timing", "TIMING_FIELDS", "RESULTS_FILE", "SCHEMA", "Cell"]

RESULTS_FILE = "results.jsonl"
#: what every results row and the sweep's output say about the models a sweep fits
NOT_FOR_RELEASE = (
    "measurement only: models are fitted with explicit seeds (reproducibility mode) and metrics are "
    "computed on raw held-out data (not DP); nothing a sweep fits is for release"
)

SCHEMA = "dprec-bench-row/1"
TIMING_FIELDS = ("fit_seconds", "eval_seconds", "wall_seconds")


# ---------------------------------------------------------------------------------------------- helpers
def as_float(v) -> float:
    """Inverse of :func:`dprec._json.to_jsonable` for numbers: None → NaN, "inf" → inf."""
    if v is None:
        return math.nan
    if isinstance(v, str):
        return float(v.replace("∞", "inf"))
    return float(v)


def strip_timing(row: dict) -> dict:
    """The row without its timing fields (for identity comparisons between runs)."""
    return {k: v for k, v in row.items() if k not in TIMING_FIELDS}


# ---------------------------------------------------------------------------------------------- environment
def _machine() -> dict:
    return {"cpu_count": os.cpu_count(), "system": platform.system(), "arch": platform.machine()}


# ---------------------------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    dataset: str
    model_index: int
    epsilon: float
    seed: int
    key: str


def _cell_key(cfg: BenchConfig, dataset_label: str, model_index: int, eps: float, seed: int) -> str:
    m = cfg.models[model_index]
    d = next(x for x in cfg.raw["datasets"] if x["label"] == dataset_label)
    r = cfg.raw["run"]
    spec = {
        "dataset": d,
        "model": {"name": m.name, "params": m.params},
        "split": [r["split"], r["test_fraction"], r["split_seed"]]
        + ([{k: r[k] for k in cfg.run.strong}] if cfg.run.strong else []),
        "k": r["k"],
        "metrics": r["metrics"],
        "delta": r["delta"] if m.is_dp else None,
        "privacy_unit": r["privacy_unit"] if m.is_dp else None,
    }
    if cfg.run.audit is not None:  # only then (the keys of sweeps without audit columns do not change)
        spec["audit"] = [r["audit"], r["audit_groups"]]
    h = hashlib.sha256(json.dumps(to_jsonable(spec), sort_keys=True).encode()).hexdigest()[:12]
    return f"{dataset_label}|{m.label}|eps={format_epsilon(eps)}|seed={seed}#{h}"


def build_cells(cfg: BenchConfig) -> list[Cell]:
    """Every cell of the grid, in config order (dataset, model, ε ascending, seed)."""
    cells = []
    for d in cfg.datasets:
        for mi, m in enumerate(cfg.models):
            for eps in m.epsilons:
                for seed in cfg.run.seeds:
                    cells.append(Cell(d.label, mi, eps, seed, _cell_key(cfg, d.label, mi, eps, seed)))
    return cells


def compute_splits(cfg: BenchConfig) -> dict:
    """One split per dataset, with the config's protocol and split_seed: ``(train, test)`` for "random" and
    "user", a :class:`~dprec.split.StrongSplit` for "strong"."""
    from ..split import random_split, strong_generalization, user_holdout

    if cfg.run.split == "strong":
        st = cfg.run.strong
        return {
            d.label: strong_generalization(
                cfg.load_data(d.label),
                n_heldout_users=st["heldout_users"],
                n_validation_users=st["validation_users"],
                history_fraction=st["history_fraction"],
                positive_threshold=st.get("positive_threshold"),
                min_ratings=st["min_ratings"],
                rng=cfg.run.split_seed,
            )
            for d in cfg.datasets
        }
    fn = random_split if cfg.run.split == "random" else user_holdout
    return {d.label: fn(cfg.load_data(d.label), cfg.run.test_fraction, rng=cfg.run.split_seed) for d in cfg.datasets}


def _train_test(split) -> tuple:
    """(train, test) of a split: for strong generalisation, the training users and the test users' targets."""
    from ..split import StrongSplit

    return (split.train, split.targets) if isinstance(split, StrongSplit) else split


def _evaluate(cfg: BenchConfig, model, split) -> dict:
    """The requested metrics, from one ranking pass at the largest cut-off (:func:`dprec.metrics.evaluate`'s
    machinery), named by :func:`~dprec.bench.config.metric_names` (``rmse``, ``ndcg@10``, ``recall@20``, …).
    Under split = "strong" the test users' histories are folded in first (:func:`dprec.metrics.evaluate_strong`)."""
    from ..metrics import _evaluate_at, _serve_heldout
    from ..split import StrongSplit

    if isinstance(split, StrongSplit):
        model, test = _serve_heldout(model, split, "test")
        train = split.train
    else:
        train, test = split
    ranking = any(m not in RATING_METRICS for m in cfg.run.metrics)
    cuts = cfg.run.cutoffs() if ranking else cfg.run.ks[:1]
    with warnings.catch_warnings():
        if not any(m in RATING_METRICS for m in cfg.run.metrics):  # RMSE not asked for: its warnings are noise
            warnings.filterwarnings("ignore", category=DataWarning, message="every test value is")
            warnings.filterwarnings("ignore", category=DataWarning, message=".* worse than predicting the training")
        err, at, _ = _evaluate_at(model, train, test, cuts)
    out: dict[str, float] = {}
    for metric in cfg.run.metrics:
        if metric in RATING_METRICS:
            out[metric] = err[metric]
        elif "@" in metric:
            base, _, c = metric.partition("@")
            out[metric] = at[int(c)][f"{base}_at_k"]
        else:
            for k in cfg.run.ks:
                (name,) = metric_names([metric], [k])
                out[name] = at[k][metric]
    return {name: out[name] for name in metric_names(cfg.run.metrics, cfg.run.ks)}


def _audit_columns(cfg: BenchConfig, model, split, dataset_label: str) -> dict:
    """The selected ``BiasAudit.flat_metrics()`` of a fitted model, as ``"audit:<name>"`` columns (not DP)."""
    from ..audit import audit_bias

    train, test = split
    groups = None
    if cfg.run.audit_groups:
        from ..datasets.attributes import load_user_attributes

        spec = next(d for d in cfg.datasets if d.label == dataset_label)
        groups = load_user_attributes("ml-100k", data_home=spec.data_home)[list(cfg.run.audit_groups)]
    flat = audit_bias(model, train, test, groups=groups, k=cfg.run.ks[0]).flat_metrics()
    return {AUDIT_PREFIX + n: v for n, v in flat.items() if cfg.run.audit_selected(n)}


# ---------------------------------------------------------------------------------------------- one cell
_WORKER: dict = {}


def _init_worker(cfg_path_or_cfg, splits, num_threads):
    _WORKER["cfg"] = cfg_path_or_cfg
    _WORKER["splits"] = splits
    _WORKER["num_threads"] = num_threads


def _worker_run(cell: Cell, base: dict) -> dict:
    return run_cell(_WORKER["cfg"], _WORKER["splits"], cell, base, num_threads=_WORKER["num_threads"])


def run_cell(cfg: BenchConfig, splits: dict, cell: Cell, base: dict, *, num_threads: int | None = None) -> dict:
    """Fit a fresh model for one cell, evaluate it, and return its result row."""
    t0 = time.perf_counter()
    spec = cfg.models[cell.model_index]
    train, _ = _train_test(splits[cell.dataset])
    model = spec.build(
        epsilon=cell.epsilon,
        delta=cfg.run.delta,
        privacy_unit=cfg.run.privacy_unit,
        seed=cell.seed,
        num_threads=num_threads,
    )
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        # seeded on purpose: a sweep is a measurement (reproducible results files), its models are not released
        warnings.filterwarnings("ignore", message=r".*reproducibility mode", category=PrivacyWarning)
        model.fit(train)
    t2 = time.perf_counter()
    metrics = _evaluate(cfg, model, splits[cell.dataset])
    if cfg.run.audit is not None:
        metrics.update(_audit_columns(cfg, model, splits[cell.dataset], cell.dataset))
    t3 = time.perf_counter()
    report = model.privacy_report() if hasattr(model, "privacy_report") else None
    row = {
        "schema": SCHEMA,
        "key": cell.key,
        "run": cfg.run.name,
        "dataset": base["datasets"][cell.dataset],
        "model": {"label": spec.label, "name": spec.name, "params": spec.params},
        "epsilon": cell.epsilon,
        "delta": cfg.run.delta if spec.is_dp else None,
        "privacy_unit": cfg.run.privacy_unit if spec.is_dp else None,
        "private": spec.is_dp,
        "seed": cell.seed,
        "notice": NOT_FOR_RELEASE,
        "split": {
            "protocol": cfg.run.split,
            "test_fraction": cfg.run.test_fraction,
            "split_seed": cfg.run.split_seed,
            **cfg.run.strong,
        },
        "k": list(cfg.run.ks),
        "metrics": metrics,
        "privacy_report": report,
        "fit_seconds": t2 - t1,
        "eval_seconds": t3 - t2,
        "wall_seconds": time.perf_counter() - t0,
        "versions": base["versions"],
        "machine": base["machine"],
        "config": cfg.raw,
        "config_sha256": cfg.sha256,
    }
    return to_jsonable(row)


# ---------------------------------------------------------------------------------------------- results file
def read_results(path, *, repair: bool = False) -> list[dict]:
    """Rows of a results.jsonl. A truncated (unparseable, unterminated) last line — the trace of a kill — is
    dropped (and cut from the file when ``repair``); a corrupt line elsewhere raises CorruptFileError."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, RESULTS_FILE)
    if not os.path.exists(path):
        return []
    with open(path, "rb") as fh:
        blob = fh.read()
    rows, good_end, pos = [], 0, 0
    lines = blob.split(b"\n")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        end = pos + len(line) + (0 if last else 1)
        if line.strip():
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or "key" not in row:
                    raise ValueError("not a result row")
            except (ValueError, UnicodeDecodeError):
                if last or all(not x.strip() for x in lines[i + 1 :]):
                    break  # truncated tail: drop it
                raise CorruptFileError(
                    f"{path}: line {i + 1} is not a valid result row (file edited or "
                    "corrupted); fix or remove that line"
                ) from None
            if last:  # a complete JSON object without its newline: keep it, but terminate it when repairing
                rows.append(row)
                good_end = end
                if repair:
                    with open(path, "ab") as fh:
                        fh.write(b"\n")
                        fh.flush()
                        os.fsync(fh.fileno())
                    good_end += 1
                break
            rows.append(row)
        good_end = end
        pos = end
    if repair and good_end < len(blob):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())
    return rows


class _Appender:
    def __init__(self, path):
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.fh.write(json.dumps(row, sort_keys=True, allow_nan=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self):
        self.fh.close()


# ---------------------------------------------------------------------------------------------- the sweep
def _progress_bar(total: int, name: str):
    """A tqdm bar on stderr, or None when tqdm (the ``[bench]`` extra) is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=f"bench {name}", unit="cell", file=sys.stderr, initial=0, dynamic_ncols=True)


def run_bench(
    config, out, *, resume: bool = False, jobs: int = 1, progress: bool = True, summarize: bool = True
) -> list[dict]:
    """Run a sweep and write ``OUT/results.jsonl``, ``OUT/summary.md``, ``OUT/summary.csv`` and plots.

    Parameters
    ----------
    config : path to a TOML file, or a :class:`~dprec.bench.config.BenchConfig`
        Validated before anything is trained or written (:class:`ConfigError`).
    out : directory
        Created if needed.
    resume : bool
        Skip cells already in ``OUT/results.jsonl``. Without it an existing non-empty results file is an error.
    jobs : int
        Worker processes (default 1: run in this process).
    progress : bool
        Show a tqdm progress bar with ETA (on stderr), when tqdm is installed (the ``[bench]`` extra).

    Returns
    -------
    All rows of the results file (old and new).
    """
    cfg = config if isinstance(config, BenchConfig) else load_config(config)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"--jobs must be a positive integer, got {jobs!r}")
    out = os.fspath(out)
    results_path = os.path.join(out, RESULTS_FILE)
    cells = build_cells(cfg)
    done: set[str] = set()
    if os.path.exists(results_path) and os.path.getsize(results_path) > 0:
        if not resume:
            raise FileExistsError(
                f"{results_path} already holds results; use --resume (resume=True) to continue that sweep "
                "or another --out directory"
            )
        old = read_results(results_path)
        valid = {c.key for c in cells}
        stale = [r["key"] for r in old if r["key"] not in valid]
        if stale:
            raise ConfigError(
                f"{results_path} holds {len(stale)} row(s) that are not cells of this config (first: {stale[0]!r}); "
                "the config changed since that sweep — use another --out directory"
            )
        done = {r["key"] for r in old}
    else:
        old = []
    todo = [c for c in cells if c.key not in done]

    splits = compute_splits(cfg)
    base = {
        "versions": versions(),
        "machine": _machine(),
        "datasets": {},
    }
    for d in cfg.datasets:
        data = cfg.load_data(d.label)
        checksum, kind = d.checksum(data)
        train, test = _train_test(splits[d.label])
        base["datasets"][d.label] = {
            "label": d.label,
            "source": d.source,
            "name": d.name if d.source == "registry" else d.label,
            "checksum": checksum,
            "checksum_kind": kind,
            "n_users": int(data.n_users),
            "n_items": int(data.n_items),
            "n_ratings": int(data.nnz),
            "n_train": int(train.nnz),
            "n_test": int(test.nnz),
        }

    for r in old:  # resuming: the data must be the very same
        now = base["datasets"].get(r["dataset"]["label"], {}).get("checksum")
        if now != r["dataset"].get("checksum"):
            raise ConfigError(
                f"{results_path}: dataset {r['dataset']['label']!r} has changed since that sweep (checksum "
                f"{str(r['dataset'].get('checksum'))[:12]}… then, {str(now)[:12]}… now); use another --out directory"
            )
    if old:
        read_results(results_path, repair=True)  # drop a truncated last line before appending
    os.makedirs(out, exist_ok=True)
    bar = _progress_bar(len(todo), cfg.run.name) if progress and todo else None
    app = _Appender(results_path)
    try:
        if jobs == 1 or len(todo) <= 1:
            for cell in todo:
                if bar is not None:
                    bar.set_postfix_str(cell.key.split("#")[0], refresh=True)
                app.write(run_cell(cfg, splits, cell, base))
                if bar is not None:
                    bar.update(1)
        else:
            import multiprocessing as mp
            from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

            threads = max(1, (os.cpu_count() or 1) // jobs)
            # "spawn": numba's threading layers are not fork-safe; the config and splits are sent once per worker
            ctx = mp.get_context("spawn")
            worker_cfg = BenchConfig(
                run=cfg.run, datasets=cfg.datasets, models=cfg.models, raw=cfg.raw, path=cfg.path
            )  # without the loaded-data cache
            pool = ProcessPoolExecutor(
                max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(worker_cfg, splits, threads)
            )
            try:
                pending = {pool.submit(_worker_run, cell, base) for cell in todo}
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        app.write(fut.result())
                        if bar is not None:
                            bar.update(1)
            except BaseException:
                # Ctrl-C or a failed cell: stop at once (finished rows are on disk; --resume continues).
                workers = list((getattr(pool, "_processes", None) or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for proc in workers:  # our own worker processes, by handle
                    if proc.is_alive():
                        proc.terminate()
                raise
            pool.shutdown(wait=True)
    finally:
        app.close()
        if bar is not None:
            bar.close()
    rows = read_results(results_path)
    if summarize:
        from .summary import write_summary

        write_summary(out, rows)
    return rows
