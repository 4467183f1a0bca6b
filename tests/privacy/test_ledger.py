"""Privacy ledger: accounting, refusal, concurrency, crash safety, tamper detection."""

import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from dprec.errors import BudgetExceededError, LedgerError
from dprec.privacy import Ledger, epsilon_to_rho, rho_to_epsilon

DS = "toy:sha256:0123abcd"


def new_ledger(tmp_path, eps=1.0, delta=1e-6, name="ledger.sqlite"):
    return Ledger.create(tmp_path / name, dataset=DS, epsilon=eps, delta=delta)


def test_create_charge_remaining_refuse(tmp_path):
    L = new_ledger(tmp_path)
    rho_max = epsilon_to_rho(1.0, 1e-6)
    assert L.spent() == (0.0, 0.0, 0.0)
    assert L.remaining().rho == pytest.approx(rho_max)
    rec = L.charge(rho=rho_max / 2, model="DPALS", mechanism="gaussian", label="A_j it 1", params={"sigma": 3.0})
    assert rec["model"] == "DPALS" and rec["rho"] == rho_max / 2 and "params" not in rec  # public record
    assert L.charges()[0]["seq"] == 1 and L.charges()[0]["params"] == {"sigma": 3.0}  # owner's audit
    eps, delta, rho = L.spent()
    assert rho == rho_max / 2 and delta == 1e-6
    assert eps == pytest.approx(rho_to_epsilon(rho_max / 2, 1e-6))
    assert L.can_afford(rho=rho_max / 2 * 0.999)
    assert not L.can_afford(rho=rho_max)
    before = L.charges()
    with pytest.raises(BudgetExceededError, match="Nothing was charged"):
        L.charge(rho=rho_max, model="DPALS", mechanism="gaussian")
    assert L.charges() == before  # refused charge records nothing
    # the remaining rho is affordable exactly
    L.charge(rho=L.remaining().rho, model="DPALS", mechanism="gaussian")
    assert L.spent().epsilon <= 1.0 and L.remaining().epsilon == pytest.approx(0.0, abs=1e-6)
    d = L.to_dict()
    for key in (
        "dataset",
        "total_epsilon",
        "total_delta",
        "spent_epsilon",
        "spent_delta",
        "remaining_epsilon",
        "charges",
    ):
        assert key in d
    assert len(d["charges"]) == 2 and d["dataset"] == "toy"  # the public label, never the fingerprint
    json.dumps(d)


def test_explicit_delta_and_approx_charges(tmp_path):
    L = new_ledger(tmp_path, eps=2.0, delta=1e-5)
    L.charge(rho=0.01, delta=4e-6, model="m", mechanism="gaussian_threshold", label="item selection")
    L.charge(epsilon=0.3, delta=1e-6, model="m", mechanism="laplace")
    eps, delta, rho = L.spent()
    # zCDP part converted at delta_total - explicit deltas; approx part added
    assert eps == pytest.approx(rho_to_epsilon(0.01, 1e-5 - 5e-6) + 0.3)
    assert delta == pytest.approx(1e-5)
    rem = L.remaining()
    assert rem.delta == pytest.approx(5e-6)
    assert rho_to_epsilon(0.01 + rem.rho, 5e-6) + 0.3 <= 2.0
    with pytest.raises(BudgetExceededError):
        L.charge(epsilon=0.0, delta=6e-6, model="m", mechanism="x")  # explicit deltas would exceed the total
    with pytest.raises(ValueError, match="not both"):
        L.charge(rho=0.1, epsilon=0.1, model="m", mechanism="x")
    with pytest.raises(ValueError, match="JSON"):
        L.charge(rho=0.1, model="m", mechanism="x", params={"bad": float("nan")})
    assert len(L.charges()) == 2


