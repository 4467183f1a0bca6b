"""A shared privacy ledger on a PostgreSQL server, append-only by the database's own access control.

Reached through the one :class:`~dprec.privacy.ledger.Ledger` interface: ``Ledger.create(url, ...)`` and
``Ledger.open(url, dataset=...)`` with ``url = "postgresql://user@host:port/db"`` return a
:class:`PostgresLedger` (a subclass of ``Ledger``; ``charge``, ``record_erasure``, ``can_afford``, ``spent``,
``remaining``, ``charges`` and ``public_summary`` behave as for the SQLite file ledger). Needs ``psycopg``
(v3): ``pip install "dprec[postgres]"``.

Roles
-----
* The **owner** (the role of the URL given to :meth:`PostgresLedger.create`; best a dedicated non-superuser
  role) owns schema ``dprec``: tables ``dprec.ledgers`` (one row per dataset: label, keyed dataset digest,
  totals, ``n_charges``) and ``dprec.charges`` (one row per charge), and two ``SECURITY DEFINER`` functions,
  ``dprec.lock(ledger_id)`` and ``dprec.charge(...)``. ``EXECUTE`` is revoked from ``PUBLIC``.
* A **trainer** role (``trainer=`` on create) gets ``USAGE`` on the schema, ``SELECT`` on the two tables and
  ``EXECUTE`` on the two functions, nothing else: it cannot ``INSERT``, ``UPDATE``, ``DELETE`` or ``TRUNCATE``,
  cannot create triggers, rules or policies on the tables (only their owner can), cannot reset
  ``ledgers.n_charges``. The only way it can change the ledger is to *append* a charge through ``dprec.charge``.

Who computes what
-----------------
* **Python (the client)** computes the exact accounting, with the same code as the file ledger
  (:func:`~dprec.privacy.ledger._compose`: zCDP sum converted at the δ left, plus basic composition), inside
  one READ COMMITTED transaction that first takes the ledger's advisory lock (``dprec.lock``:
  ``pg_advisory_xact_lock``): read all charges, refuse (seed reuse, over budget) or call ``dprec.charge``
  with the next sequence number, commit. Chargers of one ledger serialise on the lock, so together they can
  never exceed the total; the lock is released by commit, rollback, or the server when a client dies.
* **The SQL function** enforces what must hold whatever the client does, with no copy of the conversion
  math: it takes the same lock; refuses a stale sequence number (the client's check saw another state);
  validates the record (``CHECK`` constraints: kind, finite non-negative ρ/ε, δ in [0, 1), an erasure costs
  nothing); refuses a reused seed digest (``UNIQUE``); and refuses a charge after which a *necessary*
  condition of the exact check fails: ``Σε_approx <= ε_T``, ``Σδ_explicit <= δ_T`` and ``Σρ <= c_i``, the
  ρ cap of the grid point ``i = ⌊G Σε_approx / ε_T⌋`` (:func:`rho_caps`, ``G = 64``: ``c_i =
  epsilon_to_rho(ε_T (1 − i/G), δ_T)``, computed by the owner at creation). Any charge set the exact check
  accepts satisfies all three (a slack of 1e-6 relative on the caps and 1e-9 on the sums absorbs float
  rounding between the two sides); a client that skips the Python check can at worst reach
  ``(ε_T (1 + 1/G), 2 δ_T)``. The SQL side is a backstop against a broken or hostile client, not the
  accountant: the exact check is Python's, in one home.

Reading verifies: ``n_charges`` equals the visible charges ``1..n`` (row-level security hiding rows would
break this), every record passes the file ledger's body validation, and (on open and in every charge) no
other table or view is in the schema, no trigger, rule or row-level security is on the tables, and the
functions are dprec's. Any failure, and
any connection failure, raises :class:`~dprec.errors.LedgerError`: training refuses (fail closed).

Publication hygiene
-------------------
As in the file ledger: the dataset id is stored only as ``HMAC(salt, dataset id)`` and a seed only as
``HMAC(salt, "seed:" + seed)``, where ``salt`` is a random per-ledger secret in ``dprec.ledgers``, readable
by the roles that may read the ledger (the digests hide seeds and fingerprints from whoever sees a summary
or a dump without the salt, not from those roles). No wall-clock time is stored.
"""

