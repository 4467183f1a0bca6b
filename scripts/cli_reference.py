"""Generate ``docs/cli.md``, the reference of every ``dprec`` command, from the click commands themselves.

Run: ``python scripts/cli_reference.py`` (rewrites docs/cli.md) or ``python scripts/cli_reference.py --check``
(exit code 1 if docs/cli.md is not current; ``tests/cli/test_cli_reference.py`` runs this check). Run it in a
fresh interpreter: models registered by other code (tests, plugins) would appear in the generated flags.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "cli.md"

HEADER = """# `dprec` command-line reference

Generated from the click commands by `python scripts/cli_reference.py`; do not edit by hand
(`tests/cli/test_cli_reference.py` fails when this file is not current). The walkthrough is in the
[README](../README.md#command-line); choosing ε and δ: [choosing-epsilon.md](choosing-epsilon.md).

Exit codes: 0 success; 2 usage error or bad input (a flag, a model hyperparameter or config, a ratings file,
an unknown id); 3 the privacy budget or the ledger refused (nothing was trained or charged); 4 a file that
cannot be trusted (corrupt, tampered, wrong format). Warnings are one `warning: …` line each on stderr.

The hyperparameter flags are generated from the registered models' `Config` fields: a flag applies to the
models it lists, with each model's default (`auto` means the model's documented rule chooses the value).
"""


def _cell(text: str) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text.replace("docs/choosing-epsilon.md", "[docs/choosing-epsilon.md](choosing-epsilon.md)")


def _commands(group: click.Group, prefix: str):
    for name, cmd in group.commands.items():  # the order the commands were added: the walkthrough's
        if cmd.hidden:
            continue
        full = f"{prefix} {name}"
        yield full, cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, full)


def render() -> str:
    from dprec.cli import cli

    out = [HEADER]
    for full, cmd in _commands(cli, "dprec"):
        parent = click.Context(cli, info_name="dprec")
        ctx = click.Context(cmd, info_name=full, parent=None if full.count(" ") == 0 else parent)
        ctx.info_name = full
        out.append(f"## `{full}`\n")
        pieces = cmd.collect_usage_pieces(ctx)
        out.append(f"```\n{full} {' '.join(pieces)}\n```\n")
        if cmd.help:
            out.append(inspect.cleandoc(click.unstyle(cmd.help)).replace("\b\n", "") + "\n")
        if isinstance(cmd, click.Group):
            subs = [n for n, c in cmd.commands.items() if not c.hidden]
            out.append("Commands: " + ", ".join(f"`{full} {n}`" for n in subs) + ".\n")
            continue
        sections: dict[str, list] = {}
        for p in cmd.get_params(ctx):
            if isinstance(p, click.Argument):
                sections.setdefault("arguments", []).append((p.make_metavar(ctx), "required" if p.required else ""))
                continue
            rec = p.get_help_record(ctx)
            if rec is None or "--help" in rec[0]:
                continue
            sections.setdefault(getattr(p, "group", "options"), []).append(rec)
        for name, rows in sections.items():
            out.append(f"**{name[0].upper() + name[1:]}**\n")
            out.append("| option | description |\n|---|---|")
            out.extend(f"| `{_cell(o)}` | {_cell(h)} |" for o, h in rows)
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is not current")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print("docs/cli.md is not current: run `python scripts/cli_reference.py`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