def test_create_open_refusals(tmp_path):
    path = tmp_path / "l.sqlite"
    with pytest.raises(LedgerError, match="no privacy ledger"):
        Ledger.open(path)
    assert not path.exists()  # open never creates
    L = Ledger.create(path, dataset=DS, epsilon=1.0, delta=1e-6)
    L.charge(rho=0.001, model="m", mechanism="g")
    again = Ledger.create(path, dataset=DS, epsilon=1.0, delta=1e-6)  # idempotent, keeps charges
    assert len(again.charges()) == 1
    with pytest.raises(LedgerError, match="another dataset"):
        Ledger.create(path, dataset="other:ff", epsilon=1.0, delta=1e-6)
    with pytest.raises(LedgerError, match="never be changed"):
        Ledger.create(path, dataset=DS, epsilon=2.0, delta=1e-6)
    with pytest.raises(LedgerError, match="belongs to dataset"):
        Ledger.open(path, dataset="other:ff")
    assert Ledger.open(path, dataset=DS).spent().rho == 0.001
    with pytest.raises(ValueError, match="finite"):
        Ledger.create(tmp_path / "x.sqlite", dataset=DS, epsilon=math.inf, delta=1e-6)
    for eps, word in ((1e308, "too large"), (1e-300, "too small")):  # a total no one means: refused, nothing made
        with pytest.raises(ValueError, match=f"{word} to be meant.*0.001, 1000"):
            Ledger.create(tmp_path / "x.sqlite", dataset=DS, epsilon=eps, delta=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["l.sqlite"]  # no temp files left


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("DPREC_LEDGER_DIR", str(tmp_path))
    p1 = Ledger.default_path("ml-100k:sha256:aa")
    p2 = Ledger.default_path("ml-100k:sha256:bb")
    # the file name derives from the public name only, nothing data-dependent
    assert p1.parent == tmp_path and p1 == p2 and p1.name == "ml-100k.ledger.sqlite"


# ------------------------------------------------------------------ corruption and tampering
def _populated(tmp_path, n=20):
    L = new_ledger(tmp_path)
    for i in range(n):
        L.charge(rho=1e-5, model="m", mechanism="gaussian", label=f"c{i}", params={"i": i, "pad": "x" * 300})
    return L.path


@pytest.mark.parametrize("frac", [0.0, 0.3, 0.5, 0.9])
def test_truncated_file_fails_closed(tmp_path, frac):
    path = _populated(tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * frac))
    with pytest.raises(LedgerError, match="unreadable.*refusing to train.*never resets"):
        Ledger.open(path, dataset=DS)
    with pytest.raises(LedgerError):
        Ledger.create(path, dataset=DS, epsilon=1.0, delta=1e-6)  # create never resets either
    assert path.stat().st_size == int(size * frac)


def test_garbage_file_fails_closed(tmp_path):
    path = tmp_path / "g.sqlite"
    path.write_bytes(os.urandom(5000))
    with pytest.raises(LedgerError, match="unreadable"):
        Ledger.open(path)
    path2 = tmp_path / "h.sqlite"
    path2.write_bytes(b"SQLite format 3\x00" + os.urandom(8000))
    with pytest.raises(LedgerError, match="unreadable"):
        Ledger.open(path2)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_charges SET body = replace(body, '\"rho\":1e-05', '\"rho\":1e-09') WHERE seq = 3",
        "DELETE FROM ledger_charges WHERE seq = 5",
        "DELETE FROM ledger_charges WHERE seq = (SELECT max(seq) FROM ledger_charges)",
        "DELETE FROM ledger_charges",
        "UPDATE ledger_header SET body = replace(body, '\"total_epsilon\":1.0', '\"total_epsilon\":9.0')",
        "DROP TABLE ledger_head",
    ],
)
def test_tampering_detected(tmp_path, sql):
    path = _populated(tmp_path)
    L = Ledger.open(path, dataset=DS)
    con = sqlite3.connect(path)
    cur = con.execute(sql)
    assert cur.rowcount != 0
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="unreadable"):
        Ledger.open(path, dataset=DS)
    with pytest.raises(LedgerError):
        L.charge(rho=1e-6, model="m", mechanism="g")  # an open handle refuses too