from __future__ import annotations

import math
import re
import secrets
import urllib.parse

from ..errors import BudgetExceededError, LedgerError
from .accounting import epsilon_to_rho
from .ledger import (
    _BODY_KEYS,
    _MAGIC,
    _PRIVATE,
    Ledger,
    SeedReuseError,
    _eq,
    _is_url,
    _label_of,
    _mac,
    _new_dataset_advice,
    _public_charge,
    _validate_body,
)

__all__ = ["PostgresLedger", "is_postgres_url", "has_password", "redact", "PG_SCHEMA_VERSION"]

is_postgres_url = _is_url

PG_SCHEMA_VERSION = 1
_CONNECT_TIMEOUT_S = 10
_LOCK_TIMEOUT_S = 60
_RHO_CAP_SLACK = 1e-6
#: the backstop's grid over the (ε, δ) share of ε_T: ρ caps at ε_T·(1 − i/G), i = 0..G (see rho_caps)
_CAP_GRID = 64
# SQLSTATEs raised by dprec.charge (class "DP" is not used by PostgreSQL)
_ERR_NO_LEDGER, _ERR_STALE, _ERR_OVER = "DPL01", "DPL02", "DPL03"

_TABLES = """
CREATE TABLE dprec.ledgers (
    ledger_id text PRIMARY KEY CHECK (ledger_id ~ '^[0-9a-f]{32}$'),
    schema_version integer NOT NULL,
    label text NOT NULL UNIQUE CHECK (label <> ''),
    dataset_digest text NOT NULL CHECK (dataset_digest ~ '^[0-9a-f]{64}$'),
    salt text NOT NULL CHECK (salt ~ '^[0-9a-f]{64}$'),
    total_epsilon float8 NOT NULL CHECK (total_epsilon > 0 AND total_epsilon < 'Infinity'),
    total_delta float8 NOT NULL CHECK (total_delta > 0 AND total_delta < 1),
    rho_caps float8[] NOT NULL CHECK (cardinality(rho_caps) = @CAP_CARD@ AND 0 <= ALL (rho_caps)
        AND 'Infinity' > ALL (rho_caps)),
    n_charges integer NOT NULL DEFAULT 0 CHECK (n_charges >= 0)
);
CREATE TABLE dprec.charges (
    ledger_id text NOT NULL REFERENCES dprec.ledgers,
    seq integer NOT NULL CHECK (seq >= 1),
    kind text NOT NULL CHECK (kind IN ('zcdp', 'approx', 'erasure')),
    rho float8,
    epsilon float8,
    delta float8 NOT NULL CHECK (delta >= 0 AND delta < 1),
    model text NOT NULL CHECK (model <> ''),
    mechanism text NOT NULL CHECK (mechanism <> ''),
    label text NOT NULL,
    params jsonb NOT NULL CHECK (jsonb_typeof(params) = 'object'),
    seed_digest text CHECK (seed_digest ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (ledger_id, seq),
    CONSTRAINT charges_seed_once UNIQUE (ledger_id, seed_digest),
    CHECK (
        (kind = 'zcdp' AND rho >= 0 AND rho < 'Infinity' AND epsilon IS NULL)
        OR (kind = 'approx' AND rho IS NULL AND epsilon >= 0 AND epsilon < 'Infinity')
        OR (kind = 'erasure' AND rho IS NULL AND epsilon = 0 AND delta = 0 AND mechanism = 'erasure'
            AND label = '' AND params = '{}'::jsonb AND seed_digest IS NULL)
    )
)
""".replace("@CAP_CARD@", str(_CAP_GRID + 1))
# Function bodies are compared with pg_proc.prosrc on every open/charge: keep them byte-stable.
_LOCK_SRC = """
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('dprec-ledger:' || p_ledger_id, 0))
"""
_CHARGE_SRC = f"""
DECLARE
    h dprec.ledgers%ROWTYPE;
    s_rho float8;
    s_eps float8;
    s_delta float8;
    i integer;
BEGIN
    PERFORM dprec.lock(p_ledger_id);
    SELECT * INTO h FROM dprec.ledgers WHERE ledger_id = p_ledger_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no dprec ledger with this id' USING ERRCODE = '{_ERR_NO_LEDGER}';
    END IF;
    IF p_seq IS DISTINCT FROM h.n_charges + 1 THEN
        RAISE EXCEPTION 'stale charge: the ledger holds % charges, the charge was checked against %',
            h.n_charges, p_seq - 1 USING ERRCODE = '{_ERR_STALE}';
    END IF;
    INSERT INTO dprec.charges (ledger_id, seq, kind, rho, epsilon, delta, model, mechanism, label, params,
                               seed_digest)
    VALUES (p_ledger_id, p_seq, p_kind, p_rho, p_epsilon, p_delta, p_model, p_mechanism, p_label, p_params,
            p_seed_digest);
    SELECT coalesce(sum(c.rho), 0), coalesce(sum(c.epsilon) FILTER (WHERE c.kind = 'approx'), 0),
           coalesce(sum(c.delta), 0)
      INTO s_rho, s_eps, s_delta FROM dprec.charges c WHERE c.ledger_id = p_ledger_id;
    -- the rho cap of the grid point at or below the approx epsilon spent (rho_caps[i + 1] is for i/G of eps_T)
    i := least({_CAP_GRID}, greatest(0, floor(s_eps / h.total_epsilon * {_CAP_GRID})::integer));
    IF s_eps > h.total_epsilon * (1 + 1e-9) OR s_delta > h.total_delta * (1 + 1e-9)
            OR s_rho > h.rho_caps[i + 1] THEN
        RAISE EXCEPTION 'over budget: sum epsilon %, sum delta %, sum rho % (caps %, %, %)',
            s_eps, s_delta, s_rho, h.total_epsilon, h.total_delta, h.rho_caps[i + 1] USING ERRCODE = '{_ERR_OVER}';
    END IF;
    UPDATE dprec.ledgers SET n_charges = p_seq WHERE ledger_id = p_ledger_id;
END
"""
_CHARGE_ARGS = (
    "p_ledger_id text, p_seq integer, p_kind text, p_rho float8, p_epsilon float8, p_delta float8, "
    "p_model text, p_mechanism text, p_label text, p_params jsonb, p_seed_digest text"
)
_CHARGE_SIG = "dprec.charge(text, integer, text, float8, float8, float8, text, text, text, jsonb, text)"
_LOCK_SIG = "dprec.lock(text)"
_DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
_FUNCTIONS = (
    f"CREATE FUNCTION dprec.lock(p_ledger_id text) RETURNS void LANGUAGE sql VOLATILE {_DEFINER} "
    f"AS $dprec${_LOCK_SRC}$dprec$",
    f"CREATE FUNCTION dprec.charge({_CHARGE_ARGS}) RETURNS void LANGUAGE plpgsql VOLATILE {_DEFINER} "
    f"AS $dprec${_CHARGE_SRC}$dprec$",
    f"REVOKE ALL ON FUNCTION {_LOCK_SIG} FROM PUBLIC",
    f"REVOKE ALL ON FUNCTION {_CHARGE_SIG} FROM PUBLIC",
)
_COLUMNS = "seq, kind, rho, epsilon, delta, model, mechanism, label, params, seed_digest"
_HEADER_COLS = "ledger_id, schema_version, label, dataset_digest, salt, total_epsilon, total_delta, rho_caps, n_charges"


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise LedgerError(
            'a postgresql:// ledger needs psycopg (v3): pip install "dprec[postgres]" (or "psycopg[binary]"); '
            "the ledger was refused"
        ) from None
    return psycopg


