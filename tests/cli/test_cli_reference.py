"""docs/cli.md is generated from the click commands (scripts/cli_reference.py) and must be current."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_cli_reference_is_current():
    # a fresh interpreter: models registered by other tests must not appear in the generated flags
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr + "\nregenerate with: python scripts/cli_reference.py"


def test_reference_lists_every_command_and_generated_flag():
    from dprec.cli import cli
    from dprec.cli.options import hyperparameter_specs

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, cmd in cli.commands.items():
        if not cmd.hidden:
            assert f"## `dprec {name}`" in text
    from dprec.models import MODELS

    own = {
        f
        for f, s in hyperparameter_specs().items()
        if any(MODELS[m].__module__.startswith("dprec.") for m in s["models"])
    }
    for field in own:  # (models registered by other tests are not in the committed file)
        assert f"`--{field.replace('_', '-')}" in text
    assert text.count("[docs/choosing-epsilon.md](choosing-epsilon.md)") >= 3  # every --epsilon help links it


def test_choosing_epsilon_numbers_come_from_the_committed_benchmarks():
    import re

    doc = (ROOT / "docs" / "choosing-epsilon.md").read_text(encoding="utf-8")
    summaries = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "benchmarks" / "results").glob("*/summary.md"))
    figures = re.findall(r"\| (\d\.\d{4})(?= \|)", doc)
    assert len(figures) >= 40
    for x in figures:
        assert x in summaries, f"{x} in docs/choosing-epsilon.md is not in benchmarks/results/*/summary.md"
    for ref in re.findall(r"benchmarks/results/[\w\-]+/summary\.md", doc):
        assert (ROOT / ref).is_file(), ref
    assert "tuning.md" in doc and "ε·ñ" in doc


def test_every_epsilon_flag_links_choosing_epsilon_and_readme_links_it():
    import click

    from dprec.cli import cli
    from dprec.cli._app import CHOOSING_EPSILON

    def commands(group):
        for cmd in group.commands.values():
            yield cmd
            if isinstance(cmd, click.Group):
                yield from commands(cmd)

    n = 0
    for cmd in commands(cli):
        for p in cmd.params:
            if p.name == "epsilon":
                assert CHOOSING_EPSILON in p.help, cmd.name
                n += 1
    assert n >= 3  # train, evaluate, budget init
    assert "docs/choosing-epsilon.md" in (ROOT / "README.md").read_text(encoding="utf-8")