# ------------------------------------------------------------------ concurrency and crashes
WORKER = r"""
import importlib.util, json, sys, types
# Load dprec.privacy without running dprec/__init__ (which imports numba/pandas and makes eight
# processes start slowly on a small machine); the ledger code exercised is the same.
_spec = importlib.util.find_spec("dprec")
_pkg = types.ModuleType("dprec")
_pkg.__path__ = list(_spec.submodule_search_locations)
sys.modules["dprec"] = _pkg
from dprec.errors import BudgetExceededError
from dprec.privacy import Ledger
path, wid, n, rho = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
L = Ledger.open(path, dataset=sys.argv[5])
print("ready", flush=True)
ok, refused = [], 0
for j in range(n):
    try:
        L.charge(rho=rho, model="worker", mechanism="gaussian", label=f"w{wid}-{j}")
        ok.append(f"w{wid}-{j}")
    except BudgetExceededError:
        refused += 1
print(json.dumps({"ok": ok, "refused": refused}), flush=True)
"""


def _spawn(*args):
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_concurrent_processes_never_exceed_total(tmp_path):
    L = new_ledger(tmp_path)
    rho_max = epsilon_to_rho(1.0, 1e-6)
    rho = rho_max / 40.5
    # exactly how many such charges fit (same fsum + conversion the ledger uses)
    fit = max(n for n in range(1, 100) if rho_to_epsilon(math.fsum([rho] * n), 1e-6) <= 1.0)
    procs = [_spawn(L.path, w, 8, rho, DS) for w in range(8)]  # 64 attempts for ~40 slots
    accepted = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        res = json.loads(out.strip().splitlines()[-1])
        accepted += res["ok"]
    recorded = [c["label"] for c in Ledger.open(L.path, dataset=DS).charges()]
    assert sorted(recorded) == sorted(accepted)
    assert len(accepted) == fit
    assert L.spent().epsilon <= 1.0
    assert [c["seq"] for c in L.charges()] == list(range(1, fit + 1))