def redact(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter), for messages."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            user, host = netloc.rsplit("@", 1)
            netloc = user.split(":", 1)[0] + "@" + host
        query = urllib.parse.urlencode(
            [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "password"],
            safe="/",
        )
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "postgresql://<unparsable URL>"


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password (``user:password@`` or a ``password=`` parameter)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError:
        return False
    in_user = "@" in parts.netloc and ":" in parts.netloc.rsplit("@", 1)[0]
    return in_user or any(k == "password" for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))


def _conninfo(url: str) -> dict:
    """The libpq connection parameters of ``url``; a URL libpq cannot parse raises a clear LedgerError."""
    psycopg = _psycopg()
    try:
        params = psycopg.conninfo.conninfo_to_dict(url.strip())
    except psycopg.Error as e:
        raise LedgerError(
            f"--ledger {redact(url)}: not a valid PostgreSQL URL ({_one_line(e)}); expected "
            f"postgresql://USER@HOST:PORT/DATABASE (password from ~/.pgpass or PGPASSWORD); the ledger was refused"
        ) from None
    if not params.get("dbname"):
        raise LedgerError(
            f"--ledger {redact(url)}: the URL names no database; expected postgresql://USER@HOST:PORT/DATABASE; "
            f"the ledger was refused"
        )
    params.setdefault("connect_timeout", str(_CONNECT_TIMEOUT_S))
    params.setdefault("application_name", "dprec-ledger")
    # a charger waits for the ledger's lock at most this long (then: LedgerError, nothing charged)
    params["options"] = (params.get("options", "") + f" -c lock_timeout={_LOCK_TIMEOUT_S}s").strip()
    return params


