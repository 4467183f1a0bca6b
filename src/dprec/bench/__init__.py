"""Benchmark suite: reproducible accuracy-versus-privacy sweeps.

``dprec bench run CONFIG.toml --out DIR [--resume] [--jobs N]`` runs the grid of (dataset, model, ε, seed) cells
of a TOML config (format: :mod:`dprec.bench.config`), appending one JSON row per cell to
``DIR/results.jsonl`` (schema: :mod:`dprec.bench.runner`), then writes ``DIR/summary.md``,
``DIR/summary.csv`` and ``DIR/plots/*.png`` (:mod:`dprec.bench.summary`, :mod:`dprec.bench.plots`).
``dprec bench summary DIR`` regenerates the summary from the results. The repository script
``benchmarks/readme.py`` rewrites the results block of README.md from ``benchmarks/results/*/summary.csv``.

Importing the bench registers its adapter ``implicit-als`` (:mod:`dprec.bench.adapters`) in the model registry.
Errors are :mod:`dprec.errors` exceptions; the ``dprec`` command maps them to exit codes (:func:`dprec.cli.main`).
"""

from __future__ import annotations

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
    "main",
]


def main(argv=None) -> int:
    """``python -m dprec.bench CONFIG --out DIR`` (same as ``dprec bench run``); ``python -m dprec.bench summary DIR``
    (same as ``dprec bench summary DIR``); errors and exit codes as for the ``dprec`` command."""
    from ..cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "summary":
        return cli_main(["bench", "summary", *argv[1:]])
    return cli_main(["bench", *argv])
