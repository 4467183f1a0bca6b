"""Model files: arrays in an ``.npz`` (never pickled) plus a JSON manifest with each array's shape, dtype and
SHA-256, written atomically and verified on read.

Two formats share this layer: ``"dprec-model"`` (:meth:`dprec.models.base.Recommender.save`, holds per-user
state) and ``"dprec-public"`` (:meth:`dprec.models._dp.DPModelMixin.export_public`, the DP artifact).

What a reader checks, in order (any doubt is a :class:`~dprec.errors.CorruptFileError`, never a raw
``KeyError``/``TypeError``/``AttributeError``/``RecursionError``):

1. the file is a zip of plain arrays (``allow_pickle=False``) with a ``__manifest__``;
2. the manifest is a JSON object accepted by the pydantic models :class:`ModelManifest` /
   :class:`PublicManifest` (types, ranges, a 64-hex ``sha256`` per array, ``rating_bounds`` a finite pair
   ``lo < hi``); nesting deeper than :data:`MAX_JSON_DEPTH` is refused before parsing;
3. every array matches its declared shape, dtype and SHA-256;
4. with ``key=``: the keyed MAC ``__mac__`` (below).

Keyed MAC
---------
The checksums detect accidental damage, not an edit: whoever can write the file can recompute them. With a
caller-kept secret ``key`` (``save(path, key=...)``), the writer stores
``__mac__ = HMAC-SHA256(key, "dprec-file-mac-v1" ‖ len(m) ‖ m ‖ Σ_k (len(k) ‖ k ‖ dtype ‖ shape ‖ bytes_k))``
over the exact manifest bytes ``m`` and every array ``k`` in sorted name order (lengths as 8-byte big-endian
integers, so no two different files give the same message). ``load(path, key=...)`` recomputes it and refuses
a file whose MAC is missing or differs, so swapped arrays with recomputed checksums are detected while the key
stays secret. A file written with a key still loads without one (the MAC is then simply not checked).

Raw ids are stored as integer (``int64``/``uint64``), float or fixed-width unicode arrays, never as objects;
integer ids that fit no 64-bit integer type are stored as unicode decimal text (manifest ``ids`` entry
``"int-text"``) and read back as Python ints.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import os
import tempfile
import zipfile
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from .._json import to_jsonable
from ..errors import ConfigError, CorruptFileError, DataError, PathError

__all__ = [
    "FORMAT_VERSION",
    "MAX_JSON_DEPTH",
    "dprec_version",
    "write_npz_with_manifest",
    "read_npz_with_manifest",
    "ids_for_npz",
    "ids_from_npz",
    "check_save_path",
    "check_key",
    "ModelManifest",
    "PublicManifest",
]

#: highest manifest ``format_version`` this dprec reads (and the one it writes)
FORMAT_VERSION = 1
#: deepest JSON nesting a manifest may have (a real one is ≤ 6 deep); deeper is refused before parsing
MAX_JSON_DEPTH = 32
#: smallest accepted MAC key (bytes); 32 random bytes (``secrets.token_bytes(32)``) are recommended
MIN_KEY_BYTES = 16
_MAC_DOMAIN = b"dprec-file-mac-v1"


def dprec_version() -> str:
    """The dprec version recorded in a manifest."""
    from .. import __version__

    return __version__


# ---------------------------------------------------------------------------------------------- ids
def ids_for_npz(ids: np.ndarray, what: str) -> tuple[np.ndarray, str]:
    """A raw id vocabulary as a non-object array, and its encoding for the manifest's ``ids`` entry.

    Returns ``(array, encoding)``: ``"native"`` (integer, float or unicode array, read back as is) or
    ``"int-text"`` (Python ints beyond 64 bits, stored as unicode decimal text). Raises ``ValueError`` naming
    ``what`` for ids mixing strings and numbers (which :class:`~dprec.data.Interactions` refuses anyway).
    """
    ids = np.asarray(ids)
    if ids.dtype.kind in "iufU":
        return ids, "native"
    if ids.dtype.kind in "SO":
        vals = ids.tolist()
        if all(isinstance(v, (str, bytes)) for v in vals):
            return np.asarray([v.decode() if isinstance(v, bytes) else v for v in vals], dtype=str), "native"
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in vals):
            ints = [int(v) for v in vals]
            if not ints or -(2**63) <= min(ints) and max(ints) < 2**63:
                return np.asarray(ints, dtype=np.int64), "native"
            if min(ints) >= 0 and max(ints) < 2**64:
                return np.asarray(ints, dtype=np.uint64), "native"
            return np.asarray([str(v) for v in ints], dtype=str), "int-text"
    kinds = sorted({type(v).__name__ for v in ids.tolist()}) if ids.dtype.kind == "O" else [str(ids.dtype)]
    raise DataError(
        f"cannot save the {what} ids: they are of types {kinds}; ids must be all integers or all strings "
        f"(convert them, e.g. df[col].astype(str), before building Interactions)"
    )


def ids_from_npz(arr: np.ndarray, encoding: str = "native") -> np.ndarray:
    """A stored id array back as raw ids (see :func:`ids_for_npz`); CorruptFileError if it cannot be one."""
    if arr.ndim != 1 or arr.dtype.kind not in "iufU":
        raise CorruptFileError(f"id array has unsupported dtype {arr.dtype} or shape {arr.shape}")
    if encoding == "int-text":
        if arr.dtype.kind != "U":
            raise CorruptFileError("int-text ids are not stored as text")
        try:
            return np.asarray([int(v) for v in arr.tolist()] + [None], dtype=object)[:-1]
        except ValueError:
            raise CorruptFileError("int-text ids are not all integers") from None
    return arr


# ---------------------------------------------------------------------------------------------- manifests
_Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_Count = Annotated[StrictInt, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArrayMeta(_Strict):
    """One array's declared shape, dtype and SHA-256 (of its C-contiguous bytes)."""

    shape: list[_Count]
    dtype: StrictStr
    sha256: _Sha256