def _one_line(e) -> str:
    s = " ".join(str(e).split())
    return s[:300] + ("..." if len(s) > 300 else "")


def _connect(url: str, *, snapshot: bool = False):
    """A new connection (no transaction open yet). ``snapshot``: its transaction is one REPEATABLE READ,
    READ ONLY snapshot (for reading); else READ COMMITTED, so each statement after the lock sees every
    charge committed before it (a REPEATABLE READ snapshot would be taken before the lock wait)."""
    psycopg = _psycopg()
    params = _conninfo(url)
    try:
        con = psycopg.connect(**params, autocommit=False)
    except psycopg.Error as e:
        raise LedgerError(
            f"cannot reach the PostgreSQL ledger at {redact(url)} ({_one_line(e)}); nothing was charged, "
            f"refusing to train (fail closed)"
        ) from None
    level = psycopg.IsolationLevel
    con.isolation_level = level.REPEATABLE_READ if snapshot else level.READ_COMMITTED
    con.read_only = snapshot
    return con


_IN_DPREC = "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'dprec'"
# One catalog query (one round trip inside the charge's lock): the schema's relations, the triggers, rules and
# row-level security on them, and its functions.
_VERIFY_SQL = f"""
SELECT
 (SELECT coalesce(array_agg(c.relname::text ORDER BY c.relname), '{{}}') FROM pg_catalog.pg_class c {_IN_DPREC}
   WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p')),
 (SELECT count(*) FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid {_IN_DPREC}
   WHERE NOT t.tgisinternal),
 (SELECT count(*) FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class {_IN_DPREC}
   WHERE c.relkind IN ('r', 'p')),
 (SELECT count(*) FROM pg_catalog.pg_class c {_IN_DPREC} WHERE c.relrowsecurity OR c.relforcerowsecurity),
 (SELECT coalesce(array_agg(p.proname || ':' || l.lanname || ':' || p.prosecdef::text || ':'
                            || coalesce(array_to_string(p.proconfig, ','), '') || ':' || p.prosrc ORDER BY p.proname),
                  '{{}}')
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'dprec'
    JOIN pg_catalog.pg_language l ON l.oid = p.prolang)
"""
_EXPECTED_FUNCTIONS = [
    "charge:plpgsql:true:search_path=pg_catalog, pg_temp:" + _CHARGE_SRC,
    "lock:sql:true:search_path=pg_catalog, pg_temp:" + _LOCK_SRC,
]


