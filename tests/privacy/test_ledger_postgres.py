"""The PostgreSQL privacy ledger on a throwaway server: concurrency, a killed charger, a training role that
cannot rewrite history, and the file ledger's semantics (refusal, seed reuse, fail closed)."""

import json
import math
import multiprocessing as mp
import os
import signal
import uuid

import pytest

from dprec.errors import BudgetExceededError, LedgerError
from dprec.privacy import Ledger, epsilon_to_rho, rho_to_epsilon
from dprec.privacy.ledger import SeedReuseError
from dprec.testing.postgres import ThrowawayServer, missing_binaries

psycopg = pytest.importorskip("psycopg", reason='needs psycopg (v3): pip install "dprec[postgres]"')

OWNER, TRAINER, OUTSIDER = "dprec_owner", "dprec_trainer", "dprec_outsider"
PORT = 5432  # only names the unix socket file; the server does not listen on TCP


@pytest.fixture(scope="session")
def pg():
    """A throwaway PostgreSQL server (unix socket only, fsync off; :mod:`dprec.testing.postgres`), with databases
    ``dprec`` and ``dprec_tamper`` owned by the non-superuser owner role, a trainer role and an outsider role (no
    grants). Yields a function ``url(role, dbname="dprec", port=PORT)`` with ``.stop()`` and ``.start()``."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"PostgreSQL server binaries not on PATH: {', '.join(missing)}")
    with ThrowawayServer(port=PORT) as server:

        def url(role, dbname="dprec", port=PORT):
            return server.url(role, dbname, port=port)

        url.start, url.stop = server.start, server.stop
        with psycopg.connect(url("postgres", "postgres"), autocommit=True) as con:
            for role in (OWNER, TRAINER, OUTSIDER):
                con.execute(f"CREATE ROLE {role} LOGIN")
            for db in ("dprec", "dprec_tamper"):
                con.execute(f"CREATE DATABASE {db} OWNER {OWNER}")
        yield url


def _ds():
    """A fresh dataset id (one database holds one ledger per dataset label)."""
    return f"pg{uuid.uuid4().hex[:12]}:sha256:0123abcd"


def new_ledger(pg, eps=1.0, delta=1e-6, dataset=None, dbname="dprec"):
    """Created by the owner, granted to the trainer; returns (trainer's ledger, dataset id)."""
    ds = dataset or _ds()
    Ledger.create(pg(OWNER, dbname), dataset=ds, epsilon=eps, delta=delta, trainer=TRAINER)
    return Ledger.open(pg(TRAINER, dbname), dataset=ds), ds


# ------------------------------------------------------------------ (4) the file ledger's semantics
def test_create_charge_remaining_refuse(pg):
    L, ds = new_ledger(pg)
    assert type(L).__name__ == "PostgresLedger" and isinstance(L, Ledger)
    rho_max = epsilon_to_rho(1.0, 1e-6)
    assert L.spent() == (0.0, 0.0, 0.0)
    assert L.remaining().rho == pytest.approx(rho_max)
    rec = L.charge(rho=rho_max / 2, model="DPALS", mechanism="gaussian", label="A_j it 1", params={"sigma": 3.0})
    assert rec == {
        "kind": "zcdp",
        "rho": rho_max / 2,
        "epsilon": None,
        "delta": 0.0,
        "model": "DPALS",
        "mechanism": "gaussian",
        "label": "A_j it 1",
    }
    assert L.charges()[0]["seq"] == 1 and L.charges()[0]["params"] == {"sigma": 3.0}
    eps, delta, rho = L.spent()
    assert rho == rho_max / 2 and delta == 1e-6 and eps == rho_to_epsilon(rho_max / 2, 1e-6)
    before = L.charges()
    with pytest.raises(BudgetExceededError, match="Nothing was charged"):
        L.charge(rho=rho_max, model="DPALS", mechanism="gaussian")
    assert L.charges() == before
    L.charge(rho=L.remaining().rho, model="DPALS", mechanism="gaussian")  # the remaining ρ fits exactly
    assert L.spent().epsilon <= 1.0 and L.remaining().epsilon == pytest.approx(0.0, abs=1e-6)
    s = L.public_summary()
    assert s["dataset"] == ds.split(":")[0] and s["n_charges"] == 2 and "params" not in s["charges"][0]
    assert L.to_dict()["backend"] == "postgresql" and "@" in L.to_dict()["path"]


def test_explicit_delta_approx_and_erasure(pg):
    L, _ = new_ledger(pg, eps=2.0, delta=1e-5)
    L.charge(rho=0.01, delta=4e-6, model="m", mechanism="gaussian_threshold", label="item selection")
    L.charge(epsilon=0.3, delta=1e-6, model="m", mechanism="laplace")
    L.record_erasure(model="DPALS")
    eps, delta, rho = L.spent()
    assert eps == pytest.approx(rho_to_epsilon(0.01, 1e-5 - 5e-6) + 0.3) and delta == pytest.approx(1e-5)
    assert L.remaining().delta == pytest.approx(5e-6)
    with pytest.raises(BudgetExceededError):
        L.charge(epsilon=0.0, delta=6e-6, model="m", mechanism="x")  # explicit δ's would exceed the total
    assert [c["kind"] for c in L.charges()] == ["zcdp", "approx", "erasure"]


def test_open_without_schema_refused(pg):
    with psycopg.connect(pg("postgres", "postgres"), autocommit=True) as con:
        con.execute(f"CREATE DATABASE dprec_empty OWNER {OWNER}")
    with pytest.raises(LedgerError, match="holds no dprec ledger schema; create one with Ledger.create"):
        Ledger.open(pg(TRAINER, "dprec_empty"), dataset=_ds())


def test_create_open_refusals(pg):
    new_ledger(pg)  # the schema exists (whichever tests ran before): the refusal is about this dataset's ledger
    ds = _ds()
    with pytest.raises(LedgerError, match="no privacy ledger"):
        Ledger.open(pg(TRAINER), dataset=ds)
    L = Ledger.create(pg(OWNER), dataset=ds, epsilon=1.0, delta=1e-6, trainer=TRAINER)
    L.charge(rho=0.001, model="m", mechanism="g")
    again = Ledger.create(pg(OWNER), dataset=ds, epsilon=1.0, delta=1e-6)  # idempotent, keeps charges
    assert len(again.charges()) == 1
    with pytest.raises(LedgerError, match="never be changed"):
        Ledger.create(pg(OWNER), dataset=ds, epsilon=2.0, delta=1e-6)
    other_version = ds.split(":")[0] + ":sha256:ffff"
    with pytest.raises(LedgerError, match="another version"):
        Ledger.create(pg(OWNER), dataset=other_version, epsilon=1.0, delta=1e-6)
    with pytest.raises(LedgerError, match="another version"):
        Ledger.open(pg(TRAINER), dataset=other_version)
    with pytest.raises(LedgerError, match="several datasets"):
        Ledger.open(pg(TRAINER))  # the database holds many ledgers: the dataset must be named
    with pytest.raises(ValueError, match="finite"):
        Ledger.create(pg(OWNER), dataset=_ds(), epsilon=math.inf, delta=1e-6)
    with pytest.raises(ValueError, match="key= is for file ledgers"):
        Ledger.open(pg(TRAINER), dataset=ds, key=b"k" * 32)
    with pytest.raises(ValueError, match="trainer must be a PostgreSQL role"):
        Ledger.create(pg(OWNER), dataset=_ds(), epsilon=1.0, delta=1e-6, trainer="x; DROP TABLE y")
    with pytest.raises(LedgerError, match="no such role"):
        Ledger.create(pg(OWNER), dataset=_ds(), epsilon=1.0, delta=1e-6, trainer="nosuchrole")


def test_epsilon_inf_charge_refused(pg):
    L, _ = new_ledger(pg)
    for kw in ({"epsilon": math.inf}, {"rho": math.inf}, {"epsilon": math.nan}, {"rho": -0.1}):
        with pytest.raises(ValueError):
            L.charge(model="m", mechanism="g", **kw)
    assert L.charges() == []


def test_seed_reuse_refused_and_seed_never_stored(pg):
    L, ds = new_ledger(pg)
    seed = 987654321987
    L.charge(rho=0.001, model="m", mechanism="gaussian", seed=seed)
    assert not L.can_afford(rho=0.001, seed=seed) and L.can_afford(rho=0.001, seed=seed + 1)
    with pytest.raises(SeedReuseError, match="seed was already used"):
        Ledger.open(pg(TRAINER), dataset=ds).charge(rho=0.001, model="other", mechanism="g", seed=seed)
    assert len(L.charges()) == 1
    with psycopg.connect(pg(OWNER)) as con:  # the owner sees what is stored: a keyed digest, not the seed
        rows = con.execute("SELECT c::text FROM dprec.charges c JOIN dprec.ledgers l USING (ledger_id) "
                           "WHERE l.label = %s", (ds.split(":")[0],)).fetchall()  # fmt: skip
        stored = con.execute("SELECT l::text FROM dprec.ledgers l WHERE l.label = %s", (ds.split(":")[0],)).fetchone()
    assert len(rows) == 1 and str(seed) not in rows[0][0]
    assert ds not in stored[0] and "0123abcd" not in stored[0]  # the fingerprint is stored only as a digest


def test_bad_url_and_server_down_fail_closed(pg):
    for bad, why in (
        ("postgresql://u@/db?host=/nonexistent-dir&port=notaport", "not a valid PostgreSQL URL|cannot reach"),
        ("postgresql://u@localhost:5432", "names no database"),
        ("postgresql://u:s3cret@/db?host=/nonexistent-dir&port=5999", "cannot reach"),
    ):
        with pytest.raises(LedgerError, match=why) as ei:
            Ledger.open(bad, dataset=_ds())
        assert "s3cret" not in str(ei.value)
    # the server goes down: charging, reading and opening refuse (nothing drawn, nothing recorded)
    L, ds = new_ledger(pg)
    L.charge(epsilon=0.1, model="m", mechanism="g")
    pg.stop()
    try:
        with pytest.raises(LedgerError, match="cannot reach.*nothing was charged"):
            L.charge(epsilon=0.1, model="m", mechanism="g")
        with pytest.raises(LedgerError, match="cannot reach"):
            L.spent()
        with pytest.raises(LedgerError, match="cannot reach"):
            Ledger.open(pg(TRAINER), dataset=ds)
    finally:
        pg.start()
    assert L.spent().epsilon == 0.1 and len(L.charges()) == 1  # back up, the record intact
    with pytest.raises(LedgerError, match="may not read"):  # a role without grants cannot even read it
        Ledger.open(pg(OUTSIDER), dataset=ds)


# ------------------------------------------------------------------ (1) concurrency
def _charge_until_refused(url, ds, kind, cost, q, start):
    L = Ledger.open(url, dataset=ds)
    n = 0
    try:
        start.wait(60)  # every process has opened the ledger: they all start charging at once
        while True:
            L.charge(**{kind: cost}, model="m", mechanism="g", label=f"{os.getpid()}-{n}")
            n += 1
    except BudgetExceededError:
        q.put(n)
    except BaseException as e:  # noqa: BLE001 - report it to the parent
        q.put(repr(e))


def _concurrently(pg, ds, kind, cost, n_procs=8):
    ctx = mp.get_context("fork")
    q, start = ctx.Queue(), ctx.Barrier(n_procs)
    args = (pg(TRAINER), ds, kind, cost, q, start)
    procs = [ctx.Process(target=_charge_until_refused, args=args) for _ in range(n_procs)]
    for p in procs:
        p.start()
    counts = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert all(isinstance(c, int) for c in counts), counts
    return counts


def test_eight_concurrent_processes_never_exceed(pg):
    total, each = 3.0, 0.125  # both exact in binary: exactly floor(3 / 0.125) = 24 charges fit
    L, ds = new_ledger(pg, eps=total)
    counts = _concurrently(pg, ds, "epsilon", each)
    assert sum(counts) == math.floor(total / each) == 24 == len(L.charges())
    assert L.spent().epsilon == total
    assert [c["seq"] for c in L.charges()] == list(range(1, 25))
    assert sum(c > 0 for c in counts) >= 2  # the processes did interleave


def test_eight_concurrent_processes_zcdp_charges(pg):
    L, ds = new_ledger(pg, eps=1.0, delta=1e-6)
    rho = epsilon_to_rho(1.0, 1e-6) / 12.5
    # exactly how many such charges fit (the same fsum + conversion the ledger uses)
    fit = max(n for n in range(1, 40) if rho_to_epsilon(math.fsum([rho] * n), 1e-6) <= 1.0)
    counts = _concurrently(pg, ds, "rho", rho)
    assert sum(counts) == fit == 12 == len(L.charges())
    assert L.spent().epsilon <= 1.0


# ------------------------------------------------------------------ (2) a killed charger
def _charge_then_hang(url, ds, ready):
    """Charge, but stop just before COMMIT (the lock is held and dprec.charge has run), and hang."""
    import time

    L = Ledger.open(url, dataset=ds)

    def hang(self):
        ready.set()
        time.sleep(600)

    psycopg.Connection.commit = hang
    L.charge(epsilon=0.5, model="killed", mechanism="g")


def test_charger_killed_mid_transaction_leaves_no_partial_charge(pg):
    L, ds = new_ledger(pg, eps=1.0)
    L.charge(epsilon=0.25, model="m", mechanism="g")
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_charge_then_hang, args=(pg(TRAINER), ds, ready))
    p.start()
    assert ready.wait(60), "the child never reached the commit"
    with psycopg.connect(pg(OWNER), autocommit=True) as con:  # the child holds the ledger's lock right now
        locks = con.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()[0]
    assert locks == 1
    os.kill(p.pid, signal.SIGKILL)
    p.join(timeout=30)
    assert p.exitcode == -signal.SIGKILL
    after = Ledger.open(pg(TRAINER), dataset=ds)
    assert after.spent().epsilon == 0.25 and [c["model"] for c in after.charges()] == ["m"]
    after.charge(epsilon=0.75, model="m", mechanism="g")  # the lock was released: the ledger still works
    assert after.spent().epsilon == 1.0 and len(after.charges()) == 2