def test_sigkill_mid_charge_leaves_readable_ledger(tmp_path):
    L = new_ledger(tmp_path, eps=50.0)
    rnd = random.Random(0)
    # three children charge concurrently in a loop; each is SIGKILLed after a short random time
    procs = [_spawn(L.path, w, 100000, 1e-7, DS) for w in range(3)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    counts = []
    for p in procs:
        time.sleep(rnd.uniform(0.05, 0.3))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
        p.stderr.close()
        again = Ledger.open(L.path, dataset=DS)  # verifies integrity_check, the chain and the head
        # one snapshot: the children not yet killed keep charging between two separate reads
        snap = again.to_dict()
        counts.append(len(snap["charges"]))
        assert snap["spent_rho"] == pytest.approx(counts[-1] * 1e-7)
    assert counts[-1] > 0
    again.charge(rho=1e-7, model="m", mechanism="g")  # still usable (every child is dead by now)
    assert len(again.charges()) == counts[-1] + 1


# ------------------------------------------------------------------ attacks (authenticated ledger, schema v2)
import hashlib  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import stat  # noqa: E402
from pathlib import Path  # noqa: E402

HEX64 = re.compile(r"[0-9a-f]{64}")


def _sql(path, *statements):
    con = sqlite3.connect(path)
    try:
        for s in statements:
            con.execute(s)
        con.commit()
    finally:
        con.close()


def _refused(path, L=None, match="refus|unreadable"):
    """The file is refused on open and, through an already-open handle, on charge (nothing recorded)."""
    with pytest.raises(LedgerError, match=match):
        Ledger.open(path, dataset=DS)
    if L is not None:
        with pytest.raises(LedgerError):
            L.charge(rho=1e-6, model="m", mechanism="g")


def _spent_ledger(tmp_path, n=5, eps=1.0):
    L = new_ledger(tmp_path, eps=eps)
    for i in range(n):
        L.charge(rho=0.002, model="m", mechanism="gaussian", label=f"c{i}")
    return L


def test_rewind_delete_all_and_reset_head_to_header(tmp_path):
    L = _spent_ledger(tmp_path)
    _sql(
        L.path,
        "DELETE FROM ledger_charges",
        "UPDATE ledger_head SET n_charges = 0, head_hash = (SELECT hash FROM ledger_header)",
    )
    _refused(L.path, L)


def test_rewind_delete_newest_and_point_head_to_previous(tmp_path):
    L = _spent_ledger(tmp_path)
    _sql(
        L.path,
        "DELETE FROM ledger_charges WHERE seq = 5",
        "UPDATE ledger_head SET n_charges = 4, head_hash = (SELECT hash FROM ledger_charges WHERE seq = 4)",
    )
    _refused(L.path, L)


@pytest.mark.parametrize("how", ["restore older copy", "replay saved head row"])
def test_rollback_to_an_earlier_state_is_detected(tmp_path, how):
    L = _spent_ledger(tmp_path, n=2)
    old = L.path.read_bytes()
    con = sqlite3.connect(L.path)
    head = con.execute("SELECT * FROM ledger_head").fetchone()
    con.close()
    for i in range(3):
        L.charge(rho=0.002, model="m", mechanism="gaussian", label=f"later {i}")
    if how == "restore older copy":
        L.path.write_bytes(old)
    else:  # every row is authentic, but the head and the rows are those of an earlier state
        cols = ", ".join(f"{c} = ?" for c in ("id", "n_charges", "head_hash", "head_mac")[: len(head)])
        con = sqlite3.connect(L.path)
        con.execute("DELETE FROM ledger_charges WHERE seq > 2")
        con.execute(f"UPDATE ledger_head SET {cols}", head)
        con.commit()
        con.close()
    _refused(L.path, L, match="rolled back|refused|unreadable")


REWIND_TRIGGER = (
    "CREATE TRIGGER rewind AFTER UPDATE ON ledger_head BEGIN DELETE FROM ledger_charges; "
    "UPDATE ledger_head SET n_charges = 0, head_hash = (SELECT hash FROM ledger_header); END"
)


def test_planted_trigger_refused_on_open_and_in_charge(tmp_path):
    L = Ledger.create(tmp_path / "l.sqlite", dataset=DS, epsilon=10.0, delta=1e-6)
    _sql(L.path, REWIND_TRIGGER)
    with pytest.raises(LedgerError, match=r"trigger 'rewind'.*refused"):
        Ledger.open(L.path, dataset=DS)
    # the attack: 10 fits of epsilon = 5 on an epsilon = 10 budget, the ledger showing nothing spent
    accepted = 0
    for _ in range(10):
        try:
            L.charge(epsilon=5.0, delta=0.0, model="m", mechanism="laplace")
            accepted += 1
        except LedgerError as e:
            assert "trigger 'rewind'" in str(e)
    assert accepted == 0
    con = sqlite3.connect(L.path)
    assert con.execute("SELECT count(*) FROM ledger_charges").fetchone() == (0,)
    con.close()


@pytest.mark.parametrize(
    "sql,name",
    [
        ("CREATE TABLE notes (x TEXT)", "notes"),
        ("CREATE VIEW v AS SELECT 1", "v"),
        ("CREATE INDEX ix ON ledger_charges (body)", "ix"),
        ("CREATE TRIGGER t BEFORE INSERT ON ledger_charges BEGIN SELECT 1; END", "t"),
    ],
)
def test_extra_schema_objects_refused(tmp_path, sql, name):
    L = _spent_ledger(tmp_path, n=1)
    _sql(L.path, sql)
    with pytest.raises(LedgerError, match=rf"unexpected \w+ '{name}'.*refused"):
        Ledger.open(L.path, dataset=DS)
    with pytest.raises(LedgerError, match=name):
        L.charge(rho=1e-6, model="m", mechanism="g")


# A consistent rewrite of the whole file: the attacker edits charge #1 and recomputes every hash.
def _rewrite(path, mutate, mac):
    """``mac(domain, *parts)`` recomputes header/charge/head values; returns nothing."""
    con = sqlite3.connect(path)
    cols = {r[1] for r in con.execute("PRAGMA table_info(ledger_head)")}
    hbody = con.execute("SELECT body FROM ledger_header").fetchone()[0]
    hh = mac("header", hbody)
    con.execute("UPDATE ledger_header SET hash = ?", (hh,))
    prev = hh
    rows = con.execute("SELECT seq, body FROM ledger_charges ORDER BY seq").fetchall()
    for seq, body in rows:
        if seq == 1:
            b = json.loads(body)
            mutate(b)
            body = json.dumps(b, sort_keys=True, separators=(",", ":"))
        h = mac("charge", prev, body)
        con.execute("UPDATE ledger_charges SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?", (body, prev, h, seq))
        prev = h
    con.execute("UPDATE ledger_head SET n_charges = ?, head_hash = ?", (len(rows), prev))
    if "head_mac" in cols:
        con.execute("UPDATE ledger_head SET head_mac = ?", (mac("head", str(len(rows)), prev),))
    con.commit()
    con.close()


def _unkeyed_sha(domain, *parts):
    """The schema-1 algorithm: sha256(prev || "\\n" || body), the header chained from 64 zeros."""
    if domain == "header":
        prev, body = "0" * 64, parts[0]
    elif domain == "charge":
        prev, body = parts
    else:
        return "0" * 64
    return hashlib.sha256((prev + "\n" + body).encode()).hexdigest()


def _keyed(key):
    import hmac as _hmac

    def mac(domain, *parts):
        msg = "\n".join(("dprec-privacy-ledger", domain, *parts)).encode()
        return _hmac.new(key, msg, hashlib.sha256).hexdigest()

    return mac


MUTATIONS = {
    "negative rho": lambda b: b.update(rho=-5.0),
    "nan rho": lambda b: b.update(rho=float("nan")),
    "delta 1": lambda b: b.update(delta=1.0),
    "negative delta": lambda b: b.update(delta=-1e-3),
    "unknown kind": lambda b: b.update(kind="free"),
    "rho as string": lambda b: b.update(rho="0.01"),
    "missing model": lambda b: b.pop("model"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_bad_bodies_with_unkeyed_recomputed_chain_refused(tmp_path, mutation):
    L = _spent_ledger(tmp_path, n=3)
    _rewrite(L.path, MUTATIONS[mutation], _unkeyed_sha)  # consistent under the old (unkeyed) scheme
    _refused(L.path, L)


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_bad_bodies_refused_even_with_a_valid_keyed_chain(tmp_path, mutation):
    key = secrets.token_bytes(32)
    L = Ledger.create(tmp_path / "l.sqlite", dataset=DS, epsilon=1.0, delta=1e-6, key=key)
    for _i in range(3):
        L.charge(rho=0.002, model="m", mechanism="gaussian")
    _rewrite(L.path, lambda b: None, _keyed(key))  # sanity: the helper writes a valid chain
    assert Ledger.open(L.path, dataset=DS, key=key).spent().rho == pytest.approx(0.006)
    _rewrite(L.path, MUTATIONS[mutation], _keyed(key))  # whoever holds the key writes a bad body
    with pytest.raises(LedgerError, match=r"charge #1 is (invalid|not JSON)"):
        Ledger.open(L.path, dataset=DS, key=key)
    with pytest.raises(LedgerError):
        L.charge(rho=1e-6, model="m", mechanism="g")


def test_without_the_key_no_valid_chain_can_be_made(tmp_path):
    L = _spent_ledger(tmp_path, n=3)
    guess = secrets.token_bytes(32)
    _rewrite(L.path, lambda b: b.update(rho=0.0), _keyed(guess))  # well-formed, MACed, with the wrong key
    _refused(L.path, L, match="MAC")


def test_open_without_key_file_says_where_it_looked(tmp_path, monkeypatch):
    L = new_ledger(tmp_path)
    other = tmp_path / "empty-key-dir"
    other.mkdir()
    monkeypatch.setenv("DPREC_LEDGER_KEY_DIR", str(other))
    with pytest.raises(LedgerError, match="no key for the ledger") as e:
        Ledger.open(L.path, dataset=DS)
    assert str(other) in str(e.value) and "refused" in str(e.value)


def test_key_file_readable_by_others_refused(tmp_path):
    L = new_ledger(tmp_path)
    key_dir = Path(os.environ["DPREC_LEDGER_KEY_DIR"])
    (kfile,) = key_dir.glob("*.key")
    assert stat.S_IMODE(kfile.stat().st_mode) == 0o600  # created private
    kfile.chmod(0o644)
    with pytest.raises(LedgerError, match=r"0644.*refused.*chmod 600"):
        Ledger.open(L.path, dataset=DS)
    kfile.chmod(0o600)
    assert Ledger.open(L.path, dataset=DS).spent() == (0.0, 0.0, 0.0)


def test_key_file_symlink_refused(tmp_path):
    L = new_ledger(tmp_path)
    (kfile,) = Path(os.environ["DPREC_LEDGER_KEY_DIR"]).glob("*.key")
    real = tmp_path / "real.key"
    kfile.rename(real)
    kfile.symlink_to(real)
    with pytest.raises(LedgerError, match="refused"):
        Ledger.open(L.path, dataset=DS)


def test_caller_supplied_key(tmp_path):
    key = secrets.token_bytes(32)
    path = tmp_path / "l.sqlite"
    L = Ledger.create(path, dataset=DS, epsilon=1.0, delta=1e-6, key=key)
    L.charge(rho=0.01, model="m", mechanism="g")
    assert not any(Path(os.environ["DPREC_LEDGER_KEY_DIR"]).iterdir())  # nothing written to the key dir
    assert Ledger.open(path, dataset=DS, key=key).spent().rho == 0.01
    with pytest.raises(LedgerError, match="MAC"):
        Ledger.open(path, key=secrets.token_bytes(32))
    with pytest.raises(LedgerError, match="no key"):
        Ledger.open(path)
    assert Ledger.create(path, dataset=DS, epsilon=1.0, delta=1e-6, key=key).spent().rho == 0.01  # idempotent
    with pytest.raises(ValueError, match="bytes"):
        Ledger.open(path, key="secret")
    with pytest.raises(ValueError, match="at least 16"):
        Ledger.create(tmp_path / "x.sqlite", dataset=DS, epsilon=1.0, delta=1e-6, key=b"short")
    assert key.hex() not in path.read_bytes().decode("latin-1")


V1_SCHEMA = [
    "CREATE TABLE ledger_header (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE TABLE ledger_head (id INTEGER PRIMARY KEY CHECK (id = 1), n_charges INTEGER NOT NULL, head_hash TEXT NOT NULL)",
    "CREATE TABLE ledger_charges (seq INTEGER PRIMARY KEY, body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
]


def test_schema_v1_unkeyed_file_refused(tmp_path):
    from dprec.privacy import ledger as mod

    path = tmp_path / "v1.sqlite"
    con = sqlite3.connect(path)
    mod._apply_schema(con, mod._SCHEMA_V1)  # byte-identical to what dprec's schema-1 code created
    body = json.dumps(
        {
            "magic": "dprec-privacy-ledger",
            "schema_version": 1,
            "dataset": DS,
            "total_epsilon": 1.0,
            "total_delta": 1e-6,
            "created": 1.0,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    h = _unkeyed_sha("header", body)
    con.execute("INSERT INTO ledger_header VALUES (1, ?, ?)", (body, h))
    con.execute("INSERT INTO ledger_head VALUES (1, 0, ?)", (h,))
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="version 1.*cannot be authenticated.*refused"):
        Ledger.open(path)


# ------------------------------------------------------------------ publication hygiene
FP = "3f2a9c0d1e2b4a5f"
DS_FP = f"ml-100k:{FP}"


def _assert_clean(text: str):
    assert FP not in text and FP[:8] not in text and DS_FP not in text
    assert not HEX64.search(text), "a 64-hex digest/MAC is shown"
    for word in ('"seq"', '"time"', '"created"', '"hash"', '"mac"', '"params"', "seed", "rng"):
        assert word not in text, word
    assert not re.search(r"1[6-9]\d{8}(\.\d+)?", text), "a wall-clock time is shown"


def test_public_summary_and_to_dict_show_no_data_dependent_values(tmp_path):
    L = Ledger.create(tmp_path / "l.sqlite", dataset=DS_FP, epsilon=2.0, delta=1e-6)
    L.charge(rho=0.01, model="DPALS", mechanism="gaussian", label="fit", params={"rng": 12345, "seed": 7, "sigma": 2.0})
    L.charge(epsilon=0.1, delta=1e-8, model="m", mechanism="laplace", seed=424242)
    s = L.public_summary()
    assert s["dataset"] == "ml-100k" and s["n_charges"] == 2
    assert set(s["charges"][0]) == {"kind", "rho", "epsilon", "delta", "model", "mechanism", "label"}
    assert s["spent_rho"] == 0.01 and s["total_epsilon"] == 2.0 and s["remaining_epsilon"] < 2.0
    _assert_clean(json.dumps(s))
    _assert_clean(json.dumps(L.to_dict()).replace(json.dumps(str(L.path))[1:-1], ""))
    assert "ml-100k" in repr(L) and FP not in repr(L)
    # the owner's audit keeps params, without seeds
    assert L.charges()[0]["params"] == {"sigma": 2.0} and L.charges()[1]["seeded"] is True
    # the file itself holds neither the id, the fingerprint nor a time
    raw = L.path.read_bytes().decode("latin-1")
    assert FP not in raw and FP[:8] not in raw and '"created"' not in raw and '"time"' not in raw
    assert L.matches(DS_FP) and not L.matches("ml-100k:ffffffffffffffff") and not L.matches("other:" + FP)


def test_default_path_has_nothing_data_dependent(monkeypatch, tmp_path):
    monkeypatch.setenv("DPREC_LEDGER_DIR", str(tmp_path))
    p = Ledger.default_path(DS_FP)
    assert p.name == "ml-100k.ledger.sqlite" and FP not in str(p) and not re.search(r"[0-9a-f]{8}", p.name)
    assert Ledger.default_path("weird name/..:abc").name == "weird_name.ledger.sqlite"


def test_default_path_refuses_another_version_of_the_dataset(monkeypatch, tmp_path):
    monkeypatch.setenv("DPREC_LEDGER_DIR", str(tmp_path))
    Ledger.create(Ledger.default_path(DS_FP), dataset=DS_FP, epsilon=1.0, delta=1e-6)
    edited = "ml-100k:00000000aaaaaaaa"
    with pytest.raises(LedgerError, match=r"another version.*re-ordered data is a new dataset.*--ledger"):
        Ledger.create(Ledger.default_path(edited), dataset=edited, epsilon=1.0, delta=1e-6)
    with pytest.raises(LedgerError, match=r"another version.*--ledger"):
        Ledger.open(Ledger.default_path(edited), dataset=edited)
    assert Ledger.open(Ledger.default_path(DS_FP), dataset=DS_FP).dataset == DS_FP


# ------------------------------------------------------------------ seed reuse
SEED = 987654321987


def test_seed_reuse_refused_and_seed_never_stored(tmp_path):
    from dprec.privacy.ledger import SeedReuseError

    L = new_ledger(tmp_path)
    L.charge(rho=0.001, model="m", mechanism="gaussian", seed=SEED)
    assert not L.can_afford(rho=0.001, seed=SEED) and L.can_afford(rho=0.001, seed=SEED + 1)
    with pytest.raises(SeedReuseError, match="seed was already used on this dataset.*pass a new seed or rng=None"):
        L.charge(rho=0.001, model="m", mechanism="gaussian", seed=SEED)
    assert issubclass(SeedReuseError, BudgetExceededError)
    # another process / handle sees the same digest
    with pytest.raises(SeedReuseError):
        Ledger.open(L.path, dataset=DS).charge(rho=0.001, model="other", mechanism="g", seed=SEED)
    assert len(L.charges()) == 1  # nothing charged
    L.charge(rho=0.001, model="m", mechanism="gaussian", seed=SEED + 1)
    L.charge(rho=0.001, model="m", mechanism="gaussian")  # no seed: no guard
    assert len(L.charges()) == 3
    for f in [L.path, *Path(os.environ["DPREC_LEDGER_KEY_DIR"]).iterdir()]:
        assert str(SEED).encode() not in f.read_bytes() and str(SEED + 1).encode() not in f.read_bytes()
    with pytest.raises(ValueError, match="seed"):
        L.charge(rho=0.001, model="m", mechanism="g", seed="7")
    with pytest.raises(ValueError, match="seed"):
        L.charge(rho=0.001, model="m", mechanism="g", seed=True)
