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
