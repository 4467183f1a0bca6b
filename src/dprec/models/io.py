"""Model files: arrays in an ``.npz`` (never pickled) plus a JSON manifest with each array's shape, dtype and
SHA-256, written atomically and verified on read. Raw id arrays are stored as integer or string arrays.

Two formats share this layer: ``"dprec-model"`` (:meth:`dprec.models.base.Recommender.save`, holds per-user
state) and ``"dprec-public"`` (:meth:`dprec.models._dp.DPModelMixin.export_public`, the DP artifact).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

from .._json import to_jsonable
from ..errors import CorruptFileError

__all__ = [
    "FORMAT_VERSION",
    "dprec_version",
    "write_npz_with_manifest",
    "read_npz_with_manifest",
    "ids_for_npz",
    "ids_from_npz",
]

#: highest manifest ``format_version`` this dprec reads (and the one it writes)
FORMAT_VERSION = 1


def dprec_version() -> str:
    """The dprec version recorded in a manifest."""
    from .. import __version__

    return __version__


def ids_for_npz(ids: np.ndarray, what: str) -> np.ndarray:
    """A raw id vocabulary as an integer or unicode array (object arrays of ints or strs are converted)."""
    if ids.dtype.kind in "iuU":
        return ids
    if ids.dtype.kind == "O":
        vals = ids.tolist()
        if all(isinstance(v, str) for v in vals):
            return np.asarray(vals, dtype=str)
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
            return np.asarray(vals, dtype=np.int64)
    raise TypeError(f"cannot save {what} ids of dtype {ids.dtype}: use integer or string ids")


def ids_from_npz(arr: np.ndarray) -> np.ndarray:
    """Check a stored id array (integer or unicode)."""
    if arr.dtype.kind not in "iuU":
        raise CorruptFileError(f"id array has unsupported dtype {arr.dtype}")
    return arr


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def write_npz_with_manifest(path, arrays: dict[str, np.ndarray], manifest: dict) -> str:
    """Write arrays + manifest (with per-array shape/dtype/sha256) atomically to ``path`` (``.npz`` appended)."""
    path = str(path)
    if not path.endswith(".npz"):
        path += ".npz"
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise TypeError(f"array {k!r} has dtype object; dprec never pickles")
    manifest = dict(manifest)
    manifest["arrays"] = {
        k: {"shape": list(v.shape), "dtype": v.dtype.str, "sha256": _sha(v)} for k, v in arrays.items()
    }
    payload = dict(arrays)
    payload["__manifest__"] = np.frombuffer(
        json.dumps(manifest, sort_keys=True, default=to_jsonable).encode(), dtype=np.uint8
    )
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **payload)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_npz_with_manifest(path, *, expected_format: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a file written by :func:`write_npz_with_manifest`; raise CorruptFileError on any doubt."""
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise CorruptFileError(f"{path} is not a readable dprec file ({type(exc).__name__}: {exc})") from None
    raw = data.pop("__manifest__", None)
    if raw is None:
        raise CorruptFileError(f"{path} has no manifest: not a dprec file")
    try:
        manifest = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{path}: manifest is not valid JSON ({exc})") from None
    if manifest.get("format") != expected_format:
        raise CorruptFileError(f"{path}: expected a {expected_format} file, found {manifest.get('format')!r}")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise CorruptFileError(f"{path}: written by a newer dprec (format {manifest['format_version']})")
    declared = manifest.get("arrays", {})
    if set(declared) != set(data):
        raise CorruptFileError(f"{path}: arrays {sorted(set(declared) ^ set(data))} are missing or unexpected")
    for k, meta in declared.items():
        a = data[k]
        if list(a.shape) != meta["shape"] or a.dtype.str != meta["dtype"] or _sha(a) != meta["sha256"]:
            raise CorruptFileError(f"{path}: array {k!r} fails its checksum/shape check (file corrupted or edited)")
    return data, manifest
