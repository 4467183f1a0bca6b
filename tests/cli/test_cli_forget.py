"""`dprec forget MODEL --users FILE [--ledger PATH]` and the consent flags `--opted-out` / `--consent-col`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dprec.cli import main
from dprec.models import Recommender
from dprec.privacy import Ledger

SECRET = 987654321  # an integer id that cannot occur by chance in the file


@pytest.fixture
def shop(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = np.random.default_rng(0)
    users = [*range(60), SECRET]
    rows = [(u, int(i), int(g.integers(1, 6))) for u in users for i in g.choice(40, 12, replace=False)]
    df = pd.DataFrame(rows, columns=["user", "item", "rating"])
    df["consent"] = (df["user"] != SECRET).astype(int)
    df.to_csv("r.csv", index=False)
    (tmp_path / "gone.txt").write_text(f"# users who asked to be forgotten\n{SECRET}\n\n")
    return tmp_path


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


SRC = ("--ratings", "r.csv", "--rating-bounds", "1,5")
DP = ("--epsilon", "4", "--delta", "1e-5")


def _train(capsys, *extra, out="m.npz"):
    rc, o, e = _run(capsys, "train", *SRC, "--model", "dpals", *DP, "--seed", "3", "--no-ledger", "--out", out, *extra)
    assert rc == 0, e
    return Recommender.load(out)


def test_forget_command_removes_the_user_and_records_the_erasure(shop, capsys):
    rc, _, err = _run(capsys, "budget", "init", *SRC, "--epsilon", "10", "--delta", "1e-5", "--ledger", "l.sqlite")
    assert rc == 0, err
    model = _train(capsys)
    assert SECRET in model.user_ids.tolist()
    n = len(model.user_ids)

    rc, out, err = _run(capsys, "forget", "m.npz", "--users", "gone.txt", "--ledger", "l.sqlite", "--format", "json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["erased"] == 1 and res["erasure"]["retrain_due"]["due"] is True
    after = Recommender.load("m.npz")  # in place
    assert SECRET not in after.user_ids.tolist() and len(after.user_ids) == n - 1
    arrays = np.load("m.npz", allow_pickle=False)
    for k in arrays.files:
        a = arrays[k]
        assert not (a.dtype.kind in "iu" and (a == SECRET).any()), k
    assert str(SECRET) not in bytes(arrays["__manifest__"]).decode()
    assert after.privacy_report()["erasure"]["retrain_due"]["due"] is True

    led = Ledger.open("l.sqlite")
    (rec,) = [c for c in led.charges() if c["kind"] == "erasure"]
    assert rec["model"] == "DPALS" and rec["params"] == {} and rec["label"] == ""
    assert rec["epsilon"] == 0 and rec["delta"] == 0 and rec["rho"] is None
    assert led.spent().epsilon == 0  # an erasure costs nothing
    text = json.dumps(led.public_summary())
    assert str(SECRET) not in text and '"erased"' not in text

    # the report shows the note; the ledger views list the record
    rc, out, _ = _run(capsys, "report", "m.npz", "--format", "json")
    assert rc == 0 and json.loads(out)["privacy"]["erasure"]["item_side"]
    rc, out, err = _run(capsys, "report", "m.npz", "--ledger", "l.sqlite")
    assert rc == 0, err
    assert "erasure" in out and str(SECRET) not in out
    rc, out, err = _run(capsys, "budget", "show", "--ledger", "l.sqlite")
    assert rc == 0 and "erasure" in out, err


def test_forget_text_output_and_out_path(shop, capsys):
    _train(capsys)
    rc, out, err = _run(capsys, "forget", "m.npz", "--users", "gone.txt", "--out", "m2.npz")
    assert rc == 0, err
    assert "erased 1 of the 1 listed user(s)" in out and "retrain due" in out and "not recorded" in out
    assert SECRET in Recommender.load("m.npz").user_ids.tolist()  # the original is untouched with --out
    assert SECRET not in Recommender.load("m2.npz").user_ids.tolist()


def test_forget_of_unknown_users_changes_and_records_nothing(shop, capsys):
    rc, _, err = _run(capsys, "budget", "init", *SRC, "--epsilon", "10", "--delta", "1e-5", "--ledger", "l.sqlite")
    assert rc == 0, err
    _train(capsys)
    (shop / "strangers.txt").write_text("123456\n")
    rc, out, err = _run(capsys, "forget", "m.npz", "--users", "strangers.txt", "--ledger", "l.sqlite")
    assert rc == 0, err
    assert "erased 0 of the 1 listed" in out and "nothing to record" in out
    assert [c["kind"] for c in Ledger.open("l.sqlite").charges()] == []
    assert Recommender.load("m.npz").erasure_report() is None


def test_forget_refuses_bad_input(shop, capsys):
    _train(capsys, "--export-public", "pub.npz")
    rc, _, err = _run(capsys, "forget", "pub.npz", "--users", "gone.txt")
    assert rc == 2 and "holds no user data" in err
    rc, _, err = _run(capsys, "forget", "m.npz", "--users", "nope.txt")
    assert rc == 2 and "--users: users file not found" in err
    (shop / "empty.txt").write_text("# nobody\n")
    rc, _, err = _run(capsys, "forget", "m.npz", "--users", "empty.txt")
    assert rc == 2 and "lists no user" in err
    (shop / "words.txt").write_text("alice\n")
    rc, _, err = _run(capsys, "forget", "m.npz", "--users", "words.txt")
    assert rc == 2 and "not an integer" in err
    (shop / "bad.sqlite").write_text("not a ledger")
    rc, _, err = _run(capsys, "forget", "m.npz", "--users", "gone.txt", "--ledger", "bad.sqlite")
    assert rc == 3
    assert SECRET in Recommender.load("m.npz").user_ids.tolist()  # a bad ledger refuses before any change


def test_opted_out_and_consent_flags_keep_the_user_out_of_training(shop, capsys):
    never_df = pd.read_csv("r.csv")
    never_df[never_df["user"] != SECRET].to_csv("never.csv", index=False)
    opted = _train(capsys, "--opted-out", "gone.txt", out="a.npz")
    consent = _train(capsys, "--consent-col", "consent", out="b.npz")
    rc, _, err = _run(
        capsys, "train", "--ratings", "never.csv", "--rating-bounds", "1,5", "--model", "dpals", *DP,
        "--seed", "3", "--no-ledger", "--out", "c.npz",
    )  # fmt: skip
    assert rc == 0, err
    never = Recommender.load("c.npz")
    for m in (opted, consent):
        assert SECRET not in m.user_ids.tolist()
        np.testing.assert_array_equal(m.user_ids, never.user_ids)
        np.testing.assert_array_equal(m.item_factors_, never.item_factors_)
        np.testing.assert_array_equal(m.user_factors_, never.user_factors_)
    rc, _, err = _run(
        capsys, "train", "--synthetic", "ratings", "--consent-col", "c", "--model", "als", "--out", "x.npz"
    )
    assert rc == 2 and "--consent-col applies to --ratings files" in err
