"""Regenerate README.md's results block from committed sweep results (a repository tool, not part of dprec).

``python benchmarks/readme.py [--readme README.md] [--results benchmarks/results] [--metrics rmse ndcg@10] [--check]``
replaces the text
between the markers ``<!-- results:start -->`` and ``<!-- results:end -->`` with tables built from every
``benchmarks/results/*/summary.csv`` (directories in sorted order). ``--check`` exits 1 when the README is out
of date instead of rewriting it (for CI).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

from dprec.bench.summary import markdown_tables, read_summary_csv

__all__ = ["START", "END", "render_results", "update_readme", "main"]

#: the repository root (this file lives in ROOT/benchmarks): the default README and results directory
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = "<!-- results:start -->"
END = "<!-- results:end -->"


def render_results(results_dir: str, *, link_base: str | None = None, metrics=None) -> str:
    """Markdown for every ``results_dir/*/summary.csv``: per sweep a heading and its tables (only ``metrics``,
    e.g. ``["rmse", "ndcg@10"]``, when given)."""
    parts = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*", "summary.csv"))):
        sweep = os.path.basename(os.path.dirname(path))
        agg = read_summary_csv(path)
        if not agg:
            continue
        rel = os.path.relpath(os.path.dirname(path), link_base) if link_base else os.path.dirname(path)
        parts.append(
            f"### Sweep `{sweep}`\n\nFrom [`{rel}/summary.csv`]({rel}/summary.csv) "
            f"(mean ± sample std over seeds; n = number of seeds).\n\n"
        )
        parts.append(markdown_tables(agg, heading_level=4, metrics=metrics))
    if not parts:
        return (
            f"_No results under `{results_dir}` yet: run `dprec bench benchmarks/configs/quick.toml --out "
            f"benchmarks/results/quick`._\n"
        )
    return "".join(parts)


def update_readme(
    readme: str = "README.md", results_dir: str = "benchmarks/results", *, check: bool = False, metrics=None
) -> bool:
    """Rewrite the results block of ``readme``. Returns True when the file changed (or would change)."""
    with open(readme, encoding="utf-8") as fh:
        text = fh.read()
    i, j = text.find(START), text.find(END)
    if i < 0 or j < 0 or j < i:
        raise ValueError(
            f"{readme} has no results block: add the lines {START} and {END} (in this order) where the "
            "results tables should go"
        )
    body = render_results(results_dir, link_base=os.path.dirname(os.path.abspath(readme)), metrics=metrics)
    new = text[: i + len(START)] + "\n\n" + body.rstrip("\n") + "\n\n" + text[j:]
    changed = new != text
    if changed and not check:
        tmp = readme + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(new)
        os.replace(tmp, readme)
    return changed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/readme.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    p.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results"))
    p.add_argument("--check", action="store_true", help="exit 1 if the README is out of date; change nothing")
    p.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        help="only these metrics (names as in summary.csv, e.g. rmse ndcg@10); default: all",
    )
    args = p.parse_args(argv)
    try:
        changed = update_readme(args.readme, args.results, check=args.check, metrics=args.metrics)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if changed:
            print(f"{args.readme} results block is out of date: run python benchmarks/readme.py", file=sys.stderr)
        return 1 if changed else 0
    print(f"{args.readme}: results block {'updated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
