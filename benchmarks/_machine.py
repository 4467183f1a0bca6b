"""Machine facts recorded in every speed-benchmark result file."""

from __future__ import annotations

import platform


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
