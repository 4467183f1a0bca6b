"""Persistent privacy ledger (SQLite, stdlib ``sqlite3``).

One ledger file per dataset. The dataset is identified by a caller-supplied string (name plus a
content fingerprint, e.g. ``"ml-100k:sha256:ab12..."``). The ledger stores the total budget
``(ε_T, δ_T)`` and every charge, and refuses a charge that would exceed the total *before*
recording it; callers draw noise only after :meth:`Ledger.charge` returns.

Charge kinds and composition
----------------------------
* **zCDP charges** ``charge(rho=ρ, delta=δ_x)``: a ``δ_x``-approximate ``ρ``-zCDP mechanism
  (``δ_x = 0`` for a plain Gaussian release; ``δ_x > 0`` e.g. for DP item selection, whose
  threshold fails with probability ``δ_sel``). Approximate zCDP composes additively in both
  parameters (Bun & Steinke 2016, §8): ``ρ_Σ = Σρ``, ``δ_X = Σδ_x``.
* **(ε, δ) charges** ``charge(epsilon=ε, delta=δ)``: pure/approximate DP mechanisms, composed by
  basic composition: ``ε_A = Σε``, ``δ_A = Σδ``.

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

Durability, concurrency, integrity
----------------------------------
* Every charge runs in one ``BEGIN IMMEDIATE`` write transaction: read all rows, verify the chain,
  compute the new spent budget, insert, commit. Concurrent processes serialise on SQLite's write
  lock, so together they can never exceed the total. ``journal_mode=DELETE`` with
  ``synchronous=FULL``: a crash leaves the whole record or nothing.
* Tamper evidence: each row stores ``hash = sha256(prev_hash || canonical JSON body)``; the chain
  starts at the header hash (which covers the dataset and totals), and a ``head`` row stores the
  number of charges and the last hash, updated in the same transaction, so deleting the newest
  rows is detected too. :meth:`Ledger.open` also runs ``PRAGMA integrity_check``. This detects
  corruption and naive edits; it does not stop someone who can rewrite the file *and* recompute
  the chain (there is no secret key). Keep backups; dprec never resets or recreates a budget.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import random
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import NamedTuple

from ..errors import BudgetExceededError, LedgerError
from .accounting import epsilon_to_rho, rho_to_epsilon
from .units import check_delta, check_epsilon

__all__ = ["Ledger", "Spent", "Remaining", "LEDGER_SCHEMA_VERSION"]

LEDGER_SCHEMA_VERSION = 1
_MAGIC = "dprec-privacy-ledger"
_SQLITE_HEADER = b"SQLite format 3\x00"
_GENESIS = "0" * 64
_BUSY_TIMEOUT_S = 60.0
_random = random.Random()

_SCHEMA = """
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
_TABLES = {"ledger_header", "ledger_head", "ledger_charges"}


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
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _sha(prev: str, body: str) -> str:
    return hashlib.sha256((prev + "\n" + body).encode("utf-8")).hexdigest()


def _num(x, name: str, *, upper: float | None = None) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise ValueError(f"{name} must be a number, got {x!r}")
    v = float(x)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {x!r}")
    if upper is not None and v >= upper:
        raise ValueError(f"{name} must be < {upper}, got {x!r}")
    return v


def _jsonable(obj, where="params"):
    """Check that ``params`` survives canonical JSON (no NaN/inf, str keys)."""
    try:
        return json.loads(_canonical(obj))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} must be JSON-serialisable (str keys, finite numbers): {e}") from None


def _compose(total_eps: float, total_delta: float, charges: list[dict]) -> dict:
    """Spent/remaining budget of a list of charge bodies (see module docstring)."""
    rhos, dx, ea, da = [], [], [], []
    for c in charges:
        if c["kind"] == "zcdp":
            rhos.append(c["rho"])
            dx.append(c["delta"])
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
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "dprec"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "dprec"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dprec"


