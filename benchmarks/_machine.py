"""Machine facts recorded in every speed-benchmark result file."""

from __future__ import annotations

import os
import platform
import subprocess


def cpu_model() -> str | None:
    """The CPU model name from /proc/cpuinfo (Linux), else what :func:`platform.processor` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_commit() -> str | None:
    """The checkout's commit, with ``" (src modified)"`` when ``src/`` has uncommitted changes; None outside git."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "../src"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha.strip() + (" (src modified)" if dirty.strip() else "")


def versions(**extra) -> dict:
    """The versions every speed-benchmark result file records (dprec, its commit, numpy, numba, Python), plus ``extra``."""
    import numba
    import numpy as np

    import dprec

    return {
        "dprec": dprec.__version__,
        "git_commit": git_commit(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "python": platform.python_version(),
        **extra,
    }