def _verify_objects(cur, url: str) -> None:
    """Refuse a ``dprec`` schema that is not exactly dprec's: other tables or views, triggers, rules or
    row-level security on its tables, or functions other than dprec's (the owner, or a superuser, could plant
    them; the trainer cannot)."""
    cur.execute(_VERIFY_SQL)
    tables, n_trig, n_rules, n_rls, functions = cur.fetchone()
    if "charges" not in tables or "ledgers" not in tables:
        raise LedgerError(f"the database at {redact(url)} holds no dprec ledger schema; create one with Ledger.create")
    problem = None
    if n_trig or n_rules or n_rls:
        problem = f"{n_trig} trigger(s), {n_rules} rule(s), {n_rls} table(s) with row-level security"
    elif sorted(tables) != ["charges", "ledgers"]:
        problem = f"unexpected relations {sorted(set(tables) - {'charges', 'ledgers'})}"
    elif list(functions) != _EXPECTED_FUNCTIONS:
        problem = "its functions are not dprec's (altered, added or removed)"
    if problem:
        raise LedgerError(
            f"the ledger schema at {redact(url)} is not dprec's ({problem}); the ledger was refused (fail closed), "
            f"refusing to train. Triggers, rules, policies, extra relations or altered functions can change what "
            f"is recorded or read"
        )


def _body(row) -> dict:
    body = dict(zip(_COLUMNS.replace(" ", "").split(","), row))
    assert set(body) == _BODY_KEYS
    return body