class Ledger:
    """Persistent privacy ledger for one dataset. Create with :meth:`create`, reopen with :meth:`open`.

    Every method opens its own short-lived SQLite connection, so a ``Ledger`` object is cheap,
    safe to use across ``fork`` and never holds a lock between calls.
    """

    def __init__(self, path, _header: dict, _token=None):
        if _token is not _PRIVATE:
            raise TypeError("use Ledger.create(...) or Ledger.open(...)")
        self.path = Path(path)
        self._header = _header

    # ------------------------------------------------------------------ construction
    @staticmethod
    def default_path(dataset: str) -> Path:
        """``$DPREC_LEDGER_DIR/<slug>-<hash>.ledger.sqlite`` (default directory: the user data dir,
        e.g. ``~/.local/share/dprec/ledgers``). The file name embeds a hash of the full dataset id
        so different fingerprints never share a ledger."""
        _check_dataset(dataset)
        env = os.environ.get("DPREC_LEDGER_DIR")
        base = Path(env).expanduser() if env else _user_data_dir() / "ledgers"
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.split(":")[0])[:40] or "dataset"
        digest = hashlib.sha256(dataset.encode("utf-8")).hexdigest()[:16]
        return base / f"{slug}-{digest}.ledger.sqlite"

    @classmethod
    def create(cls, path, *, dataset: str, epsilon, delta) -> "Ledger":
        """Create a ledger with total budget ``(epsilon, delta)`` for ``dataset``.

        If a ledger already exists at ``path`` for the same dataset with the same totals, it is
        opened (idempotent). If it belongs to another dataset or has other totals, or the file is
        not a valid ledger, :class:`LedgerError` is raised and nothing is changed.
        """
        _check_dataset(dataset)
        eps = check_epsilon(epsilon)
        if math.isinf(eps):
            raise ValueError(
                "a ledger tracks a finite budget: epsilon must be finite (epsilon=inf training is "
                "non-private and does not use a ledger)"
            )
        d = check_delta(delta)
        path = Path(path)
        if path.exists():
            existing = cls.open(path)  # fails closed on anything that is not a valid ledger
            cls._check_same(existing._header, path, dataset, eps, d)
            return existing
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "magic": _MAGIC,
            "schema_version": LEDGER_SCHEMA_VERSION,
            "dataset": dataset,
            "total_epsilon": eps,
            "total_delta": d,
            "created": time.time(),
        }
        # Build the ledger in a private temporary file, then publish it atomically with link(2),
        # which fails if ``path`` appeared meanwhile: there is never a half-initialised ledger at
        # ``path``, and an existing file is never overwritten.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.time_ns()}.tmp")
        try:
            con = _connect(tmp, create=True)
            try:
                con.execute("BEGIN IMMEDIATE")
                for stmt in _SCHEMA.strip().split(";"):
                    if stmt.strip():
                        con.execute(stmt)
                body = _canonical(header)
                h = _sha(_GENESIS, body)
                con.execute("INSERT INTO ledger_header (id, body, hash) VALUES (1, ?, ?)", (body, h))
                con.execute("INSERT INTO ledger_head (id, n_charges, head_hash) VALUES (1, 0, ?)", (h,))
                con.execute("COMMIT")
            finally:
                con.close()
            try:
                os.link(tmp, path)
                _fsync_dir(path.parent)
            except FileExistsError:
                existing = cls.open(path)  # created concurrently by another process
                cls._check_same(existing._header, path, dataset, eps, d)
                return existing
            except OSError:  # file system without hard links: best-effort exclusive rename
                if path.exists():
                    existing = cls.open(path)
                    cls._check_same(existing._header, path, dataset, eps, d)
                    return existing
                os.rename(tmp, path)
        except sqlite3.Error as e:
            raise LedgerError(f"cannot create ledger at {path}: {e}") from e
        finally:
            for leftover in (tmp, Path(str(tmp) + "-journal")):
                try:
                    leftover.unlink()
                except FileNotFoundError:
                    pass
        return cls.open(path, dataset=dataset)

    @staticmethod
    def _check_same(header, path, dataset, eps, d):
        if header["dataset"] != dataset:
            raise LedgerError(
                f"a ledger for another dataset ({header['dataset']!r}) already exists at {path}; "
                f"refusing to overwrite it. Use a different path for dataset {dataset!r}"
            )
        if header["total_epsilon"] != eps or header["total_delta"] != d:
            raise LedgerError(
                f"the ledger at {path} already exists with total budget (epsilon={header['total_epsilon']}, "
                f"delta={header['total_delta']}), not (epsilon={eps}, delta={d}); a budget can never be "
                f"changed or reset"
            )

    @classmethod
    def open(cls, path, *, dataset: str | None = None) -> "Ledger":
        """Open and fully verify an existing ledger (schema, ``PRAGMA integrity_check``, header,
        hash chain, head). Any failure raises :class:`LedgerError`; the file is never modified,
        recreated or reset. ``dataset`` (if given) must match the ledger's dataset."""
        path = Path(path)
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
                header, charges = _read_verified(con, path)
                con.execute("COMMIT")
            finally:
                con.close()
        except LedgerError:
            raise
        except sqlite3.Error as e:
            raise LedgerError(_unreadable(path, str(e))) from e
        if dataset is not None:
            _check_dataset(dataset)
            if header["dataset"] != dataset:
                raise LedgerError(
                    f"the ledger at {path} belongs to dataset {header['dataset']!r}, not {dataset!r}; "
                    f"refusing to train"
                )
        return cls(path, header, _PRIVATE)

    # ------------------------------------------------------------------ properties
    @property
    def dataset(self) -> str:
        return self._header["dataset"]

    @property
    def total_epsilon(self) -> float:
        return self._header["total_epsilon"]

    @property
    def total_delta(self) -> float:
        return self._header["total_delta"]

    def __repr__(self):
        return f"Ledger({str(self.path)!r}, dataset={self.dataset!r}, epsilon={self.total_epsilon}, delta={self.total_delta})"

    # ------------------------------------------------------------------ charging
    def _make_body(self, rho, epsilon, delta, model, mechanism, label, params) -> dict:
        if rho is None and epsilon is None:
            if delta is None:
                raise ValueError("charge needs rho= (zCDP) or epsilon= (approximate DP), optionally delta=")
            epsilon = 0.0  # a pure-δ charge
        if rho is not None and epsilon is not None:
            raise ValueError("give either rho= (zCDP, optionally with delta=) or epsilon= (with delta=), not both")
        dval = 0.0 if delta is None else _num(delta, "delta", upper=1.0)
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
            "params": _jsonable(params),
            "delta": dval,
        }
        if rho is not None:
            body.update(kind="zcdp", rho=_num(rho, "rho"), epsilon=None)
        else:
            body.update(kind="approx", epsilon=_num(epsilon, "epsilon"), rho=None)
        return body

    def charge(self, *, rho=None, epsilon=None, delta=None, model: str, mechanism: str, label: str = "",
               params: dict | None = None) -> dict:
        """Record a charge, or raise :class:`BudgetExceededError` and record nothing.

        Parameters
        ----------
        rho : float, optional
            zCDP cost (``delta`` then is the extra δ of a δ-approximate zCDP mechanism, default 0).
        epsilon, delta : float, optional
            (ε, δ)-DP cost (basic composition), if ``rho`` is not given.
        model, mechanism, label : str
            What spent it (e.g. ``"DPALS"``, ``"gaussian"``, ``"iteration 3"``).
        params : dict
            JSON-serialisable parameters (σ, sensitivity, counts, ...), stored verbatim.

        Returns
        -------
        dict
            The recorded charge (``seq``, ``time``, ``hash`` and the fields above).
        """
        body = self._make_body(rho, epsilon, delta, model, mechanism, label, params)
        try:
            con = _connect(self.path, create=False)
        except sqlite3.Error as e:
            raise LedgerError(_unreadable(self.path, str(e))) from e
        try:
            _begin_immediate(con, self.path)
            try:
                header, charges = _read_verified(con, self.path)
                if header != self._header:
                    raise LedgerError(f"the ledger header at {self.path} changed since it was opened; refusing to charge")
                after = _compose(header["total_epsilon"], header["total_delta"], [c["body"] for c in charges] + [body])
                if not after["within"]:
                    before = _compose(header["total_epsilon"], header["total_delta"], [c["body"] for c in charges])
                    raise BudgetExceededError(
                        f"privacy budget exceeded for dataset {header['dataset']!r}: this charge "
                        f"({_describe(body)}) would bring the spent budget to epsilon="
                        f"{after['spent_epsilon']:.6g} (delta={after['spent_delta']:.3g}) of the total "
                        f"(epsilon={header['total_epsilon']:g}, delta={header['total_delta']:g}); already spent "
                        f"epsilon={before['spent_epsilon']:.6g}. Nothing was charged."
                    )
                seq = (charges[-1]["seq"] + 1) if charges else 1
                prev = charges[-1]["hash"] if charges else header["_hash"]
                body = dict(body, seq=seq, time=time.time())
                text = _canonical(body)
                h = _sha(prev, text)
                con.execute(
                    "INSERT INTO ledger_charges (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)",
                    (seq, text, prev, h),
                )
                cur = con.execute(
                    "UPDATE ledger_head SET n_charges = ?, head_hash = ? WHERE id = 1 AND n_charges = ? AND head_hash = ?",
                    (seq, h, len(charges), prev),
                )
                if cur.rowcount != 1:
                    raise LedgerError(f"ledger head at {self.path} is inconsistent; refusing to charge")
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        except (LedgerError, BudgetExceededError):
            raise
        except sqlite3.Error as e:
            raise LedgerError(f"could not record a charge in the ledger at {self.path}: {e}; nothing was charged") from e
        finally:
            con.close()
        return dict(body, hash=h)

    def can_afford(self, *, rho=None, epsilon=None, delta=None) -> bool:
        """Whether :meth:`charge` with these costs would currently succeed (advisory: another process
        may charge in between; :meth:`charge` is the authoritative check)."""
        body = self._make_body(rho, epsilon, delta, "check", "check", "", {})
        header, charges = self._snapshot()
        return _compose(header["total_epsilon"], header["total_delta"], [c["body"] for c in charges] + [body])["within"]

    # ------------------------------------------------------------------ reading
    def _snapshot(self):
        try:
            con = _connect(self.path, create=False)
            try:
                con.execute("BEGIN")
                header, charges = _read_verified(con, self.path)
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
        """All recorded charges, oldest first, as dicts (``seq``, ``time``, ``kind``, ``rho``,
        ``epsilon``, ``delta``, ``model``, ``mechanism``, ``label``, ``params``, ``hash``)."""
        _, charges = self._snapshot()
        return [dict(c["body"], hash=c["hash"]) for c in charges]

    def to_dict(self) -> dict:
        """JSON-able summary: dataset, totals, spent, remaining and the charges."""
        st = self._state()
        rem = self._remaining_from(st)
        return {
            "path": str(self.path),
            "dataset": self.dataset,
            "schema_version": LEDGER_SCHEMA_VERSION,
            "total_epsilon": self.total_epsilon,
            "total_delta": self.total_delta,
            "spent_epsilon": st["spent_epsilon"],
            "spent_delta": st["spent_delta"],
            "spent_rho": st["rho"],
            "remaining_epsilon": rem.epsilon,
            "remaining_delta": rem.delta,
            "remaining_rho": rem.rho,
            "composition": "zCDP charges summed and converted (Canonne-Kamath-Steinke 2020, via OpenDP) "
            "at delta_total minus explicit deltas; (epsilon, delta) charges by basic composition",
            "charges": [dict(c["body"], hash=c["hash"]) for c in st["charges"]],
        }


