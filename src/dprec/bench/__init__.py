"""Benchmark suite: reproducible accuracy-versus-privacy sweeps.

``dprec bench CONFIG.toml --out DIR [--resume] [--jobs N]`` runs the grid of (dataset, model, ε, seed) cells
of a TOML config (format: :mod:`dprec.bench.config`), appending one JSON row per cell to
``DIR/results.jsonl`` (schema: :mod:`dprec.bench.runner`), then writes ``DIR/summary.md``,
``DIR/summary.csv`` and ``DIR/plots/*.png`` (:mod:`dprec.bench.summary`, :mod:`dprec.bench.plots`).
``dprec bench-summary DIR`` regenerates the summary from the results. The repository script
``benchmarks/readme.py`` rewrites the results block of README.md from ``benchmarks/results/*/summary.csv``.

Importing the bench registers its adapter ``implicit-als`` (:mod:`dprec.bench.adapters`) in the model registry.
Errors are :mod:`dprec.errors` exceptions; the ``dprec`` command maps them to exit codes (:func:`dprec.cli.main`).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from .config import BenchConfig, load_config, parse_config
from .runner import TIMING_FIELDS, read_results, run_bench, strip_timing
from .summary import summarize_dir, write_summary

__all__ = [
    "ConfigError",
    "BenchConfig",
    "load_config",
    "parse_config",
    "run_bench",
    "read_results",
    "strip_timing",
    "TIMING_FIELDS",
    "write_summary",
    "summarize_dir",
    "run_cli",
    "run_summary_cli",
    "add_bench_arguments",
    "add_summary_arguments",
    "main",
]


def add_bench_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``dprec bench``."""
    p.add_argument("config", help="sweep configuration (TOML), e.g. benchmarks/configs/quick.toml")
    p.add_argument("--out", required=True, help="results directory (results.jsonl, summary.md/.csv, plots/)")
    p.add_argument("--resume", action="store_true", help="skip cells already recorded in OUT/results.jsonl")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def add_summary_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``dprec bench-summary``."""
    p.add_argument("dir", help="results directory holding results.jsonl")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def run_cli(args) -> int:
    """Entry point of ``dprec bench`` (an argparse namespace from :func:`add_bench_arguments`). Returns the
    exit code; configuration and output-directory errors are raised as :class:`~dprec.errors.ConfigError`."""
    import time

    t0 = time.perf_counter()
    try:
        rows = run_bench(
            args.config,
            args.out,
            resume=bool(getattr(args, "resume", False)),
            jobs=getattr(args, "jobs", 1),
            progress=not getattr(args, "no_progress", False),
        )
    except FileExistsError as exc:  # results already in --out: a usage error
        raise ConfigError(str(exc)) from None
    except KeyboardInterrupt:
        print(
            f"\ndprec bench: interrupted; finished cells are kept in {args.out}/results.jsonl — continue with "
            f"`dprec bench {args.config} --out {args.out} --resume`",
            file=sys.stderr,
        )
        return 130
    print(
        f"{len(rows)} cells in {args.out}/results.jsonl ({time.perf_counter() - t0:.1f} s); "
        f"summary: {args.out}/summary.md, {args.out}/summary.csv, {args.out}/plots/"
    )
    from .runner import NOT_FOR_RELEASE

    print(f"note: {NOT_FOR_RELEASE}")
    return 0


def run_summary_cli(args) -> int:
    """Entry point of ``dprec bench-summary DIR``."""
    try:
        paths = summarize_dir(args.dir, plots=not getattr(args, "no_plots", False))
    except FileNotFoundError as exc:  # no results.jsonl in DIR
        raise ConfigError(str(exc)) from None
    print(
        f"wrote {paths['md']}, {paths['csv']}"
        + (f" and {len(paths.get('plots', []))} plots" if "plots" in paths else "")
    )
    return 0


def main(argv=None) -> int:
    """``python -m dprec.bench CONFIG --out DIR`` (same as ``dprec bench``); ``python -m dprec.bench summary DIR``
    (same as ``dprec bench-summary DIR``); errors and exit codes as for the ``dprec`` command."""
    from ..cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "summary":
        return cli_main(["bench-summary", *argv[1:]])
    return cli_main(["bench", *argv])