class PostgresLedger(Ledger):
    """A :class:`~dprec.privacy.ledger.Ledger` stored on a PostgreSQL server (see the module docstring).

    ``path`` is the server URL without its password. Every method opens its own short-lived connection
    (a ``PostgresLedger`` holds no connection or lock between calls and is safe across ``fork``).
    """

    @classmethod
    def _create_url(cls, url: str, *, dataset: str, eps: float, d: float, trainer=None) -> PostgresLedger:
        """``Ledger.create`` for a URL (``dataset``, ``eps``, ``d`` already validated by ``Ledger.create``)."""
        roles = _roles(trainer)
        psycopg = _psycopg()
        from psycopg import sql

        con = _connect(url)
        try:
            with con.cursor() as cur:
                # serialise concurrent creators of the schema and of the ledger row
                cur.execute("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('dprec-schema', 0))")
                cur.execute("SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'dprec'")
                if cur.fetchone()[0] == 0:
                    cur.execute("CREATE SCHEMA dprec")
                    cur.execute("REVOKE ALL ON SCHEMA dprec FROM PUBLIC")
                    for stmt in (*_TABLES.split(";"), *_FUNCTIONS):
                        if stmt.strip():
                            cur.execute(stmt)
                _verify_objects(cur, url)
                cur.execute(f"SELECT {_HEADER_COLS} FROM dprec.ledgers WHERE label = %s", (_label(dataset),))
                row = cur.fetchone()
                if row is None:
                    salt = secrets.token_bytes(32)
                    cur.execute(
                        f"INSERT INTO dprec.ledgers ({_HEADER_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0)",
                        (
                            secrets.token_hex(16),
                            PG_SCHEMA_VERSION,
                            _label(dataset),
                            _mac(salt, "dataset", dataset),
                            salt.hex(),
                            eps,
                            d,
                            rho_caps(eps, d),
                        ),
                    )
                else:
                    header = _header(row)
                    _check_same(header, dataset, eps, d, url)
                for role in roles:
                    r = sql.Identifier(role)
                    cur.execute(sql.SQL("GRANT USAGE ON SCHEMA dprec TO {}").format(r))
                    cur.execute(sql.SQL("GRANT SELECT ON dprec.ledgers, dprec.charges TO {}").format(r))
                    cur.execute(sql.SQL(f"GRANT EXECUTE ON FUNCTION {_LOCK_SIG}, {_CHARGE_SIG} TO {{}}").format(r))
            con.commit()
        except psycopg.errors.UndefinedObject as e:
            raise LedgerError(f"trainer: no such role in the database at {redact(url)} ({_one_line(e)})") from None
        except psycopg.errors.InsufficientPrivilege as e:
            raise LedgerError(
                f"the role of {redact(url)} may not create the dprec ledger schema or grant on it ({_one_line(e)}); "
                f"create it as the owner role (docs/ledger.md)"
            ) from None
        except psycopg.Error as e:
            raise LedgerError(f"cannot create the ledger at {redact(url)}: {_one_line(e)}") from None
        finally:
            con.close()
        return cls._open_url(url, dataset=dataset)

    @classmethod
    def _open_url(cls, url: str, *, dataset: str | None = None) -> PostgresLedger:
        """``Ledger.open`` for a URL: verify the schema objects and read the ledger of ``dataset`` (by its
        public label, then checked by its keyed digest), or the only ledger of the database."""
        psycopg = _psycopg()
        con = _connect(url)
        try:
            with con.cursor() as cur:
                _verify_objects(cur, url)
                if dataset is not None:
                    cur.execute(f"SELECT {_HEADER_COLS} FROM dprec.ledgers WHERE label = %s", (_label(dataset),))
                else:
                    cur.execute(f"SELECT {_HEADER_COLS} FROM dprec.ledgers ORDER BY label LIMIT 2")
                rows = cur.fetchall()
            con.commit()
        except psycopg.Error as e:
            if getattr(e, "sqlstate", None) == "42501":
                raise LedgerError(
                    f"the role of {redact(url)} may not read the dprec ledger ({_one_line(e)}); grant it with "
                    f"Ledger.create(..., trainer=ROLE) or dprec budget init --trainer-role ROLE; refusing to train"
                ) from None
            raise LedgerError(f"cannot read the ledger at {redact(url)} ({_one_line(e)}); refusing to train") from None
        finally:
            con.close()
        if not rows:
            what = f"for dataset {_label(dataset)!r} " if dataset is not None else ""
            raise LedgerError(f"no privacy ledger {what}at {redact(url)}; create one with Ledger.create(...)")
        if len(rows) > 1:
            raise LedgerError(
                f"the database at {redact(url)} holds the ledgers of several datasets; name the dataset "
                f"(dataset=..., or --dataset/--ratings on the command line)"
            )
        header = _header(rows[0])
        led = cls(redact(url), header, bytes.fromhex(header["salt"]), None, None, _PRIVATE)
        led.path = redact(url)  # a URL, not a file path (the password never shown)
        led._url = url
        if dataset is not None:
            if not led.matches(dataset):
                raise LedgerError(
                    f"the ledger at {redact(url)} belongs to dataset {header['label']!r} but another version of it "
                    f"(another content fingerprint); refusing to train. {_new_dataset_advice(header, dataset)}"
                )
            led._dataset_id = dataset
        led._snapshot()  # full read and verification, as the file ledger's open
        return led

    # ------------------------------------------------------------------ storage
    def _read(self, cur) -> tuple[dict, list[dict]]:
        """Header and charges in one statement snapshot each, verified (see module docstring)."""
        cur.execute(f"SELECT {_HEADER_COLS} FROM dprec.ledgers WHERE ledger_id = %s", (self._header["ledger_id"],))
        row = cur.fetchone()
        if row is None:
            raise LedgerError(f"the ledger of {self.label!r} at {self.path} is gone; refusing to train")
        header = _header(row)
        if {k: v for k, v in header.items() if k != "n_charges"} != {
            k: v for k, v in self._header.items() if k != "n_charges"
        }:
            raise LedgerError(f"the ledger header at {self.path} changed since it was opened; refusing to train")
        cur.execute(
            f"SELECT {_COLUMNS} FROM dprec.charges WHERE ledger_id = %s ORDER BY seq", (self._header["ledger_id"],)
        )
        charges = []
        for i, r in enumerate(cur.fetchall(), 1):
            body = _body(r)
            why = _validate_body(body, i)
            if why:
                raise LedgerError(
                    f"ledger at {self.path} is unreadable (charge #{i} is invalid: {why}); refusing to train"
                )
            charges.append({"seq": i, "body": body, "mac": None})
        if len(charges) != header["n_charges"]:
            raise LedgerError(
                f"ledger at {self.path} is unreadable: it records {header['n_charges']} charges but "
                f"{len(charges)} are visible; refusing to train"
            )
        return header, charges

    def _snapshot(self):
        psycopg = _psycopg()
        con = _connect(self._url, snapshot=True)
        try:
            with con.cursor() as cur:
                header, charges = self._read(cur)
            con.commit()
        except psycopg.Error as e:
            raise LedgerError(f"cannot read the ledger at {self.path} ({_one_line(e)}); refusing to train") from None
        finally:
            con.close()
        return header, charges

    def _append(self, body: dict, *, what: str, check=None) -> dict:
        """Append ``body``: take the ledger's lock, read and verify, run ``check(header, charges)`` (raises to
        refuse), call ``dprec.charge`` with the next sequence number, commit. A failure anywhere before the
        commit rolls everything back; a client killed in between leaves no trace (the server aborts its
        transaction and releases the lock)."""
        psycopg = _psycopg()
        con = _connect(self._url)
        try:
            with con.cursor() as cur:
                _verify_objects(cur, self._url)  # before the lock: a shorter critical section for the others
                cur.execute("SELECT dprec.lock(%s)", (self._header["ledger_id"],))
                header, charges = self._read(cur)
                if check is not None:
                    check(header, charges)
                seq = len(charges) + 1
                cur.execute(
                    "SELECT dprec.charge(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        self._header["ledger_id"],
                        seq,
                        body["kind"],
                        body["rho"],
                        body["epsilon"],
                        body["delta"],
                        body["model"],
                        body["mechanism"],
                        body["label"],
                        psycopg.types.json.Jsonb(body["params"]),
                        body["seed_digest"],
                    ),
                )
        except psycopg.Error as e:
            _rollback(con)
            con.close()
            raise self._charge_error(e, what) from None
        except BaseException:
            _rollback(con)
            con.close()
            raise
        try:
            con.commit()
        except psycopg.Error as e:
            # in doubt: the server may have committed before the connection failed
            raise LedgerError(
                f"the connection to the ledger at {self.path} failed while committing the {what} "
                f"({_one_line(e)}): it may or may not have been recorded (see `dprec budget show`); draw no noise "
                f"for it"
            ) from None
        finally:
            con.close()
        return _public_charge(body)

    def _charge_error(self, e, what: str) -> Exception:
        state = getattr(e, "sqlstate", None)
        msg = _one_line(getattr(getattr(e, "diag", None), "message_primary", None) or e)
        if state == _ERR_OVER:
            return BudgetExceededError(
                f"privacy budget exceeded for dataset {self.label!r}: the ledger server refused the {what} ({msg}). "
                f"Nothing was charged."
            )
        if state == "23505":  # the UNIQUE seed digest
            return SeedReuseError(
                f"this seed was already used on this dataset ({self.label!r}); reusing a seed makes the two "
                f"releases' noise identical — pass a new seed or rng=None. Nothing was charged."
            )
        if state == "42501":
            return LedgerError(
                f"the role of {self.path} may not record a {what} in this ledger ({msg}); grant it with "
                f"Ledger.create(..., trainer=ROLE) or dprec budget init --trainer-role ROLE. Nothing was charged"
            )
        if state == "55P03":
            return LedgerError(f"the ledger at {self.path} stayed locked for {_LOCK_TIMEOUT_S} s; nothing was charged")
        return LedgerError(f"could not record the {what} in the ledger at {self.path} ({msg}); nothing was recorded")

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["backend"] = "postgresql"
        d["schema_version"] = PG_SCHEMA_VERSION
        return d

    def __repr__(self):
        return (
            f"PostgresLedger({self.path!r}, label={self.label!r}, epsilon={self.total_epsilon}, "
            f"delta={self.total_delta})"
        )