_PRIVATE = object()


def _check_dataset(dataset):
    if not isinstance(dataset, str) or not dataset.strip():
        raise ValueError(f"dataset must be a non-empty string (name plus content fingerprint), got {dataset!r}")


def _describe(body: dict) -> str:
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


def _read_verified(con: sqlite3.Connection, path) -> tuple[dict, list[dict]]:
    """Read header and charges and verify schema, hashes, chain and head. Raises LedgerError."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not _TABLES <= tables:
        raise LedgerError(_unreadable(path, f"missing tables {sorted(_TABLES - tables)}; not a dprec ledger"))
    rows = con.execute("SELECT id, body, hash FROM ledger_header").fetchall()
    if len(rows) != 1:
        raise LedgerError(_unreadable(path, "header row missing"))
    _, hbody, hhash = rows[0]
    if not isinstance(hbody, str) or _sha(_GENESIS, hbody) != hhash:
        raise LedgerError(_unreadable(path, "header hash mismatch (tampered or corrupted)"))
    try:
        header = json.loads(hbody)
    except ValueError:
        raise LedgerError(_unreadable(path, "header is not JSON")) from None
    if header.get("magic") != _MAGIC:
        raise LedgerError(_unreadable(path, "not a dprec ledger"))
    if header.get("schema_version") != LEDGER_SCHEMA_VERSION:
        raise LedgerError(
            f"ledger at {path} has schema version {header.get('schema_version')!r}; this dprec reads version "
            f"{LEDGER_SCHEMA_VERSION}. Use a matching dprec version; refusing to train"
        )
    try:
        check_epsilon(header["total_epsilon"])
        check_delta(header["total_delta"])
        _check_dataset(header["dataset"])
    except (KeyError, ValueError) as e:
        raise LedgerError(_unreadable(path, f"invalid header: {e}")) from None
    header["_hash"] = hhash
    charges = []
    prev = hhash
    expected_seq = 1
    for seq, body, prev_hash, h in con.execute("SELECT seq, body, prev_hash, hash FROM ledger_charges ORDER BY seq"):
        if seq != expected_seq:
            raise LedgerError(_unreadable(path, f"charge sequence broken at #{seq} (expected #{expected_seq})"))
        if prev_hash != prev or not isinstance(body, str) or _sha(prev, body) != h:
            raise LedgerError(_unreadable(path, f"hash chain broken at charge #{seq} (tampered or corrupted)"))
        try:
            b = json.loads(body)
        except ValueError:
            raise LedgerError(_unreadable(path, f"charge #{seq} is not JSON")) from None
        if b.get("seq") != seq or b.get("kind") not in ("zcdp", "approx"):
            raise LedgerError(_unreadable(path, f"charge #{seq} is malformed"))
        charges.append({"seq": seq, "body": b, "hash": h})
        prev = h
        expected_seq += 1
    head = con.execute("SELECT n_charges, head_hash FROM ledger_head WHERE id = 1").fetchall()
    if len(head) != 1 or head[0][0] != len(charges) or head[0][1] != prev:
        raise LedgerError(_unreadable(path, "head does not match the charges (rows deleted or added)"))
    return header, charges
