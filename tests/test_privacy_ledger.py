"""Privacy ledger: accounting, refusal, concurrency, crash safety, tamper detection."""

import json
import math
import os
import random
import shutil
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
    for key in ("dataset", "total_epsilon", "total_delta", "spent_epsilon", "spent_delta", "remaining_epsilon", "charges"):
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
    return subprocess.Popen([sys.executable, "-c", WORKER, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


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