def _rollback(con) -> None:
    try:
        con.rollback()
    except Exception:  # noqa: BLE001 - the connection may be dead; the server rolls back on disconnect
        pass


def rho_caps(total_epsilon: float, total_delta: float) -> list[float]:
    """The backstop's ρ caps: ``c_i = epsilon_to_rho(ε_T (1 − i/G), δ_T)·(1 + 10⁻⁶)`` for ``i = 0..G``.

    A necessary condition of the exact check: it accepts only if ``ε_z(Σρ, δ_z) + Σε_approx ≤ ε_T`` with
    ``δ_z ≤ δ_T``, and ``ε_z`` decreases in δ, so ``ε_z(Σρ, δ_T) ≤ ε_T − Σε_approx ≤ ε_T (1 − i/G)`` for
    ``i = ⌊G Σε_approx / ε_T⌋``, i.e. ``Σρ ≤ c_i``. Conversely a record within every cap spends at most
    ``ε_T (1 + 1/G)`` at ``2 δ_T``."""
    return [
        epsilon_to_rho(total_epsilon * (1 - i / _CAP_GRID), total_delta) * (1 + _RHO_CAP_SLACK)
        if i < _CAP_GRID
        else 0.0
        for i in range(_CAP_GRID + 1)
    ]


def _label(dataset: str) -> str:
    return _label_of(dataset)


