"""The README's library example runs as written: with MovieLens-100K when ``DPREC_DATA`` has it, and on the
synthetic fallback without any data (the block catches the ``FileNotFoundError`` of ``load_dataset``)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def library_example() -> str:
    text = README.read_text()
    section = text[text.index("## Library example") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README: no python block under '## Library example'"
    return match.group(1)


def _run(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)  # the example writes budget.sqlite into the working directory
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(library_example(), str(README), "exec"), {"__name__": "readme_example"})
    return out.getvalue()


def test_readme_example_without_data(tmp_path, monkeypatch):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("DPREC_DATA", str(empty))  # nothing here, so the block falls back to synthetic data
    printed = _run(tmp_path, monkeypatch)
    assert (tmp_path / "budget.sqlite").exists()
    assert "Remaining" in printed or "remaining" in printed.lower()


@pytest.mark.realdata
def test_readme_example_on_ml100k(tmp_path, monkeypatch, ml100k_dir):
    monkeypatch.setenv("DPREC_DATA", str(ml100k_dir.parent))
    printed = _run(tmp_path, monkeypatch)
    assert (tmp_path / "budget.sqlite").exists() and printed.count("\n") >= 2
