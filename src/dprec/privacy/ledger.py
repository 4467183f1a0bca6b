"""Persistent privacy ledger (SQLite, stdlib ``sqlite3``), authenticated with a secret key.

One ledger file per dataset. The caller identifies the dataset by a string, its *dataset id*
(a public name plus a content fingerprint, e.g. ``"ml-100k:3f2a..."``). The ledger stores the
total budget ``(ε_T, δ_T)`` and every charge, and refuses a charge that would exceed the total
*before* recording it; callers draw noise only after :meth:`Ledger.charge` returns.

Charge kinds and composition
----------------------------
* **zCDP charges** ``charge(rho=ρ, delta=δ_x)``: a ``δ_x``-approximate ``ρ``-zCDP mechanism
  (``δ_x = 0`` for a plain Gaussian release; ``δ_x > 0`` e.g. for DP item selection, whose
  threshold fails with probability ``δ_sel``). Approximate zCDP composes additively in both
  parameters (Bun & Steinke 2016, §8): ``ρ_Σ = Σρ``, ``δ_X = Σδ_x``.
* **(ε, δ) charges** ``charge(epsilon=ε, delta=δ)``: pure/approximate DP mechanisms, composed by
  basic composition: ``ε_A = Σε``, ``δ_A = Σδ``.
* **Erasure records** :meth:`Ledger.record_erasure`: not a release; kind ``"erasure"`` costs
  nothing and holds only the event and the model class (no ids, no counts).

Spent budget. The δ left after the explicit δ's, ``δ_z = δ_T − δ_X − δ_A``, is used entirely for
the zCDP→(ε, δ) conversion (this choice minimises the spent ε):

``ε_spent = rho_to_epsilon(ρ_Σ, δ_z) + ε_A`` and ``δ_spent = δ_z + δ_X + δ_A = δ_T``
(when ``ρ_Σ > 0``; otherwise ``ε_spent = ε_A``, ``δ_spent = δ_X + δ_A``).

The two families combine by basic composition of the (ε, δ) guarantees of the zCDP block and the
approx-DP block, which also holds for interleaved (concurrent) interaction (Vadhan & Wang 2021;
Lyu 2022). A charge is accepted iff ``δ_X + δ_A < δ_T`` (``<=`` if no ρ was spent) and
``ε_spent <= ε_T`` after it. Caveat: the per-charge parameters may be chosen adaptively by the
analyst; for pure zCDP charges this is covered by privacy filters (Rogers et al. 2016; Feldman &
Zrnic 2021; Whitehouse et al. 2023); for mixtures with adaptively chosen δ's we rely on the same
filter argument with the conversion applied at the end, which is standard practice but not a
separately proven theorem in this code base.

Durability and concurrency
--------------------------
Every charge runs in one ``BEGIN IMMEDIATE`` write transaction: read all rows, verify schema,
MACs, bodies and head, compute the new spent budget, insert, commit. Concurrent processes
serialise on SQLite's write lock, so together they can never exceed the total.
``journal_mode=DELETE`` with ``synchronous=FULL``: a crash leaves the whole record or nothing.

Authentication (schema version 2)
---------------------------------
* A 32-byte secret key, kept **outside** the ledger file, authenticates it with HMAC-SHA256: the
  header (``MAC(key, header)``), every charge (``MAC(key, previous MAC || body)``, a chain that
  starts at the header MAC) and the head row (``MAC(key, n_charges || last MAC)``, so truncation
  or a reset to an empty chain is detected).
* The key is either passed by the caller (``key=`` on :meth:`Ledger.create`/:meth:`Ledger.open`)
  or kept in a key file ``<key dir>/<ledger id>.key`` (mode 0600, owned by the user; a key file
  readable by group or others is refused). The key directory is ``$DPREC_LEDGER_KEY_DIR``, by
  default ``platformdirs.user_config_dir("dprec")/ledger-keys``. The ledger id is random
  (``secrets.token_hex``), stored in the header.
* With a key file, the key directory also holds a *rollback anchor* ``<ledger id>.anchor``: the
  number of charges and the last MAC, updated (monotonically, MAC-protected) after every charge.
  A ledger file with fewer charges than the anchor, or another history, is refused: restoring an
  older copy of the file gives no budget back.
* The file's schema must be exactly dprec's (no triggers, views, extra tables or indexes), checked
  on open and inside every charge transaction, and every charge body is validated (kind, finite
  non-negative ρ/ε, δ in [0, 1), types). :meth:`Ledger.open` also runs ``PRAGMA integrity_check``.
  Any failure raises :class:`~dprec.errors.LedgerError`: training refuses (fail closed); dprec
  never resets or recreates a budget.

Threat model
------------
* **Write access to the ledger file, no key** (the key directory is not writable to them): any
  edit of the header, a charge or the head, deleting rows, truncating the chain, resetting it to
  empty, recomputing the chain (with plain SHA-256 or any key but the right one), planting a
  trigger/view/table/index, or (with a key file) restoring an older copy of the file, is
  detected, and the ledger is refused.
* **The key and write access to the file** (and, for the anchor, to the key directory): this
  party can rewrite history consistently. A file-based ledger cannot stop that; only a ledger
  enforced by a database server with its own access control can (:mod:`.ledger_postgres`: pass a
  ``postgresql://`` URL as ``path``).
* **Deleting both the ledger and its key** (or the ledger and the anchor) and starting over is not
  detectable from the file alone. Keep backups of the key directory separate from the ledger.
* Caller-supplied keys (``key=``) get no rollback anchor: a restored older copy of the file is
  then not detected. Keep such keys and ledgers under the owner's control.

Publication hygiene
-------------------
The file holds no raw dataset id, no content fingerprint and no wall-clock time. The header
stores a random ledger id, the dataset's public *label* (the id's part before the first ``:``,
e.g. ``"ml-100k"``, a public name declared by the caller) and ``dataset_digest =
HMAC(key, dataset id)``; :meth:`Ledger.matches` checks a dataset id against it. A reproducibility
seed passed to :meth:`Ledger.charge` is stored only as ``HMAC(key, "seed:" + seed)``, and a second
charge with the same seed is refused (:class:`SeedReuseError`): the same seed makes two releases'
noise identical. :meth:`Ledger.public_summary` returns only totals, spent, remaining and, per
charge, model, mechanism, label and cost: no MACs, sequence numbers, times or parameters.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import operator
import os
import random
import re
import secrets
import sqlite3
import stat
import time
from pathlib import Path
from typing import NamedTuple

import platformdirs

from .._validation import check_fraction, check_number
from ..errors import BudgetExceededError, LedgerError
from .accounting import epsilon_to_rho, rho_to_epsilon
from .units import check_delta, check_target_epsilon

__all__ = ["Ledger", "Spent", "Remaining", "SeedReuseError", "LEDGER_SCHEMA_VERSION", "key_dir"]

LEDGER_SCHEMA_VERSION = 2
_MAGIC = "dprec-privacy-ledger"
_SQLITE_HEADER = b"SQLite format 3\x00"
_BUSY_TIMEOUT_S = 60.0
_KEY_BYTES = 32
_MIN_KEY_BYTES = 16
_random = random.Random()
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_SECRET_PARAM_KEYS = {"rng", "seed", "random_state", "random_seed"}

_SCHEMA = """
CREATE TABLE ledger_header (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE ledger_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n_charges INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    head_mac TEXT NOT NULL
);
CREATE TABLE ledger_charges (
    seq INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""
# The schema of version 1 (unkeyed SHA-256 chain), recognised only to refuse it with a clear message.
_SCHEMA_V1 = """
CREATE TABLE ledger_header (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE ledger_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n_charges INTEGER NOT NULL,
    head_hash TEXT NOT NULL
);
CREATE TABLE ledger_charges (
    seq INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""
_HEADER_KEYS = {"magic", "schema_version", "ledger_id", "label", "dataset_digest", "total_epsilon", "total_delta"}
_BODY_KEYS = {"seq", "kind", "rho", "epsilon", "delta", "model", "mechanism", "label", "params", "seed_digest"}


class SeedReuseError(BudgetExceededError):
    """A charge refused because its reproducibility seed was already used on this ledger. Nothing was charged."""


class Spent(NamedTuple):
    """Spent budget: ``(epsilon, delta, rho)`` (rho = Σ of zCDP charges)."""

    epsilon: float
    delta: float
    rho: float


class Remaining(NamedTuple):
    """Remaining budget: ``epsilon`` (= total − spent), ``delta`` (δ not yet committed by explicit
    δ charges) and ``rho`` (the largest further zCDP charge, with no extra δ, that fits)."""

    epsilon: float
    delta: float
    rho: float


def _canonical(obj) -> str:
    """Canonical serialisation for authentication: the exact bytes every MAC is computed over (sorted keys, no
    whitespace, ASCII, no NaN/inf). A different concept from :func:`dprec._json.to_jsonable`, the JSON normal
    form of what dprec writes for people and tools; the two must not be merged (changing this one would
    invalidate every existing ledger's MACs)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _mac(key: bytes, domain: str, *parts: str) -> str:
    msg = "\n".join((_MAGIC, domain, *parts)).encode("utf-8")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def _eq(a, b) -> bool:
    return isinstance(a, str) and isinstance(b, str) and hmac.compare_digest(a.encode(), b.encode())


def _jsonable(obj, where="params"):
    """Check that ``params`` survives canonical JSON (no NaN/inf, str keys): what is MAC'd must round-trip
    exactly through :func:`_canonical`."""
    try:
        return json.loads(_canonical(obj))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} must be JSON-serialisable (str keys, finite numbers): {e}") from None


def _strip_secrets(obj):
    """Drop keys that could carry a seed (``rng``, ``seed``, ``random_state``, ...) at any depth."""
    if isinstance(obj, dict):
        return {k: _strip_secrets(v) for k, v in obj.items() if str(k).lower() not in _SECRET_PARAM_KEYS}
    if isinstance(obj, list):
        return [_strip_secrets(v) for v in obj]
    return obj


def _compose(total_eps: float, total_delta: float, charges: list[dict]) -> dict:
    """Spent/remaining budget of a list of charge bodies (see module docstring)."""
    rhos, dx, ea, da = [], [], [], []
    for c in charges:
        if c["kind"] == "zcdp":
            rhos.append(c["rho"])
            dx.append(c["delta"])
        elif c["kind"] == "erasure":  # an event, not a release: it costs nothing
            continue
        else:
            ea.append(c["epsilon"])
            da.append(c["delta"])
    rho = math.fsum(rhos)
    delta_x = math.fsum(dx)
    eps_a = math.fsum(ea)
    delta_a = math.fsum(da)
    delta_explicit = delta_x + delta_a
    delta_z = total_delta - delta_explicit
    if rho > 0:
        if delta_z <= 0:
            eps_z = math.inf
        else:
            eps_z = rho_to_epsilon(rho, delta_z)
        spent_delta = total_delta
    else:
        eps_z = 0.0
        spent_delta = delta_explicit
    spent_eps = eps_z + eps_a
    ok = spent_eps <= total_eps and (delta_explicit < total_delta or (rho == 0 and delta_explicit <= total_delta))
    return {
        "rho": rho,
        "delta_explicit": delta_explicit,
        "epsilon_approx": eps_a,
        "spent_epsilon": spent_eps,
        "spent_delta": spent_delta,
        "within": ok,
    }


def _user_data_dir() -> Path:
    """The per-user data directory (``platformdirs.user_data_dir("dprec")``)."""
    return Path(platformdirs.user_data_dir("dprec", appauthor=False))


def key_dir() -> Path:
    """Directory of ledger key files: ``$DPREC_LEDGER_KEY_DIR``, by default
    ``platformdirs.user_config_dir("dprec")/ledger-keys``."""
    env = os.environ.get("DPREC_LEDGER_KEY_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir("dprec", appauthor=False)) / "ledger-keys"


def _label_of(dataset: str) -> str:
    """The public name part of a dataset id: everything before the first ``:``."""
    return dataset.split(":", 1)[0].strip() or "dataset"


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:40].strip("._") or "dataset"


def _check_key(key) -> bytes:
    if isinstance(key, bytearray):
        key = bytes(key)
    if not isinstance(key, bytes):
        raise ValueError(
            f"key must be bytes (at least {_MIN_KEY_BYTES} random bytes, e.g. secrets.token_bytes(32)), "
            f"got {type(key).__name__}"
        )
    if len(key) < _MIN_KEY_BYTES:
        raise ValueError(f"key must have at least {_MIN_KEY_BYTES} bytes, got {len(key)}")
    return key


# ---------------------------------------------------------------------------------- key files
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_POSIX = hasattr(os, "getuid")


def _key_file(ledger_id: str) -> Path:
    return key_dir() / f"{ledger_id}.key"


def _make_key_dir(d: Path) -> None:
    d.mkdir(mode=0o700, parents=True, exist_ok=True)


def _write_key_file(kpath: Path) -> bytes:
    """Create a new random key at ``kpath`` (mode 0600, never overwriting) and return it."""
    _make_key_dir(kpath.parent)
    key = secrets.token_bytes(_KEY_BYTES)
    fd = os.open(kpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o600)
    try:
        os.write(fd, (key.hex() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(kpath.parent)
    return key


def _check_private_file(fd: int, fpath: Path, what: str) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise LedgerError(f"the {what} {fpath} is not a regular file; the ledger was refused")
    if _POSIX:
        if st.st_uid != os.getuid():
            raise LedgerError(
                f"the {what} {fpath} is not owned by the current user (uid {st.st_uid}, you are {os.getuid()}); "
                f"the ledger was refused. Fix: chown $(id -u) {fpath} (only if you trust its content)"
            )
        if st.st_mode & 0o077:
            raise LedgerError(
                f"the {what} {fpath} is readable or writable by group/others (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"the ledger was refused. Fix: chmod 600 {fpath}"
            )


def _read_private_file(fpath: Path, what: str, missing: str) -> bytes:
    """The bytes of an owner-only file (key file, rollback anchor); ``missing`` is the error text when absent."""
    try:
        fd = os.open(fpath, os.O_RDONLY | _O_NOFOLLOW)
    except FileNotFoundError:
        raise LedgerError(missing) from None
    except OSError as e:
        raise LedgerError(
            f"cannot read the {what} {fpath} ({e}); the ledger was refused (it must be a regular file, not a symlink)"
        ) from e
    try:
        _check_private_file(fd, fpath, what)
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _read_key_file(kpath: Path, ledger_path) -> bytes:
    raw = _read_private_file(
        kpath,
        "key file",
        (
            f"no key for the ledger at {ledger_path}: looked for the key file {kpath} (key directory: "
            f"$DPREC_LEDGER_KEY_DIR or platformdirs.user_config_dir('dprec')/ledger-keys). Without its key a "
            f"ledger cannot be authenticated; the ledger was refused. Restore the key file from backup, set "
            f"DPREC_LEDGER_KEY_DIR, or pass key="
        ),
    )
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise LedgerError(
            f"the key file {kpath} is malformed (expected {_KEY_BYTES} bytes as hex); the ledger was refused"
        )
    return key


# ---------------------------------------------------------------------------------- rollback anchor
def _anchor_tag(key: bytes, n: int, last: str) -> str:
    return _mac(key, "anchor", str(n), last)


def _read_anchor(apath: Path, key: bytes, ledger_path) -> tuple[int, str]:
    raw = _read_private_file(
        apath,
        "rollback anchor",
        (
            f"the rollback anchor {apath} of the ledger at {ledger_path} is missing; the ledger was refused. "
            f"Restore the key directory from backup"
        ),
    )
    try:
        a = json.loads(raw.decode("ascii"))
        n, last, tag = a["n_charges"], a["last_mac"], a["tag"]
        ok = isinstance(n, int) and not isinstance(n, bool) and n >= 0 and _eq(tag, _anchor_tag(key, n, last))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise LedgerError(f"the rollback anchor {apath} is malformed or its MAC does not match; the ledger was refused")
    return n, last


def _write_anchor(apath: Path, key: bytes, n: int, last: str) -> None:
    """Record ``(n, last MAC)`` in the anchor, never moving it backwards (serialised by a lock file)."""
    lock = apath.with_suffix(".lock")
    lfd = os.open(lock, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(lfd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: best effort
            pass
        if apath.exists():
            cur_n, _ = _read_anchor(apath, key, apath)
            if cur_n >= n:
                return
        tmp = apath.with_name(f".{apath.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_NOFOLLOW, 0o600)
        try:
            os.write(
                fd, _canonical({"n_charges": n, "last_mac": last, "tag": _anchor_tag(key, n, last)}).encode("ascii")
            )
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, apath)
        _fsync_dir(apath.parent)
    finally:
        os.close(lfd)  # releases the flock


def _check_anchor(apath: Path, key: bytes, header_mac: str, charges: list[dict], ledger_path) -> None:
    n, last = _read_anchor(apath, key, ledger_path)
    if len(charges) < n:
        raise LedgerError(
            f"the ledger at {ledger_path} has {len(charges)} charges but its rollback anchor {apath} recorded {n}: "
            f"the file was rolled back (an older copy restored or rows removed); the ledger was refused. "
            f"dprec never resets a budget"
        )
    expect = charges[n - 1]["mac"] if n else header_mac
    if not _eq(expect, last):
        raise LedgerError(
            f"the history of the ledger at {ledger_path} differs from its rollback anchor {apath} (charge #{n}); "
            f"the ledger was refused"
        )


# ---------------------------------------------------------------------------------- the ledger
class Ledger:
    """Persistent, authenticated privacy ledger for one dataset. Create with :meth:`create`, reopen
    with :meth:`open`.

    Every method opens its own short-lived SQLite connection, so a ``Ledger`` object is cheap,
    safe to use across ``fork`` and never holds a lock between calls. The key is held in memory
    (never shown by ``repr``).
    """

    def __init__(self, path, _header: dict, _key: bytes, _anchor, _dataset_id, _token=None):
        if _token is not _PRIVATE:
            raise TypeError("use Ledger.create(...) or Ledger.open(...)")
        self.path = Path(path)
        self._header = _header
        self._key = _key
        self._anchor = _anchor
        self._dataset_id = _dataset_id

    # ------------------------------------------------------------------ construction
    @staticmethod
    def default_path(dataset: str) -> Path:
        """``$DPREC_LEDGER_DIR/<public name>.ledger.sqlite`` (default directory: the user data dir,
        e.g. ``~/.local/share/dprec/ledgers``). The name is the dataset id's public part before the
        first ``:`` (e.g. ``ml-100k``): nothing in it depends on the data. A ledger there that
        belongs to another version of the dataset (another fingerprint) is refused on use."""
        _check_dataset(dataset)
        env = os.environ.get("DPREC_LEDGER_DIR")
        base = Path(env).expanduser() if env else _user_data_dir() / "ledgers"
        return base / f"{_slug(_label_of(dataset))}.ledger.sqlite"

    @classmethod
    def create(cls, path, *, dataset: str, epsilon, delta, key: bytes | None = None, trainer=None) -> Ledger:
        """Create a ledger with total budget ``(epsilon, delta)`` for ``dataset``.

        ``path`` is a file path (the SQLite ledger) or a ``postgresql://USER@HOST:PORT/DB`` URL of a
        PostgreSQL server, connected as the schema's *owner* role: a shared ledger whose history the
        training roles cannot rewrite (:mod:`dprec.privacy.ledger_postgres`, ``docs/ledger.md``).
        ``trainer`` (PostgreSQL only): the role name(s) granted the right to charge it and nothing else.

        ``key``: a secret of at least 16 bytes that authenticates the ledger; the caller must keep
        it and pass it to :meth:`open`. By default (``None``) a new random key is written to
        ``<key dir>/<ledger id>.key`` (mode 0600; see :func:`key_dir`).

        If a ledger already exists at ``path`` for the same dataset with the same totals, it is
        opened (idempotent). If it belongs to another dataset or has other totals, or the file is
        not a valid ledger, :class:`LedgerError` is raised and nothing is changed.
        """
        _check_dataset(dataset)
        eps = check_target_epsilon(epsilon)  # a total of 1e308 (or 1e-300) is surely a mistake, as for a fit
        if math.isinf(eps):
            raise ValueError(
                "a ledger tracks a finite budget: epsilon must be finite (epsilon=inf training is "
                "non-private and does not use a ledger)"
            )
        d = check_delta(delta)
        if _is_url(path):
            if key is not None:
                raise ValueError("key= is for file ledgers; a PostgreSQL ledger is protected by the server's roles")
            return _pg().PostgresLedger._create_url(path, dataset=dataset, eps=eps, d=d, trainer=trainer)
        if trainer is not None:
            raise ValueError("trainer= is for PostgreSQL ledgers (a postgresql:// URL), not for a ledger file")
        if key is not None:
            key = _check_key(key)
        path = Path(path)
        if path.exists():
            return cls._open_existing_for_create(path, dataset, eps, d, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        ledger_id = secrets.token_hex(16)
        own_files: list[Path] = []
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.time_ns()}.tmp")
        published = False
        try:
            if key is None:
                kpath = _key_file(ledger_id)
                k = _write_key_file(kpath)
                own_files.append(kpath)
                anchor = kpath.with_suffix(".anchor")
            else:
                k, anchor = key, None
            header = {
                "magic": _MAGIC,
                "schema_version": LEDGER_SCHEMA_VERSION,
                "ledger_id": ledger_id,
                "label": _label_of(dataset),
                "dataset_digest": _mac(k, "dataset", dataset),
                "total_epsilon": eps,
                "total_delta": d,
            }
            body = _canonical(header)
            hmac_ = _mac(k, "header", body)
            if anchor is not None:
                own_files += [anchor, anchor.with_suffix(".lock")]
                _write_anchor(anchor, k, 0, hmac_)
            # Build the ledger in a private temporary file, then publish it atomically with link(2),
            # which fails if ``path`` appeared meanwhile: there is never a half-initialised ledger at
            # ``path``, and an existing file is never overwritten.
            con = _connect(tmp, create=True)
            try:
                con.execute("BEGIN IMMEDIATE")
                _apply_schema(con, _SCHEMA)
                con.execute("INSERT INTO ledger_header (id, body, hash) VALUES (1, ?, ?)", (body, hmac_))
                con.execute(
                    "INSERT INTO ledger_head (id, n_charges, head_hash, head_mac) VALUES (1, 0, ?, ?)",
                    (hmac_, _mac(k, "head", "0", hmac_)),
                )
                con.execute("COMMIT")
            finally:
                con.close()
            try:
                os.link(tmp, path)
                _fsync_dir(path.parent)
                published = True
            except FileExistsError:
                pass  # created concurrently by another process: use that one (below)
            except OSError:  # file system without hard links: best-effort exclusive rename
                if not path.exists():
                    os.rename(tmp, path)
                    published = True
        except sqlite3.Error as e:
            raise LedgerError(f"cannot create ledger at {path}: {e}") from e
        except OSError as e:
            raise LedgerError(f"cannot create ledger at {path} or its key: {e}") from e
        finally:
            for leftover in (tmp, Path(str(tmp) + "-journal"), *([] if published else own_files)):
                try:
                    leftover.unlink()
                except FileNotFoundError:
                    pass
        if not published:
            return cls._open_existing_for_create(path, dataset, eps, d, key)
        return cls.open(path, dataset=dataset, key=key)

    @classmethod
    def _open_existing_for_create(cls, path, dataset, eps, d, key) -> Ledger:
        existing = cls.open(path, key=key)  # fails closed on anything that is not a valid ledger
        if not existing.matches(dataset):
            raise LedgerError(
                f"a ledger for another dataset ({_which(existing._header, dataset)}) already exists at {path}; "
                f"refusing to overwrite it. {_new_dataset_advice(existing._header, dataset)}"
            )
        h = existing._header
        if h["total_epsilon"] != eps or h["total_delta"] != d:
            raise LedgerError(
                f"the ledger at {path} already exists with total budget (epsilon={h['total_epsilon']}, "
                f"delta={h['total_delta']}), not (epsilon={eps}, delta={d}); a budget can never be "
                f"changed or reset"
            )
        existing._dataset_id = dataset
        return existing

    @classmethod
    def open(cls, path, *, dataset: str | None = None, key: bytes | None = None) -> Ledger:
        """Open and fully verify an existing ledger (schema, ``PRAGMA integrity_check``, header,
        MAC chain, head, bodies and, with a key file, the rollback anchor). Any failure raises
        :class:`LedgerError`; the file is never modified, recreated or reset.

        ``dataset`` (if given) must match the ledger's dataset (checked by its keyed digest).
        ``key``: the ledger's key, if it was created with ``key=``; by default the key file
        ``<key dir>/<ledger id>.key`` is used.

        ``path`` may be a ``postgresql://`` URL (:mod:`dprec.privacy.ledger_postgres`): then ``dataset``
        selects the dataset's ledger in that database (optional if the database holds only one)."""
        if dataset is not None:
            _check_dataset(dataset)
        if _is_url(path):
            if key is not None:
                raise ValueError("key= is for file ledgers; a PostgreSQL ledger is protected by the server's roles")
            return _pg().PostgresLedger._open_url(path, dataset=dataset)
        path = Path(path)
        if key is not None:
            key = _check_key(key)
        if not path.exists():
            raise LedgerError(f"no privacy ledger at {path}; create one with Ledger.create(...)")
        try:
            with open(path, "rb") as f:
                magic = f.read(len(_SQLITE_HEADER))
        except OSError as e:
            raise LedgerError(_unreadable(path, str(e))) from e
        if magic != _SQLITE_HEADER:
            raise LedgerError(_unreadable(path, "not an SQLite database"))
        try:
            con = _connect(path, create=False)
            try:
                con.execute("BEGIN")  # consistent snapshot (shared lock)
                res = [r[0] for r in con.execute("PRAGMA integrity_check")]
                if res != ["ok"]:
                    raise LedgerError(_unreadable(path, "integrity_check: " + "; ".join(map(str, res[:3]))))
                raw, _, _ = _read_header(con, path)
                if key is None:
                    kpath = _key_file(raw["ledger_id"])
                    k, anchor = _read_key_file(kpath, path), kpath.with_suffix(".anchor")
                else:
                    k, anchor = key, None
                header, _ = _read_verified(con, path, k, anchor)
                con.execute("COMMIT")
            finally:
                con.close()
        except LedgerError:
            raise
        except sqlite3.Error as e:
            raise LedgerError(_unreadable(path, str(e))) from e
        led = cls(path, header, k, anchor, None, _PRIVATE)
        if dataset is not None:
            if not led.matches(dataset):
                raise LedgerError(
                    f"the ledger at {path} belongs to dataset {_which(header, dataset)}; refusing to train. "
                    f"{_new_dataset_advice(header, dataset)}"
                )
            led._dataset_id = dataset
        return led

    # ------------------------------------------------------------------ properties
    def matches(self, dataset_id: str) -> bool:
        """Whether ``dataset_id`` is this ledger's dataset (compares its keyed digest; the file does
        not store the id itself)."""
        _check_dataset(dataset_id)
        return _eq(_mac(self._key, "dataset", dataset_id), self._header["dataset_digest"])

    @property
    def label(self) -> str:
        """The dataset's public name (the id's part before the first ``:``, e.g. ``"ml-100k"``)."""
        return self._header["label"]

    @property
    def dataset(self) -> str:
        """The full dataset id this object was created or opened with (verified against the stored
        digest), else the public :attr:`label`. The file never stores the full id (it contains a
        fingerprint of the data): use :meth:`matches` to check an id."""
        return self._dataset_id if self._dataset_id is not None else self.label

    @property
    def total_epsilon(self) -> float:
        return self._header["total_epsilon"]

    @property
    def total_delta(self) -> float:
        return self._header["total_delta"]

    def __repr__(self):
        return (
            f"Ledger({str(self.path)!r}, label={self.label!r}, epsilon={self.total_epsilon}, delta={self.total_delta})"
        )

    # ------------------------------------------------------------------ charging
    def _make_body(self, rho, epsilon, delta, model, mechanism, label, params, seed) -> dict:
        if rho is None and epsilon is None:
            if delta is None:
                raise ValueError("charge needs rho= (zCDP) or epsilon= (approximate DP), optionally delta=")
            epsilon = 0.0  # a pure-δ charge
        if rho is not None and epsilon is not None:
            raise ValueError("give either rho= (zCDP, optionally with delta=) or epsilon= (with delta=), not both")
        dval = 0.0 if delta is None else check_fraction(delta, "delta", zero=True)
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if not isinstance(mechanism, str) or not mechanism:
            raise ValueError(f"mechanism must be a non-empty string, got {mechanism!r}")
        if not isinstance(label, str):
            raise ValueError(f"label must be a string, got {label!r}")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ValueError(f"params must be a dict, got {type(params).__name__}")
        body = {
            "model": model,
            "mechanism": mechanism,
            "label": label,
            "params": _strip_secrets(_jsonable(params)),
            "delta": dval,
            "seed_digest": None if seed is None else self._seed_digest(seed),
        }
        if rho is not None:
            body.update(kind="zcdp", rho=check_number(rho, "rho", low_inclusive=True), epsilon=None)
        else:
            body.update(kind="approx", epsilon=check_number(epsilon, "epsilon", low_inclusive=True), rho=None)
        return body

    def _seed_digest(self, seed) -> str:
        if isinstance(seed, bool):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        try:
            s = operator.index(seed)
        except TypeError:
            raise ValueError(f"seed must be an integer (or None), got {type(seed).__name__}") from None
        return _mac(self._key, "seed", "seed:" + str(s))

    def charge(
        self,
        *,
        rho=None,
        epsilon=None,
        delta=None,
        model: str,
        mechanism: str,
        label: str = "",
        params: dict | None = None,
        seed: int | None = None,
    ) -> dict:
        """Record a charge, or raise :class:`BudgetExceededError` and record nothing.

        Parameters
        ----------
        rho : float, optional
            zCDP cost (``delta`` then is the extra δ of a δ-approximate zCDP mechanism, default 0).
        epsilon, delta : float, optional
            (ε, δ)-DP cost (basic composition), if ``rho`` is not given.
        model, mechanism, label : str
            What spent it (e.g. ``"DPALS"``, ``"gaussian"``, ``"iteration 3"``). Shown in public summaries.
        params : dict
            JSON-serialisable parameters (σ, sensitivity, counts, ...) for the owner's audit
            (:meth:`charges`); keys named ``rng``/``seed``/``random_state`` are dropped. Never in
            :meth:`public_summary`.
        seed : int, optional
            The explicit reproducibility seed of the noise of this release. Only ``HMAC(key, seed)``
            is stored; a second charge with the same seed is refused (:class:`SeedReuseError`).

        Returns
        -------
        dict
            The recorded charge as shown publicly: ``kind``, ``rho``, ``epsilon``, ``delta``,
            ``model``, ``mechanism``, ``label`` (no sequence number, MAC or time).
        """
        body = self._make_body(rho, epsilon, delta, model, mechanism, label, params, seed)

        def affordable(header, charges):
            if body["seed_digest"] is not None and any(
                _eq(c["body"]["seed_digest"], body["seed_digest"]) for c in charges
            ):
                raise SeedReuseError(
                    f"this seed was already used on this dataset ({header['label']!r}); reusing a seed makes the "
                    f"two releases' noise identical — pass a new seed or rng=None. Nothing was charged."
                )
            after = _compose(header["total_epsilon"], header["total_delta"], [c["body"] for c in charges] + [body])
            if not after["within"]:
                before = _compose(header["total_epsilon"], header["total_delta"], [c["body"] for c in charges])
                raise BudgetExceededError(
                    f"privacy budget exceeded for dataset {header['label']!r}: this charge "
                    f"({_describe(body)}) would bring the spent budget to epsilon="
                    f"{after['spent_epsilon']:.6g} (delta={after['spent_delta']:.3g}) of the total "
                    f"(epsilon={header['total_epsilon']:g}, delta={header['total_delta']:g}); already spent "
                    f"epsilon={before['spent_epsilon']:.6g}. Nothing was charged."
                )

        return self._append(body, what="charge", check=affordable)

    def _append(self, body: dict, *, what: str, check=None) -> dict:
        """Append ``body`` to the authenticated chain in one IMMEDIATE transaction: verify the whole ledger,
        run ``check(header, charges)`` (it raises to refuse; nothing is written), then insert the MAC-chained
        record, move the head, commit, and update the rollback anchor. The one writer of charge records."""
        try:
            con = _connect(self.path, create=False)
        except sqlite3.Error as e:
            raise LedgerError(_unreadable(self.path, str(e))) from e
        try:
            _begin_immediate(con, self.path)
            try:
                header, charges = _read_verified(con, self.path, self._key, self._anchor)
                if header != self._header:
                    raise LedgerError(
                        f"the ledger header at {self.path} changed since it was opened; refusing to record the {what}"
                    )
                if check is not None:
                    check(header, charges)
                seq = len(charges) + 1
                prev = charges[-1]["mac"] if charges else header["_mac"]
                body = dict(body, seq=seq)
                text = _canonical(body)
                m = _mac(self._key, "charge", prev, text)
                con.execute(
                    "INSERT INTO ledger_charges (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)",
                    (seq, text, prev, m),
                )
                cur = con.execute(
                    "UPDATE ledger_head SET n_charges = ?, head_hash = ?, head_mac = ? "
                    "WHERE id = 1 AND n_charges = ? AND head_hash = ?",
                    (seq, m, _mac(self._key, "head", str(seq), m), len(charges), prev),
                )
                if cur.rowcount != 1:
                    raise LedgerError(f"ledger head at {self.path} is inconsistent; refusing to record the {what}")
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        except (LedgerError, BudgetExceededError):
            raise
        except sqlite3.Error as e:
            raise LedgerError(
                f"could not record the {what} in the ledger at {self.path}: {e}; nothing was recorded"
            ) from e
        finally:
            con.close()
        if self._anchor is not None:
            try:
                _write_anchor(self._anchor, self._key, seq, m)
            except OSError as e:
                raise LedgerError(
                    f"the {what} was recorded in the ledger at {self.path}, but its rollback anchor {self._anchor} "
                    f"could not be updated ({e}); refusing to continue"
                ) from e
        return _public_charge(body)

    def record_erasure(self, *, model: str) -> dict:
        """Record that users were erased from a served model of this dataset (``dprec forget``).

        The record goes through the same authenticated chain as a charge (MAC-chained body, head and
        anchor updated, schema and body validated on every read) and costs nothing (kind ``"erasure"``:
        ``rho`` null, ``epsilon`` and ``delta`` 0, composed as nothing).

        Publication hygiene: the body holds **only** the event and the model class (``model``, e.g.
        ``"DPALS"``). It holds no user id, no rating, no count of erased users and no time: the number of
        users erased is a data-derived figure (one erasure request can single out one person), and a ledger
        summary is shown to others (:meth:`public_summary`). Which users were erased is the owner's own
        record to keep, outside dprec's files.

        A dprec that predates this kind refuses a ledger holding it (unknown kind: fail closed).

        Returns
        -------
        dict
            The record as shown publicly (as :meth:`charge` returns it).
        """
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        body = {
            "kind": "erasure",
            "rho": None,
            "epsilon": 0.0,
            "delta": 0.0,
            "model": model,
            "mechanism": "erasure",
            "label": "",
            "params": {},
            "seed_digest": None,
        }
        return self._append(body, what="erasure")

    def can_afford(self, *, rho=None, epsilon=None, delta=None, seed: int | None = None) -> bool:
        """Whether :meth:`charge` with these costs (and seed) would currently succeed (advisory:
        another process may charge in between; :meth:`charge` is the authoritative check)."""
        body = self._make_body(rho, epsilon, delta, "check", "check", "", {}, seed)
        header, charges = self._snapshot()
        if body["seed_digest"] is not None and any(_eq(c["body"]["seed_digest"], body["seed_digest"]) for c in charges):
            return False
        return _compose(header["total_epsilon"], header["total_delta"], [c["body"] for c in charges] + [body])["within"]

    # ------------------------------------------------------------------ reading
    def _snapshot(self):
        try:
            con = _connect(self.path, create=False)
            try:
                con.execute("BEGIN")
                header, charges = _read_verified(con, self.path, self._key, self._anchor)
                con.execute("COMMIT")
            finally:
                con.close()
        except LedgerError:
            raise
        except sqlite3.Error as e:
            raise LedgerError(_unreadable(self.path, str(e))) from e
        if header != self._header:
            raise LedgerError(f"the ledger header at {self.path} changed since it was opened")
        return header, charges

    def _state(self) -> dict:
        header, charges = self._snapshot()
        st = _compose(header["total_epsilon"], header["total_delta"], [c["body"] for c in charges])
        st["charges"] = charges
        return st

    def spent(self) -> Spent:
        """Spent budget ``Spent(epsilon, delta, rho)`` (see module docstring for the composition)."""
        st = self._state()
        return Spent(st["spent_epsilon"], st["spent_delta"], st["rho"])

    def remaining(self) -> Remaining:
        """Remaining budget ``Remaining(epsilon, delta, rho)``; ``rho`` is the largest further plain
        zCDP charge that fits (computed conservatively with :func:`epsilon_to_rho`)."""
        return self._remaining_from(self._state())

    def _remaining_from(self, st: dict) -> Remaining:
        eps_t, d_t = self.total_epsilon, self.total_delta
        rem_eps = max(0.0, eps_t - st["spent_epsilon"])
        d_z = d_t - st["delta_explicit"]
        eps_for_z = eps_t - st["epsilon_approx"]
        if d_z <= 0 or eps_for_z <= 0:
            rem_rho = 0.0
        else:
            rem_rho = max(0.0, epsilon_to_rho(eps_for_z, d_z) - st["rho"])
        return Remaining(rem_eps, max(0.0, d_z), rem_rho)

    def charges(self) -> list[dict]:
        """All recorded charges, oldest first, for the owner's audit: ``seq``, ``kind``, ``rho``,
        ``epsilon``, ``delta``, ``model``, ``mechanism``, ``label``, ``params`` and ``seeded``
        (whether a seed digest was recorded). No MACs; not meant for publication (use
        :meth:`public_summary`)."""
        _, charges = self._snapshot()
        return [_owner_charge(c["body"]) for c in charges]

    def public_summary(self) -> dict:
        """What may be shown to others: the dataset's public label, totals, spent, remaining, the
        number of charges and per charge ``model``, ``mechanism``, ``label``, ``kind``, ``rho``,
        ``epsilon``, ``delta``. No MACs, digests, sequence numbers, times, seeds or parameters."""
        st = self._state()
        rem = self._remaining_from(st)
        return {
            "dataset": self.label,
            "total_epsilon": self.total_epsilon,
            "total_delta": self.total_delta,
            "spent_epsilon": st["spent_epsilon"],
            "spent_delta": st["spent_delta"],
            "spent_rho": st["rho"],
            "remaining_epsilon": rem.epsilon,
            "remaining_delta": rem.delta,
            "remaining_rho": rem.rho,
            "n_charges": len(st["charges"]),
            "charges": [_public_charge(c["body"]) for c in st["charges"]],
        }

    def to_dict(self) -> dict:
        """JSON-able summary: :meth:`public_summary` plus the local ``path``, the schema version and
        a note on the composition. Nothing in it depends on the data beyond the public label."""
        d = self.public_summary()
        return {
            "path": str(self.path),
            "schema_version": LEDGER_SCHEMA_VERSION,
            **d,
            "composition": "zCDP charges summed and converted (Canonne-Kamath-Steinke 2020, via OpenDP) "
            "at delta_total minus explicit deltas; (epsilon, delta) charges by basic composition",
        }


_PRIVATE = object()


def _is_url(path) -> bool:
    """Whether ``path`` is a ``postgresql://`` URL (a server ledger) rather than a file path."""
    return isinstance(path, str) and path.strip().lower().startswith(("postgresql://", "postgres://"))


def _pg():
    from . import ledger_postgres

    return ledger_postgres


def _public_charge(body: dict) -> dict:
    return {k: body[k] for k in ("kind", "rho", "epsilon", "delta", "model", "mechanism", "label")}


def _owner_charge(body: dict) -> dict:
    out = {k: body[k] for k in ("seq", "kind", "rho", "epsilon", "delta", "model", "mechanism", "label", "params")}
    out["seeded"] = body["seed_digest"] is not None
    return out


def _check_dataset(dataset):
    if not isinstance(dataset, str) or not dataset.strip():
        raise ValueError(f"dataset must be a non-empty string (name plus content fingerprint), got {dataset!r}")


def _which(header: dict, dataset: str) -> str:
    label = _label_of(dataset)
    if label != header["label"]:
        return f"{header['label']!r}, not {label!r}"
    return f"{label!r} but another version of it (another content fingerprint)"


def _new_dataset_advice(header: dict, dataset: str) -> str:
    if _label_of(dataset) != header["label"]:
        return "Budgets are per dataset: use this dataset's own ledger (--ledger PATH)."
    return (
        "Edited, filtered or re-ordered data is a new dataset with a new id and its own budget: give it a "
        "separate ledger (dprec ... --ledger OTHER_PATH, or Ledger.create(other_path, ...)). To keep one budget "
        "across versions on purpose, use the same explicit dataset id for every version (docs/ledger.md)."
    )


def _describe(body: dict) -> str:
    if body["kind"] == "erasure":
        return f"{body['model']}/erasure"
    if body["kind"] == "zcdp":
        s = f"rho={body['rho']:.6g}"
        if body["delta"]:
            s += f", delta={body['delta']:.3g}"
    else:
        s = f"epsilon={body['epsilon']:.6g}, delta={body['delta']:.3g}"
    return f"{body['model']}/{body['mechanism']} {s}"


def _unreadable(path, why: str) -> str:
    why = " ".join(str(why).split())
    if len(why) > 300:
        why = why[:300] + "..."
    return (
        f"ledger at {path} is unreadable ({why}); refusing to train. Restore it from backup; "
        f"dprec never resets a budget"
    )


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    mode = "rwc" if create else "rw"
    uri = Path(path).absolute().as_uri() + f"?mode={mode}"
    con = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    con.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
    con.execute("PRAGMA synchronous = FULL")
    con.execute("PRAGMA trusted_schema = OFF")
    if create:
        con.execute("PRAGMA journal_mode = DELETE")
    return con


def _fsync_dir(directory: Path) -> None:
    """Make the new directory entry durable (POSIX); best effort elsewhere."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _begin_immediate(con: sqlite3.Connection, path) -> None:
    """``BEGIN IMMEDIATE`` (take the write lock) with a short randomised retry loop: SQLite's own
    busy handler sleeps up to 100 ms between attempts, which serialises badly with many processes."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    con.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                con.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                msg = str(e).lower()
                if ("locked" not in msg and "busy" not in msg) or time.monotonic() > deadline:
                    if "locked" in msg or "busy" in msg:
                        raise LedgerError(
                            f"the ledger at {path} stayed locked for {_BUSY_TIMEOUT_S:.0f} s; nothing was charged"
                        ) from e
                    raise
                time.sleep(_random.uniform(0.0005, 0.003))
    finally:
        # COMMIT may have to wait for readers to finish: restore the normal busy timeout
        con.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")


# ---------------------------------------------------------------------------------- verification
def _apply_schema(con: sqlite3.Connection, schema: str) -> None:
    for stmt in schema.strip().split(";"):
        if stmt.strip():
            con.execute(stmt)


_EXPECTED: dict[str, frozenset] = {}


def _schema_objects(schema: str) -> frozenset:
    """The ``sqlite_master`` rows ``(type, name, tbl_name, sql)`` of a fresh database with ``schema``."""
    if schema not in _EXPECTED:
        con = sqlite3.connect(":memory:")
        try:
            _apply_schema(con, schema)
            _EXPECTED[schema] = frozenset(con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
        finally:
            con.close()
    return _EXPECTED[schema]


def _check_schema(con: sqlite3.Connection, path) -> None:
    actual = set(con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
    if actual == _schema_objects(_SCHEMA):
        return
    if actual == _schema_objects(_SCHEMA_V1):
        raise LedgerError(
            f"the ledger at {path} is a schema version 1 ledger (unkeyed SHA-256 chain, from an older dprec). "
            f"It cannot be authenticated, so this dprec (schema version {LEDGER_SCHEMA_VERSION}) refuses it: "
            f"the ledger was refused. Create a new keyed ledger deliberately (a new, separate budget), and keep "
            f"the old file as the record of what was already spent"
        )
    expected = _schema_objects(_SCHEMA)
    extra = sorted(actual - expected, key=lambda r: (str(r[0]), str(r[1])))
    missing = sorted(expected - actual, key=lambda r: (str(r[0]), str(r[1])))
    if extra:
        t, name = extra[0][0], extra[0][1]
        what = f"unexpected {t} {name!r}" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
    else:
        what = f"missing or altered {missing[0][0]} {missing[0][1]!r}"
    raise LedgerError(
        f"ledger at {path} is unreadable: its schema is not dprec's ({what}); the ledger was refused (fail closed), "
        f"refusing to train. "
        f"A dprec ledger holds exactly its three tables; triggers, views, extra tables or indexes can change "
        f"what is recorded. Restore it from backup; dprec never resets a budget"
    )


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _validate_header(h) -> str | None:
    if not isinstance(h, dict) or set(h) != _HEADER_KEYS:
        return "header fields are not dprec's"
    if not isinstance(h["ledger_id"], str) or not _HEX32.fullmatch(h["ledger_id"]):
        return "bad ledger id"
    if not isinstance(h["label"], str) or not h["label"]:
        return "bad label"
    if not isinstance(h["dataset_digest"], str) or not _HEX64.fullmatch(h["dataset_digest"]):
        return "bad dataset digest"
    e, d = h["total_epsilon"], h["total_delta"]
    if not _is_num(e) or e <= 0 or not _is_num(d) or not 0 < d < 1:
        return "bad total budget"
    return None


def _validate_body(b, seq: int) -> str | None:
    if not isinstance(b, dict) or set(b) != _BODY_KEYS:
        return "fields are not dprec's"
    if b["seq"] != seq or isinstance(b["seq"], bool):
        return "sequence number does not match"
    if b["kind"] == "zcdp":
        if b["epsilon"] is not None or not _is_num(b["rho"]) or b["rho"] < 0:
            return "rho must be a finite number >= 0"
    elif b["kind"] == "approx":
        if b["rho"] is not None or not _is_num(b["epsilon"]) or b["epsilon"] < 0:
            return "epsilon must be a finite number >= 0"
    elif b["kind"] == "erasure":
        why = _validate_erasure(b)
        if why:
            return why
    else:
        return f"unknown kind {b['kind']!r}"
    if not _is_num(b["delta"]) or not 0 <= b["delta"] < 1:
        return "delta must be in [0, 1)"
    for k in ("model", "mechanism"):
        if not isinstance(b[k], str) or not b[k]:
            return f"{k} must be a non-empty string"
    if not isinstance(b["label"], str):
        return "label must be a string"
    if not isinstance(b["params"], dict):
        return "params must be an object"
    sd = b["seed_digest"]
    if sd is not None and (not isinstance(sd, str) or not _HEX64.fullmatch(sd)):
        return "bad seed digest"
    return None


def _validate_erasure(b: dict) -> str | None:
    """An erasure record carries nothing but the event and the model class (see :meth:`Ledger.record_erasure`)."""
    if b["rho"] is not None or b["epsilon"] != 0 or b["delta"] != 0 or isinstance(b["epsilon"], bool):
        return "an erasure record costs nothing (rho null, epsilon and delta 0)"
    if b["mechanism"] != "erasure" or b["label"] != "" or b["params"] != {} or b["seed_digest"] is not None:
        return "an erasure record holds only its model class"
    return None


def _read_header(con: sqlite3.Connection, path) -> tuple[dict, str, str]:
    """Check the schema and read and validate the header (not yet its MAC)."""
    _check_schema(con, path)
    rows = con.execute("SELECT id, body, hash FROM ledger_header").fetchall()
    if len(rows) != 1:
        raise LedgerError(_unreadable(path, "header row missing"))
    _, hbody, hmac_ = rows[0]
    try:
        header = json.loads(hbody) if isinstance(hbody, str) else None
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise LedgerError(_unreadable(path, "header is not a JSON object"))
    if header.get("magic") != _MAGIC:
        raise LedgerError(_unreadable(path, "not a dprec ledger"))
    if header.get("schema_version") != LEDGER_SCHEMA_VERSION:
        raise LedgerError(
            f"ledger at {path} has schema version {header.get('schema_version')!r}; this dprec reads version "
            f"{LEDGER_SCHEMA_VERSION}. Use a matching dprec version; refusing to train"
        )
    why = _validate_header(header)
    if why:
        raise LedgerError(_unreadable(path, f"invalid header: {why}"))
    return header, hbody, hmac_


def _read_verified(con: sqlite3.Connection, path, key: bytes, anchor) -> tuple[dict, list[dict]]:
    """Read header and charges and verify schema, MACs, chain, bodies, head and anchor. Raises LedgerError."""
    header, hbody, hmac_ = _read_header(con, path)
    if not _eq(hmac_, _mac(key, "header", hbody)):
        raise LedgerError(_unreadable(path, "header MAC mismatch: tampered, or not this ledger's key"))
    header["_mac"] = hmac_
    charges = []
    prev = hmac_
    expected_seq = 1
    for seq, body, prev_mac, m in con.execute("SELECT seq, body, prev_hash, hash FROM ledger_charges ORDER BY seq"):
        if seq != expected_seq:
            raise LedgerError(_unreadable(path, f"charge sequence broken at #{seq} (expected #{expected_seq})"))
        if not _eq(prev_mac, prev) or not isinstance(body, str) or not _eq(m, _mac(key, "charge", prev, body)):
            raise LedgerError(_unreadable(path, f"MAC chain broken at charge #{seq} (tampered or corrupted)"))
        try:
            b = json.loads(body)
        except ValueError:
            raise LedgerError(_unreadable(path, f"charge #{seq} is not JSON")) from None
        why = _validate_body(b, seq)
        if why:
            raise LedgerError(_unreadable(path, f"charge #{seq} is invalid: {why}"))
        charges.append({"seq": seq, "body": b, "mac": m})
        prev = m
        expected_seq += 1
    head = con.execute("SELECT n_charges, head_hash, head_mac FROM ledger_head WHERE id = 1").fetchall()
    if (
        len(head) != 1
        or head[0][0] != len(charges)
        or not _eq(head[0][1], prev)
        or not _eq(head[0][2], _mac(key, "head", str(len(charges)), prev))
    ):
        raise LedgerError(_unreadable(path, "head does not match the charges (rows deleted, added or reset)"))
    if anchor is not None:
        _check_anchor(anchor, key, hmac_, charges, path)
    return header, charges