# ------------------------------------------------------------------ (3) the trainer cannot rewrite history
ATTACKS = {
    "update a charge": "UPDATE dprec.charges SET epsilon = 0 WHERE kind = 'approx'",
    "delete the charges": "DELETE FROM dprec.charges",
    "truncate": "TRUNCATE dprec.charges CASCADE",
    "insert directly": "INSERT INTO dprec.charges (ledger_id, seq, kind, rho, epsilon, delta, model, mechanism, "
    "label, params) SELECT ledger_id, 99, 'approx', NULL, 0, 0, 'm', 'g', '', '{}' FROM dprec.ledgers",
    "reset the head": "UPDATE dprec.ledgers SET n_charges = 0",
    "raise the total": "UPDATE dprec.ledgers SET total_epsilon = 100",
    "delete the ledger": "DELETE FROM dprec.ledgers",
    "plant a trigger": "CREATE TRIGGER t BEFORE INSERT ON dprec.charges FOR EACH ROW EXECUTE FUNCTION pg_temp.f()",
    "plant a rule": "CREATE RULE r AS ON INSERT TO dprec.charges DO INSTEAD NOTHING",
    "hide rows": "ALTER TABLE dprec.charges ENABLE ROW LEVEL SECURITY",
    "drop the table": "DROP TABLE dprec.charges CASCADE",
    "replace the function": "CREATE OR REPLACE FUNCTION dprec.lock(p_ledger_id text) RETURNS void "
    "LANGUAGE sql AS 'SELECT NULL'",
    "add a table": "CREATE TABLE dprec.x (i int)",
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_trainer_cannot_rewrite_history(pg, name):
    L, ds = new_ledger(pg, eps=1.0)
    for _ in range(3):
        L.charge(epsilon=0.25, model="m", mechanism="g")
    before = L.spent()
    with psycopg.connect(pg(TRAINER)) as con:
        con.execute(
            "CREATE FUNCTION pg_temp.f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'"
        )  # a temp function the trainer may create, for the trigger attempt
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute(ATTACKS[name])
        con.rollback()
    assert L.spent() == before and len(L.charges()) == 3
    L.charge(epsilon=0.25, model="m", mechanism="g")  # still works; and the budget still holds
    with pytest.raises(BudgetExceededError):
        L.charge(epsilon=0.25, model="m", mechanism="g")


def test_charge_function_backstop_refuses_bypassing_the_client_check(pg):
    """A client that skips the Python check and calls dprec.charge directly: a stale sequence number, an
    over-budget charge and an invalid record are refused by the server; nothing is recorded."""
    L, _ = new_ledger(pg, eps=1.0)
    L.charge(epsilon=0.5, model="m", mechanism="g")
    lid = L._header["ledger_id"]
    call = "SELECT dprec.charge(%s, %s, %s, %s, %s, %s, 'm', 'g', '', '{}', NULL)"
    with psycopg.connect(pg(TRAINER)) as con:
        for args, err in (
            ((lid, 1, "approx", None, 0.1, 0.0), "DPL02"),  # rewind: overwrite charge #1
            ((lid, 5, "approx", None, 0.1, 0.0), "DPL02"),  # skip ahead
            ((lid, 2, "approx", None, 0.6, 0.0), "DPL03"),  # over the total ε
            ((lid, 2, "zcdp", 10.0, None, 0.0), "DPL03"),  # ρ far past the cap
            ((lid, 2, "approx", None, -1.0, 0.0), "23514"),  # negative ε: CHECK constraint
            ((lid, 2, "approx", None, float("nan"), 0.0), "23514"),
            ((lid, 2, "erasure", None, 0.0, 0.5), "23514"),  # an erasure that costs δ
        ):
            with pytest.raises(psycopg.Error) as ei:
                con.execute(call, args)
            assert ei.value.sqlstate == err, (args, ei.value)
            con.rollback()
    assert L.spent().epsilon == 0.5 and len(L.charges()) == 1


def test_charge_function_backstop_bounds_mixed_composition(pg):
    """The server's ρ cap follows the (ε, δ) spent: after ε_approx = 0.5 of ε_T = 1, a direct zCDP charge worth
    ε = 0.9 is refused (the old single cap ρ(ε_T) let it through: 1.4 spent), while the largest charge the
    client accepts still passes; the grid bounds any record the server accepts by ε_T (1 + 1/64) at 2 δ_T."""
    from dprec.privacy.ledger_postgres import rho_caps

    delta = 1e-6
    L, _ = new_ledger(pg, eps=1.0, delta=delta)
    L.charge(epsilon=0.5, model="m", mechanism="g")
    lid = L._header["ledger_id"]
    call = "SELECT dprec.charge(%s, %s, 'zcdp', %s, NULL, 0.0, 'm', 'g', '', '{}', NULL)"
    with psycopg.connect(pg(TRAINER)) as con:
        with pytest.raises(psycopg.Error) as ei:
            con.execute(call, (lid, 2, epsilon_to_rho(0.9, delta)))
        assert ei.value.sqlstate == "DPL03"
        con.rollback()
    assert len(L.charges()) == 1
    L.charge(rho=L.remaining().rho, model="m", mechanism="g")  # the client's exact remaining ρ: accepted
    assert L.spent().epsilon == pytest.approx(1.0, abs=1e-6)
    caps = rho_caps(1.0, delta)
    assert len(caps) == 65 and caps[-1] == 0.0 and all(a > b for a, b in zip(caps, caps[1:]))
    for i in (0, 17, 63):  # within a cap, the worst record spends < ε_T (1 + 1/64) at δ_T for the zCDP part
        worst = (i + 1) / 64 + rho_to_epsilon(caps[i] / (1 + 1e-6), delta)
        assert worst <= 1.0 + 1 / 64 + 1e-9


def test_owner_planted_trigger_refused_on_open_and_charge(pg):
    """The trainer cannot plant a trigger; if the owner (or a superuser) does, dprec refuses the ledger."""
    L, ds = new_ledger(pg, dbname="dprec_tamper")
    with psycopg.connect(pg(OWNER, "dprec_tamper")) as con:
        con.execute("CREATE FUNCTION dprec.f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'")
        con.execute("CREATE TRIGGER t BEFORE INSERT ON dprec.charges FOR EACH ROW EXECUTE FUNCTION dprec.f()")
    with pytest.raises(LedgerError, match="not dprec's.*1 trigger"):
        Ledger.open(pg(TRAINER, "dprec_tamper"), dataset=ds)
    with pytest.raises(LedgerError, match="not dprec's"):
        L.charge(epsilon=0.1, model="m", mechanism="g")
    with psycopg.connect(pg(OWNER, "dprec_tamper")) as con:
        con.execute("DROP TRIGGER t ON dprec.charges")
    with pytest.raises(LedgerError, match="functions are not dprec's"):  # the extra function dprec.f
        L.charge(epsilon=0.1, model="m", mechanism="g")
    with psycopg.connect(pg(OWNER, "dprec_tamper")) as con:
        con.execute("DROP FUNCTION dprec.f()")
        con.execute("CREATE VIEW dprec.charges_view AS SELECT * FROM dprec.charges")
    with pytest.raises(LedgerError, match="unexpected relations"):
        L.charge(epsilon=0.1, model="m", mechanism="g")
    with psycopg.connect(pg(OWNER, "dprec_tamper")) as con:
        con.execute("DROP VIEW dprec.charges_view")
    L.charge(epsilon=0.1, model="m", mechanism="g")  # dprec's schema again: accepted
    assert L.spent().epsilon == pytest.approx(0.1) and len(L.charges()) == 1


# ------------------------------------------------------------------ the command line
def test_cli_budget_init_train_show_with_a_url(pg, tmp_path, monkeypatch, capsys):
    from dprec.cli import main

    monkeypatch.chdir(tmp_path)
    dbname = "dprec_cli"
    with psycopg.connect(pg("postgres", "postgres"), autocommit=True) as con:
        con.execute(f"CREATE DATABASE {dbname} OWNER {OWNER}")
    src = ("--synthetic", "ratings")
    init = ("budget", "init", *src, "--epsilon", "2", "--delta", "1e-5", "--ledger")
    assert main([*init, pg(OWNER, dbname), "--trainer-role", TRAINER]) == 0
    out = capsys.readouterr().out
    assert "privacy ledger postgresql://dprec_owner@/dprec_cli" in out and "no charges yet" in out
    assert main([*init, "l.sqlite", "--trainer-role", TRAINER]) == 2  # a file ledger has no roles
    assert "--trainer-role applies to a PostgreSQL ledger" in capsys.readouterr().err
    train = ("train", *src, "--model", "dp-baseline", "--epsilon", "1", "--delta", "1e-5", "--out", "m.npz")
    assert main([*train, "--ledger", pg(TRAINER, dbname)]) == 0
    capsys.readouterr()
    assert main(["budget", "show", "--ledger", pg(TRAINER, dbname), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (
        shown["spent_epsilon"] == pytest.approx(1.0, abs=1e-6)
        and shown["n_charges"] >= 1
        and shown["path"].startswith("postgresql://")
    )
    # forget records its erasure in the server ledger (a URL is not a file path)
    (tmp_path / "users.txt").write_text("0\n")
    assert main(["forget", "m.npz", "--users", "users.txt", "--ledger", pg(TRAINER, dbname)]) == 0
    capsys.readouterr()
    assert main(["budget", "show", "--ledger", pg(TRAINER, dbname), "--format", "json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["spent_epsilon"] == pytest.approx(shown["spent_epsilon"], abs=1e-12)
    assert after["n_charges"] == shown["n_charges"] + 1  # the zero-cost erasure record
    assert main([*train, "--ledger", pg(OUTSIDER, dbname)]) == 3  # a role without grants: refused, exit 3
    assert "may not read" in capsys.readouterr().err
    assert main(["budget", "show", "--ledger", "postgresql://x@/nodb?host=/nonexistent&port=1"]) == 3
    assert "cannot reach" in capsys.readouterr().err
    for with_password in ("postgresql://u:s3cret@/db", "postgresql://u@/db?password=s3cret"):
        for argv in (["budget", "show", "--ledger", with_password], [*train, "--ledger", with_password]):
            assert main(argv) == 2  # usage error: a password on the command line is refused before any use
            err = capsys.readouterr().err
            assert "~/.pgpass" in err and "--ledger" in err and "s3cret" not in err