class ReleaseStep(BaseModel):
    """One step of a saved privacy report: the fields a loaded model's ``privacy_report()`` computes with are
    checked (``rho`` a number ≥ 0 or ``"inf"`` — absent for a step accounted outside zCDP, DP-SGD's
    subsampled Gaussian —, ``count`` ≥ 1, ``delta`` in [0, 1)); the rest are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: StrictStr
    rho: Annotated[float, Field(ge=0, allow_inf_nan=False)] | Literal["inf"] | None = None
    count: Annotated[StrictInt, Field(ge=1)] = 1
    delta: Annotated[float, Field(ge=0, lt=1)] = 0.0

    @field_validator("rho", "delta", mode="before")
    @classmethod
    def _number(cls, v):
        if v == "inf" or _is_number(v):
            return v
        raise ValueError(f"must be a number, got {v!r}")


class PrivacyManifest(BaseModel):
    """The saved privacy report (:meth:`~dprec.models._dp.DPModelMixin.privacy_report`), as far as it is read back."""

    model_config = ConfigDict(extra="allow", frozen=True)
    steps: list[ReleaseStep] = []
    noise: StrictStr | None = None
    ledger: StrictStr | None = None
    n_users_dp: Annotated[float, Field(allow_inf_nan=False)] | None = None  # a noisy count: any finite value


class _Manifest(BaseModel):
    """Fields both file formats share. Extra keys (a model's own public facts) are allowed and left to the
    model's ``_restore_manifest``, which must treat them as untrusted."""

    model_config = ConfigDict(extra="allow", frozen=True)
    format_version: Annotated[StrictInt, Field(ge=1, le=FORMAT_VERSION)]
    class_: StrictStr = Field(alias="class")
    dprec_version: StrictStr
    params: dict[StrictStr, Any]
    rating_bounds: tuple[float, float] | None
    arrays: dict[StrictStr, ArrayMeta]
    ids: dict[Literal["user", "item"], Literal["native", "int-text"]] = {}
    privacy: PrivacyManifest | None = None

    @field_validator("rating_bounds", mode="before")
    @classmethod
    def _bounds(cls, v):
        if v is None:
            return None
        if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(_is_number(b) for b in v):
            raise ValueError(f"must be null or a pair [lo, hi] of numbers, got {v!r}")
        lo, hi = float(v[0]), float(v[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"must be finite with lo < hi, got {v!r}")
        return lo, hi


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class ModelManifest(_Manifest):
    """The manifest of a ``"dprec-model"`` file (:meth:`~dprec.models.base.Recommender.save`)."""

    format: Literal["dprec-model"]
    n_users: _Count
    n_items: _Count
    contains_user_data: Literal[True]


class PublicManifest(_Manifest):
    """The manifest of a ``"dprec-public"`` file (:meth:`~dprec.models._dp.DPModelMixin.export_public`)."""

    format: Literal["dprec-public"]
    contains_user_data: Literal[False]
    is_dp_artifact: bool


_MANIFESTS = {"dprec-model": ModelManifest, "dprec-public": PublicManifest}


def _json_depth_ok(text: str, limit: int) -> bool:
    """Whether the JSON text nests at most ``limit`` deep (brackets outside strings), without parsing it."""
    depth, in_str, esc = 0, False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{loc}: {str(err['msg']).removeprefix('Value error, ')}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _parse_manifest(path: str, raw: np.ndarray, expected_format: str) -> dict:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CorruptFileError(f"{path}: the manifest is not a byte string: not a dprec file")
    try:
        text = raw.tobytes().decode()
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{path}: manifest is not UTF-8 text ({exc})") from None
    if not _json_depth_ok(text, MAX_JSON_DEPTH):
        raise CorruptFileError(f"{path}: manifest nests deeper than {MAX_JSON_DEPTH} levels: not a dprec manifest")
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise CorruptFileError(f"{path}: manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        kind = {list: "array", str: "string", type(None): "null", bool: "boolean"}.get(type(manifest), "number")
        raise CorruptFileError(f"{path}: manifest is a JSON {kind}, not an object: not a dprec file")
    fmt = manifest.get("format")
    if fmt != expected_format:
        raise CorruptFileError(f"{path}: expected a {expected_format} file, found {fmt!r}")
    version = manifest.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise CorruptFileError(f"{path}: written by a newer dprec (format {version}); upgrade dprec to read it")
    try:
        _MANIFESTS[expected_format].model_validate(manifest)
    except ValidationError as exc:
        raise CorruptFileError(f"{path}: invalid manifest ({_validation_message(exc)})") from None
    return manifest


# ---------------------------------------------------------------------------------------------- keys and MAC
def check_key(key, name: str = "key") -> bytes | None:
    """A MAC key as bytes (``str`` is UTF-8 encoded), at least :data:`MIN_KEY_BYTES` long; ``None`` passes."""
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise ConfigError(f"{name} must be bytes or str (e.g. secrets.token_bytes(32)), got {type(key).__name__}")
    key = bytes(key)
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{name} must be at least {MIN_KEY_BYTES} bytes, got {len(key)}; use a random key kept outside the "
            "file, e.g. secrets.token_bytes(32)"
        )
    return key


def _mac(key: bytes, manifest_bytes: bytes, arrays: dict[str, np.ndarray]) -> np.ndarray:
    h = hmac.new(key, _MAC_DOMAIN, hashlib.sha256)

    def part(b: bytes):
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)

    part(manifest_bytes)
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        part(k.encode())
        part(a.dtype.str.encode())
        part(json.dumps(list(a.shape)).encode())
        part(a.tobytes())
    return np.frombuffer(h.digest(), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- write / read
def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def check_save_path(path) -> str:
    """The file ``path`` resolves to (``.npz`` appended if missing), refusing a directory or a missing folder.

    Raises :class:`~dprec.errors.PathError` naming the path as the caller gave it.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    given = os.fspath(path)
    if isinstance(given, bytes):
        given = os.fsdecode(given)
    if given == "" or os.path.isdir(given) or given.endswith(("/", os.sep)):
        raise PathError(
            f"cannot save to {given!r}: it is a directory; pass a file path such as "
            f"{os.path.join(given or '.', 'model.npz')!r}"
        )
    out = given if given.endswith(".npz") else given + ".npz"
    if os.path.isdir(out):
        raise PathError(f"cannot save to {out!r}: it is a directory; pass another file name")
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise PathError(
            f"cannot save to {given!r}: the directory {os.path.dirname(given) or directory!r} does not exist; "
            "create it first (e.g. os.makedirs(..., exist_ok=True))"
        )
    return out


def write_npz_with_manifest(path, arrays: dict[str, np.ndarray], manifest: dict, *, key=None) -> str:
    """Write arrays + manifest (with per-array shape/dtype/sha256) atomically to ``path`` (``.npz`` appended).

    With ``key`` (bytes or str, ≥ 16 bytes) also a keyed MAC over the manifest and the arrays (module docstring).
    """
    key = check_key(key)
    path = check_save_path(path)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise TypeError(f"array {k!r} has dtype object; dprec never pickles")
        if k.startswith("__m") and k in ("__manifest__", "__mac__"):
            raise ValueError(f"array name {k!r} is reserved")
    manifest = dict(manifest)
    manifest["arrays"] = {
        k: {"shape": list(v.shape), "dtype": v.dtype.str, "sha256": _sha(v)} for k, v in arrays.items()
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, default=to_jsonable).encode()
    payload = dict(arrays)
    payload["__manifest__"] = np.frombuffer(manifest_bytes, dtype=np.uint8)
    if key is not None:
        payload["__mac__"] = _mac(key, manifest_bytes, arrays)
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


def read_npz_with_manifest(path, *, expected_format: str, key=None) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a file written by :func:`write_npz_with_manifest`; raise CorruptFileError on any doubt.

    ``key``: verify the keyed MAC too (a file without one, or with a different one, is refused).
    Returns ``(arrays, manifest)``; the manifest has passed :class:`ModelManifest` / :class:`PublicManifest`.
    """
    key = check_key(key)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise PathError(f"{path!r} is a directory, not a dprec file")
    if not os.path.exists(path):
        raise PathError(f"no such model file: {path!r}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise CorruptFileError(f"{path} is not a readable dprec file ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):  # a bare .npy, not an .npz
        raise CorruptFileError(f"{path} is a single array, not a dprec file")
    raw = data.pop("__manifest__", None)
    mac = data.pop("__mac__", None)
    if raw is None:
        raise CorruptFileError(f"{path} has no manifest: not a dprec file")
    manifest = _parse_manifest(path, raw, expected_format)
    declared = manifest["arrays"]
    if set(declared) != set(data):
        raise CorruptFileError(f"{path}: arrays {sorted(set(declared) ^ set(data))} are missing or unexpected")
    for k, meta in declared.items():
        a = data[k]
        if list(a.shape) != meta["shape"] or a.dtype.str != meta["dtype"] or _sha(a) != meta["sha256"]:
            raise CorruptFileError(f"{path}: array {k!r} fails its checksum/shape check (file corrupted or edited)")
    if key is not None:
        if mac is None:
            raise CorruptFileError(
                f"{path} carries no MAC: it was saved without key= (or the MAC was removed); refusing it under key="
            )
        if not hmac.compare_digest(np.asarray(mac).tobytes(), _mac(key, raw.tobytes(), data).tobytes()):
            raise CorruptFileError(
                f"{path}: MAC check failed: the file was modified after saving, or the key is not the one it was "
                "saved with"
            )
    return data, manifest
