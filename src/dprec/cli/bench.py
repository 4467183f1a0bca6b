"""``dprec bench run|summary``: accuracy-versus-privacy sweeps (:mod:`dprec.bench`), as a sub-group."""

from __future__ import annotations

import sys
import time

import click

from ..errors import ConfigError


class _BenchGroup(click.Group):
    """``dprec bench CONFIG --out DIR`` (the form before the sub-group existed) still means ``bench run``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("bench", cls=_BenchGroup)
def bench():
    """Benchmark sweeps: run a TOML grid of (dataset, model, ε, seed) cells, summarise the results.

    Every figure is computed on raw held-out data with seeded fits: measurements, not releases.
    """


@bench.command("run")
@click.argument("config", metavar="CONFIG.toml")
@click.option("--out", required=True, metavar="DIR", help="results directory (results.jsonl, summary.md/.csv, plots/)")
@click.option("--resume", is_flag=True, help="skip cells already recorded in DIR/results.jsonl")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="worker processes")
@click.option("--no-progress", is_flag=True, help="no progress bar")
def bench_run(config, out, resume, jobs, no_progress):
    """Run an accuracy-versus-privacy sweep from a TOML config (e.g. benchmarks/configs/quick.toml)."""
    from ..bench import run_bench
    from ..bench.runner import NOT_FOR_RELEASE

    t0 = time.perf_counter()
    try:
        rows = run_bench(config, out, resume=resume, jobs=jobs, progress=not no_progress)
    except FileExistsError as exc:  # results already in --out: a usage error
        raise ConfigError(str(exc)) from None
    except KeyboardInterrupt:
        print(
            f"\ndprec bench: interrupted; finished cells are kept in {out}/results.jsonl — continue with "
            f"`dprec bench run {config} --out {out} --resume`",
            file=sys.stderr,
        )
        return 130
    print(
        f"{len(rows)} cells in {out}/results.jsonl ({time.perf_counter() - t0:.1f} s); "
        f"summary: {out}/summary.md, {out}/summary.csv, {out}/plots/"
    )
    print(f"note: {NOT_FOR_RELEASE}")
    return 0


@bench.command("summary")
@click.argument("dir", metavar="DIR")
@click.option("--no-plots", is_flag=True, help="skip the PNG plots")
def bench_summary(dir, no_plots):  # noqa: A002
    """Regenerate a sweep's summary.md/.csv and plots from DIR/results.jsonl."""
    from ..bench import summarize_dir

    try:
        paths = summarize_dir(dir, plots=not no_plots)
    except FileNotFoundError as exc:  # no results.jsonl in DIR
        raise ConfigError(str(exc)) from None
    print(
        f"wrote {paths['md']}, {paths['csv']}"
        + (f" and {len(paths.get('plots', []))} plots" if "plots" in paths else "")
    )
    return 0


#: ``dprec bench-summary DIR``: hidden alias of ``dprec bench summary DIR``
bench_summary_alias = click.Command(
    "bench-summary", callback=bench_summary.callback, params=list(bench_summary.params), hidden=True,
    help="Alias of `dprec bench summary`.",
)  # fmt: skip
