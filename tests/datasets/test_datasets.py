"""Dataset registry, loaders (real ML-100K when available, fake folders otherwise) and the generator."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pooch
import pytest
import requests

import dprec
from dprec.datasets import DATASETS, dataset_checksum, list_datasets, load_dataset, loaders, synthetic
from dprec.datasets.loaders import get_data_home
from dprec.errors import CorruptFileError

synthetic_module = importlib.import_module("dprec.datasets.synthetic")  # the name is shadowed by the function

ML100K_U_DATA_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"


# --------------------------------------------------------------------------- registry
def test_registry_entries():
    assert set(DATASETS) == {"ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest-small"}
    for name, spec in DATASETS.items():
        assert spec.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert spec.archive_sha256 or spec.archive_md5  # every archive can be verified
        assert "Harper" in spec.citation and "redistribute" in spec.licence
        expected = (1.0, 5.0) if name in ("ml-100k", "ml-1m") else (0.5, 5.0)
        assert spec.rating_bounds == expected
    assert DATASETS["ml-100k"].ratings_sha256 == ML100K_U_DATA_SHA256
    assert DATASETS["ml-10m"].archive_folder == "ml-10M100K"
    with pytest.raises(TypeError):
        DATASETS["x"] = None  # read-only


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'ml-3m'; known datasets: ml-100k"):
        load_dataset("ml-3m")


def test_data_home_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("DPREC_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_data_home(tmp_path / "arg") == tmp_path / "arg"
    assert get_data_home() == tmp_path / "env"
    monkeypatch.delenv("DPREC_DATA")
    assert get_data_home() == tmp_path / "xdg" / "dprec"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert get_data_home() == Path.home() / ".cache" / "dprec"


def test_list_datasets(tmp_path):
    rows = list_datasets(data_home=tmp_path)
    assert [r["name"] for r in rows] == list(DATASETS)
    assert all(r["available"] is False for r in rows)
    assert {"url", "rating_bounds", "licence", "archive_sha256", "path"} <= set(rows[0])


# --------------------------------------------------------------------------- missing / offline
def test_missing_dataset_message(tmp_path, monkeypatch):
    monkeypatch.delenv("DPREC_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as exc:
        load_dataset("ml-1m", data_home=tmp_path)
    msg = str(exc.value)
    assert str(tmp_path / "ml-1m" / "ratings.dat") in msg
    assert "download=True" in msg and "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in msg
    assert "DPREC_DATA" in msg
    with pytest.raises(FileNotFoundError, match="ml-100k"):
        dataset_checksum("ml-100k", data_home=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written without download=True


def test_offline_download_fails_clearly(tmp_path, monkeypatch):
    def offline(self, url, output_file, pooch_obj, check_only=False):
        raise requests.exceptions.ConnectionError("no network")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", offline)  # what pooch raises with no network
    with pytest.raises(FileNotFoundError, match=r"(?s)Download from .*ml-100k.zip failed.*unpack it"):
        load_dataset("ml-100k", data_home=tmp_path, download=True)
    assert not (tmp_path / "ml-100k").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # temp files cleaned up


# --------------------------------------------------------------------------- fake folders
def _write_fake_ml100k(folder: Path, n_ratings: int = 50) -> None:
    """A tiny *fake* dataset in ML-100K's file format (no MovieLens data)."""
    folder.mkdir(parents=True)
    lines = [f"{1 + k % 5}\t{1 + k % 7}\t{1 + k % 5}\t{880000000 + k}" for k in range(n_ratings)]
    (folder / "u.data").write_text("\n".join(dict.fromkeys(lines)) + "\n")
    flags = "|".join(["0"] * 19)
    (folder / "u.item").write_text(
        "".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|{flags}\n" for i in range(1, 9)), encoding="latin-1"
    )
    (folder / "u.user").write_text("".join(f"{u}|30|M|other|0000{u}\n" for u in range(1, 6)))


def test_checksum_mismatch_detected(tmp_path):
    _write_fake_ml100k(tmp_path / "ml-100k")
    with pytest.raises(CorruptFileError, match=r"checksum mismatch for .*u\.data.*re-download"):
        load_dataset("ml-100k", data_home=tmp_path)
    # dataset_checksum reports the file's actual hash (what result files record)
    digest = hashlib.sha256((tmp_path / "ml-100k" / "u.data").read_bytes()).hexdigest()
    assert dataset_checksum("ml-100k", data_home=tmp_path) == digest


