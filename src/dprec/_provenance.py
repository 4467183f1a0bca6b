"""What every results file, CLI output and benchmark records about where it came from: package versions and
file checksums (one home for both)."""

from __future__ import annotations

import hashlib
import os
import platform
from importlib import metadata

__all__ = ["versions", "sha256_file", "source_sha256"]

#: the packages whose versions a result depends on
_PACKAGES = ("dprec", "numpy", "scipy", "pandas", "numba", "opendp", "dp-accounting", "implicit", "pydantic")


def versions(*, source: bool = True) -> dict:
    """``{"python": …, package: version or None, "dprec_source_sha256": …}`` for the packages a result depends
    on (``source``: include :func:`source_sha256`, which tells one development state of dprec from another)."""
    out = {"python": platform.python_version()}
    if source:
        out["dprec_source_sha256"] = source_sha256()
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def sha256_file(path, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (read in chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def source_sha256() -> str:
    """SHA-256 over dprec's own ``.py`` files (paths and contents): the version string does not change during
    development, this does."""
    root = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        files.extend(os.path.join(dirpath, f) for f in filenames if f.endswith(".py"))
    for f in sorted(files):
        h.update(os.path.relpath(f, root).replace(os.sep, "/").encode() + b"\0")
        with open(f, "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()
