"""Benchmark suite: reproducible accuracy-versus-privacy sweeps.

``dprec bench CONFIG.toml --out DIR [--resume] [--jobs N]`` runs the grid of (dataset, model, ε, seed) cells
of a TOML config (format: :mod:`dprec.bench.config`), appending one JSON row per cell to
``DIR/results.jsonl`` (schema: :mod:`dprec.bench.runner`), then writes ``DIR/summary.md``,
``DIR/summary.csv`` and ``DIR/plots/*.png`` (:mod:`dprec.bench.summary`, :mod:`dprec.bench.plots`).
``dprec bench-summary DIR`` regenerates the summary from the results. ``python -m dprec.bench.readme``
rewrites the results block of README.md from ``benchmarks/results/*/summary.csv``.
"""

from __future__ import annotations

import argparse
import sys

from .config import BenchConfig, ConfigError, load_config, parse_config
from .runner import TIMING_FIELDS, read_results, run_bench, strip_timing
from .summary import summarize_dir, write_summary

__all__ = [
    "ConfigError", "BenchConfig", "load_config", "parse_config", "run_bench", "read_results", "strip_timing",
    "TIMING_FIELDS", "write_summary", "summarize_dir", "run_cli", "run_summary_cli", "add_bench_arguments",
    "add_summary_arguments", "main",
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
    exit code: 0 ok, 2 for configuration / output-directory errors (printed to stderr)."""
    import time

    t0 = time.perf_counter()
    try:
        rows = run_bench(args.config, args.out, resume=bool(getattr(args, "resume", False)),
                         jobs=int(getattr(args, "jobs", 1) or 1),
                         progress=not getattr(args, "no_progress", False))
    except (ConfigError, FileExistsError, ValueError) as exc:
        print(f"dprec bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndprec bench: interrupted; finished cells are kept in {args.out}/results.jsonl — continue with "
              f"`dprec bench {args.config} --out {args.out} --resume`", file=sys.stderr)
        return 130
    print(f"{len(rows)} cells in {args.out}/results.jsonl ({time.perf_counter() - t0:.1f} s); "
          f"summary: {args.out}/summary.md, {args.out}/summary.csv, {args.out}/plots/")
    from .runner import NOT_FOR_RELEASE

    print(f"note: {NOT_FOR_RELEASE}")
    return 0


def run_summary_cli(args) -> int:
    """Entry point of ``dprec bench-summary DIR``."""
    try:
        paths = summarize_dir(args.dir, plots=not getattr(args, "no_plots", False))
    except FileNotFoundError as exc:
        print(f"dprec bench-summary: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {paths['md']}, {paths['csv']}" + (f" and {len(paths.get('plots', []))} plots" if "plots" in paths else ""))
    return 0


def main(argv=None) -> int:
    """``python -m dprec.bench CONFIG --out DIR`` (same as ``dprec bench``); ``python -m dprec.bench summary DIR``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "summary":
        return run_summary_cli(add_summary_arguments(argparse.ArgumentParser(prog="python -m dprec.bench summary"))
                               .parse_args(argv[1:]))
    return run_cli(add_bench_arguments(argparse.ArgumentParser(prog="python -m dprec.bench")).parse_args(argv))