def test_row_count_mismatch_detected(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1::5::978300760\n2::1::3::978300761\n")
    (folder / "movies.dat").write_text("1::Toy Story (1995)::Animation|Children's|Comedy\n")
    with pytest.raises(CorruptFileError, match="has 2 ratings but ml-1m has 1000209"):
        load_dataset("ml-1m", data_home=tmp_path)


def test_parsers_on_fake_files(tmp_path, monkeypatch):
    """The '::' and CSV formats parse into the expected Interactions (registry row counts patched)."""
    colon = tmp_path / "ml-10M100K"  # archive folder name is accepted as well as <name>
    colon.mkdir()
    (colon / "ratings.dat").write_text("1::122::5::838985046\n1::185::4.5::838983525\n7::122::0.5::838983421\n")
    (colon / "movies.dat").write_text(
        "122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action\n999::Unrated: A Movie (2000)::Drama\n"
    )
    csv = tmp_path / "ml-latest-small"
    csv.mkdir()
    (csv / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n2,3,0.5,964981247\n")
    (csv / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
        '3,"Grumpier Old Men, The (1995)",Comedy|Romance\n4,Other (1996),Drama\n'
    )
    patched = dict(DATASETS)
    patched["ml-10m"] = dataclasses.replace(DATASETS["ml-10m"], n_ratings=3)
    patched["ml-latest-small"] = dataclasses.replace(DATASETS["ml-latest-small"], n_ratings=2)
    monkeypatch.setattr("dprec.datasets.registry.DATASETS", patched)
    monkeypatch.setattr(loaders, "DATASETS", patched)

    d = load_dataset("ml-10m", data_home=tmp_path)
    assert d.shape == (2, 3) and d.public_items and d.rating_bounds == (0.5, 5.0)
    assert d.item_ids.tolist() == [122, 185, 999]  # catalog, including the unrated movie
    assert d.user_ratings(1)[1].tolist() == [5.0, 4.5]
    assert d.side["items"].loc[999, "title"] == "Unrated: A Movie (2000)"
    assert "users" not in d.side
    e = load_dataset("ml-latest-small", data_home=tmp_path)
    assert e.shape == (2, 3) and e.timestamps.tolist() == [964982703, 964981247]
    assert e.side["items"].loc[3, "title"] == "Grumpier Old Men, The (1995)"


def _fake_zip(folder_name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{folder_name}/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n2,1,3.0,2\n")
        zf.writestr(f"{folder_name}/movies.csv", "movieId,title,genres\n1,A (1990),Drama\n")
    return buf.getvalue()


def _copying_downloader(source: Path, calls: list):
    """A pooch downloader that copies a local file (no network): ``callable(url, output_file, pooch)``."""

    def download(url, output_file, pooch_obj):
        calls.append(url)
        shutil.copyfile(source, output_file)

    return download


def test_download_verifies_and_installs_atomically(tmp_path):
    payload = _fake_zip("ml-latest-small")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "archive.zip").write_bytes(payload)
    home = tmp_path / "home"
    calls: list = []
    fetch = _copying_downloader(tmp_path / "src" / "archive.zip", calls)
    spec = DATASETS["ml-latest-small"]
    # wrong checksum: refused, nothing installed, temporaries removed
    with pytest.raises(CorruptFileError, match="does not match its sha256 checksum .*nothing was installed"):
        loaders._download(spec, home, downloader=fetch)
    assert list(home.iterdir()) == []
    assert calls == [spec.url]
    good = dataclasses.replace(spec, archive_sha256=hashlib.sha256(payload).hexdigest(), n_ratings=2)
    folder = loaders._download(good, home, downloader=fetch)
    assert folder == home / "ml-latest-small"
    assert sorted(p.name for p in folder.iterdir()) == ["movies.csv", "ratings.csv"]
    assert [p.name for p in home.iterdir()] == ["ml-latest-small"]  # archive and temporaries removed


def test_download_md5_only_archive_and_load_dataset(tmp_path, monkeypatch):
    """ml-10m's registry row has only an MD5: pooch verifies it ("md5:..."); load_dataset downloads only when
    asked, then loads the installed folder without downloading again."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-10M100K/ratings.dat", "1::122::5::838985046\n2::185::4.5::838983525\n")
        zf.writestr("ml-10M100K/movies.dat", "122::Boomerang (1992)::Comedy\n185::Net, The (1995)::Action\n")
    payload = buf.getvalue()
    (tmp_path / "archive.zip").write_bytes(payload)
    spec = dataclasses.replace(DATASETS["ml-10m"], archive_md5=hashlib.md5(payload).hexdigest(), n_ratings=2)
    assert spec.archive_sha256 is None
    patched = {**DATASETS, "ml-10m": spec}
    monkeypatch.setattr("dprec.datasets.registry.DATASETS", patched)
    monkeypatch.setattr(loaders, "DATASETS", patched)
    calls: list = []
    fetch = _copying_downloader(tmp_path / "archive.zip", calls)
    real_download = loaders._download
    monkeypatch.setattr(loaders, "_download", lambda spec, home: real_download(spec, home, downloader=fetch))
    home = tmp_path / "home"
    with pytest.raises(FileNotFoundError):
        load_dataset("ml-10m", data_home=home)
    assert calls == [] and not home.exists()
    d = load_dataset("ml-10m", data_home=home, download=True)
    assert d.shape == (2, 2) and calls == [spec.url]
    assert [p.name for p in home.iterdir()] == ["ml-10m"]
    load_dataset("ml-10m", data_home=home, download=True)  # present: no second download
    assert calls == [spec.url]
    bad = dataclasses.replace(spec, archive_md5="0" * 32)
    with pytest.raises(CorruptFileError, match="md5"):
        real_download(bad, tmp_path / "other", downloader=fetch)


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_load_ml100k(ml100k_dir):
    d = load_dataset("ml-100k", data_home=ml100k_dir.parent)
    assert (d.n_users, d.n_items, d.nnz) == (943, 1682, 100_000)
    assert d.rating_bounds == (1.0, 5.0) and d.public_items is True and d.name == "ml-100k"
    assert d.timestamps is not None and d.timestamps.shape == (100_000,)
    assert d.user_ids[:3].tolist() == [1, 2, 3] and d.item_ids[-1] == 1682
    users, items = d.side["users"], d.side["items"]
    assert users.shape[0] == 943 and {"age", "gender", "occupation", "zip"} <= set(users.columns)
    assert users.loc[1, "occupation"] == "technician"
    assert items.shape[0] == 1682 and items.loc[1, "title"] == "Toy Story (1995)"
    assert items.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert set(np.unique(d.matrix.data)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert dataset_checksum("ml-100k", data_home=ml100k_dir.parent) == ML100K_U_DATA_SHA256
    row = {r["name"]: r for r in list_datasets(ml100k_dir.parent)}["ml-100k"]
    assert row["available"] is True


@pytest.mark.realdata
def test_load_ml100k_via_env(ml100k_dir, monkeypatch):
    monkeypatch.setenv("DPREC_DATA", str(ml100k_dir.parent))
    assert load_dataset("ml-100k").nnz == 100_000


# --------------------------------------------------------------------------- synthetic
def test_synthetic_shapes_bounds_truth():
    d = synthetic(400, 300, 6, mean_ratings_per_user=25, rng=0)
    assert d.shape == (400, 300) and d.public_items is True and d.rating_bounds == (1.0, 5.0)
    m = d.matrix
    assert m.has_canonical_format  # sorted, no duplicate pairs
    assert np.diff(m.indptr).min() >= 1  # every user rates something
    assert 0.9 * 25 < d.nnz / 400 < 1.1 * 25
    assert set(np.unique(m.data)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    t = d.side["truth"]
    assert t["user_factors"].shape == (400, 6) and t["item_factors"].shape == (300, 6)
    assert t["user_factors"].dtype == np.float32 and t["item_bias"].shape == (300,)
    # ratings track the ground truth (noise sd 0.5 + rounding/clipping)
    coo = m.tocoo()
    truth = (
        t["global_mean"]
        + t["user_bias"][coo.row]
        + t["item_bias"][coo.col]
        + np.einsum("ij,ij->i", t["user_factors"][coo.row], t["item_factors"][coo.col])
    )
    assert np.corrcoef(truth, coo.data)[0, 1] > 0.6
    assert 3.0 < m.data.mean() < 4.0


def test_synthetic_half_star_and_continuous():
    d = synthetic(100, 80, rating_bounds=(0.5, 5), rng=1)
    assert d.rating_bounds == (0.5, 5.0) and np.all(np.mod(d.matrix.data * 2, 1) == 0)
    assert d.matrix.data.min() >= 0.5 and d.matrix.data.max() <= 5
    c = synthetic(100, 80, round_ratings=False, rng=1)
    assert len(np.unique(c.matrix.data)) > 100


def test_synthetic_deterministic():
    a = synthetic(200, 100, 4, rng=5)
    b = synthetic(200, 100, 4, rng=np.random.default_rng(5))
    c = synthetic(200, 100, 4, rng=6)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert np.array_equal(a.side["truth"]["item_factors"], b.side["truth"]["item_factors"])


def test_synthetic_power_law_popularity():
    d = synthetic(2000, 1000, mean_ratings_per_user=40, rng=0)
    counts = np.sort(np.bincount(d.matrix.indices, minlength=d.n_items))[::-1]
    assert counts[:100].sum() / d.nnz > 0.35  # top 10% of items; uniform popularity would give ~0.1
    activity = np.sort(np.diff(d.matrix.indptr))[::-1]
    assert activity[0] > 4 * np.median(activity)  # heavy-tailed user activity
    flat = synthetic(2000, 1000, mean_ratings_per_user=40, popularity_exponent=0, rng=0)
    fc = np.sort(np.bincount(flat.matrix.indices, minlength=1000))[::-1]
    assert fc[:100].sum() / flat.nnz < 0.15


def test_synthetic_density_and_implicit():
    d = synthetic(500, 200, density=0.05, rng=0)
    assert abs(d.nnz / (500 * 200) - 0.05) < 0.01
    b = synthetic(500, 200, implicit=True, rng=0)
    assert np.all(b.matrix.data == 1.0) and b.rating_bounds == (0.0, 1.0)
    assert np.diff(b.matrix.indptr).min() >= 1
    # interactions follow the latent affinity: observed pairs score higher than random pairs
    t = b.side["truth"]
    coo = b.matrix.tocoo()
    obs = np.einsum("ij,ij->i", t["user_factors"][coo.row], t["item_factors"][coo.col]) + t["item_bias"][coo.col]
    rng = np.random.default_rng(0)
    ru, ri = rng.integers(0, 500, 5000), rng.integers(0, 200, 5000)
    rnd = np.einsum("ij,ij->i", t["user_factors"][ru], t["item_factors"][ri]) + t["item_bias"][ri]
    assert obs.mean() > rnd.mean() + 0.1
    c = synthetic(300, 100, implicit="count", rng=0)
    assert c.rating_bounds is None and c.matrix.data.min() >= 1 and c.matrix.data.max() > 1


# fingerprints of the default (exposure="popularity") generator recorded before the exposure keyword was
# added: committed sweeps depend on these exact draws
_DEFAULT_FINGERPRINTS = [
    ({"rng": 0}, "db5378887d036ac89fec9da10e30fd86004421cf0f59ac516ff11d5fd97d2401"),
    ({"implicit": True, "rng": 1}, "c015710309129090f20f2313ca501280e3bee780eb94ecf89da6a6737c988cf2"),
    (
        {"implicit": "count", "timestamps": True, "rng": 2},
        "140da9f03d8ca833cad1735f385ce1416e320e7a74ecc7426fcd249f1bf5a164",
    ),
]


@pytest.mark.parametrize("kwargs, fingerprint", _DEFAULT_FINGERPRINTS)
def test_synthetic_default_exposure_unchanged(kwargs, fingerprint):
    assert synthetic(300, 200, 4, **kwargs).fingerprint() == fingerprint
    assert synthetic(300, 200, 4, exposure="popularity", **kwargs).fingerprint() == fingerprint


def _true_affinity(d, rows, cols):
    t = d.side["truth"]
    return np.einsum("ij,ij->i", t["user_factors"][rows], t["item_factors"][cols])


def test_synthetic_affinity_exposure_reproducible_and_sized():
    kw = dict(mean_ratings_per_user=30, implicit=True, exposure="affinity")
    a = synthetic(600, 300, 6, rng=3, **kw)
    b = synthetic(600, 300, 6, rng=np.random.default_rng(3), **kw)
    c = synthetic(600, 300, 6, rng=4, **kw)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert a.matrix.has_canonical_format and np.diff(a.matrix.indptr).min() >= 1
    assert np.all(a.matrix.data == 1.0) and 0.9 * 30 < a.nnz / 600 < 1.1 * 30  # no thinning: counts on target
    p = a.side["truth"]["params"]
    assert p["exposure"] == "affinity" and p["affinity_strength"] == synthetic_module.AFFINITY_STRENGTH
    # the default mode's truth is the same draw (factors come before exposure)
    base = synthetic(600, 300, 6, rng=3, mean_ratings_per_user=30, implicit=True)
    assert np.array_equal(a.side["truth"]["user_factors"], base.side["truth"]["user_factors"])
    assert base.side["truth"]["params"]["affinity_strength"] is None
    # explicit ratings and counts work too
    e = synthetic(300, 200, 4, exposure="affinity", affinity_strength=1.0, rng=0)
    assert e.rating_bounds == (1.0, 5.0) and set(np.unique(e.matrix.data)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    n = synthetic(300, 200, 4, implicit="count", exposure="affinity", rng=0)
    assert n.matrix.data.min() >= 1 and n.matrix.data.max() > 1
    # a heavy user is clipped at probability 1 (water-filling) and still gets their expected count
    h = synthetic(50, 60, 4, mean_ratings_per_user=40, activity_exponent=0, exposure="affinity", rng=0)
    assert 0.9 * 40 < h.nnz / 50 < 1.1 * 40


def test_synthetic_affinity_exposure_follows_true_factors():
    kw = dict(mean_ratings_per_user=30, implicit=True, rng=0)
    rng = np.random.default_rng(0)
    ru, ri = rng.integers(0, 1000, 20000), rng.integers(0, 400, 20000)
    gaps = {}
    for exposure in ("popularity", "affinity"):
        d = synthetic(1000, 400, 8, exposure=exposure, **kw)
        coo = d.matrix.tocoo()
        sd = float(_true_affinity(d, ru, ri).std())
        gaps[exposure] = (_true_affinity(d, coo.row, coo.col).mean() - _true_affinity(d, ru, ri).mean()) / sd
    assert gaps["affinity"] > 0.9  # interacted items: ~1.2 sd above random items in true affinity
    assert gaps["affinity"] > 2 * gaps["popularity"]
    strong = synthetic(1000, 400, 8, exposure="affinity", affinity_strength=2.5, **kw)
    none = synthetic(1000, 400, 8, exposure="affinity", affinity_strength=0.0, **kw)
    g = [_true_affinity(x, *x.matrix.nonzero()).mean() for x in (none, strong)]
    assert abs(g[0]) < 0.05 * sd < g[1]


def test_synthetic_affinity_exposure_rewards_personalisation():
    ratios = {}
    for exposure in ("popularity", "affinity"):
        d = synthetic(1000, 400, 8, mean_ratings_per_user=40, implicit=True, exposure=exposure, rng=0)
        train, test = dprec.split.user_holdout(d, 0.2, rng=0)
        pop = dprec.evaluate(dprec.Popularity().fit(train), train, test, k=10)["ndcg_at_k"]
        als = dprec.ALS(feedback="implicit", factors=32, iterations=8, alpha=1.0, rng=0).fit(train)
        ratios[exposure] = dprec.evaluate(als, train, test, k=10)["ndcg_at_k"] / pop
        assert pop > 0.05  # popularity stays a real baseline
    assert ratios["affinity"] > 1.2 and ratios["affinity"] > ratios["popularity"] + 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_users": 0}, "n_users"),
        ({"exposure": "random"}, "exposure"),
        ({"affinity_strength": 1.0}, "affinity_strength"),
        ({"exposure": "affinity", "affinity_strength": -1}, "affinity_strength"),
        ({"rank": 2.5}, "rank"),
        ({"density": 0.05, "mean_ratings_per_user": 3}, "not both"),
        ({"density": 1.5}, "density"),
        ({"mean_ratings_per_user": 1000}, "exceeds"),
        ({"implicit": "yes"}, "implicit"),
        ({"rating_bounds": (5, 1)}, "rating_bounds"),
        ({"noise": -1}, "noise"),
    ],
)
def test_synthetic_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic(**{"n_users": 50, "n_items": 40, **kwargs})


def test_synthetic_medium_is_fast():
    t0 = time.perf_counter()
    d = synthetic(20_000, 5_000, mean_ratings_per_user=50, rng=0)
    elapsed = time.perf_counter() - t0
    assert 0.9e6 < d.nnz < 1.1e6
    assert elapsed < 5.0, f"1M ratings took {elapsed:.1f}s"


@pytest.mark.slow
def test_synthetic_5m_ratings_fast():
    t0 = time.perf_counter()
    d = synthetic(70_000, 10_000, mean_ratings_per_user=5_000_000 / 70_000, rng=0)
    elapsed = time.perf_counter() - t0
    print(f"synthetic 70k x 10k, {d.nnz} ratings: {elapsed:.2f}s")
    assert 4.75e6 < d.nnz < 5.25e6 and d.matrix.has_canonical_format
    assert np.diff(d.matrix.indptr).min() >= 1
    assert elapsed < 10.0, f"5M ratings took {elapsed:.1f}s"