def _header(row) -> dict:
    h = dict(zip(_HEADER_COLS.replace(" ", "").split(","), row))
    h["magic"] = _MAGIC
    bad = (
        h["schema_version"] != PG_SCHEMA_VERSION
        or not isinstance(h["total_epsilon"], float)
        or not math.isfinite(h["total_epsilon"])
        or not 0 < h["total_delta"] < 1
    )
    if bad:
        raise LedgerError(
            f"the ledger of {h['label']!r} has schema version {h['schema_version']!r} or invalid totals; this dprec "
            f"reads PostgreSQL ledger schema {PG_SCHEMA_VERSION}; refusing to train"
        )
    return h


def _check_same(header: dict, dataset: str, eps: float, d: float, url: str) -> None:
    if not _eq(_mac(bytes.fromhex(header["salt"]), "dataset", dataset), header["dataset_digest"]):
        raise LedgerError(
            f"a ledger for another dataset ({header['label']!r} but another version of it) already exists at "
            f"{redact(url)}; refusing to overwrite it. {_new_dataset_advice(header, dataset)}"
        )
    if header["total_epsilon"] != eps or header["total_delta"] != d:
        raise LedgerError(
            f"the ledger of {header['label']!r} at {redact(url)} already exists with total budget "
            f"(epsilon={header['total_epsilon']}, delta={header['total_delta']}), not (epsilon={eps}, delta={d}); "
            f"a budget can never be changed or reset"
        )


_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$-]{0,62}")


def _roles(trainer) -> list[str]:
    if trainer is None:
        return []
    roles = [trainer] if isinstance(trainer, str) else list(trainer)
    for r in roles:
        if not isinstance(r, str) or not _ROLE.fullmatch(r):
            raise ValueError(f"trainer must be a PostgreSQL role name (or a list of them), got {r!r}")
    return roles
