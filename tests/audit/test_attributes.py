"""ML-100K user attributes (u.user) without zip codes."""

from __future__ import annotations

import numpy as np
import pytest

from dprec.datasets import load_dataset
from dprec.datasets.attributes import age_band, load_user_attributes
from dprec.errors import CorruptFileError


def _fake(tmp_path, text):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("")
    (folder / "u.user").write_text(text, encoding="latin-1")
    return tmp_path


def test_reads_without_zip(tmp_path):
    home = _fake(tmp_path, "2|53|F|other|94043\n1|24|M|technician|85711\n3|17|M|student|T8H1N\n")
    a = load_user_attributes(data_home=home)
    assert a.index.tolist() == [1, 2, 3] and "zip" not in a.columns
    assert a.loc[2, "gender"] == "F" and a.loc[1, "occupation"] == "technician" and a.loc[1, "age"] == 24
    assert a["age_band"].astype(str).tolist() == ["18-24", "50-55", "<18"]
    assert "age_band" not in load_user_attributes(data_home=home, age_bands=False).columns


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="only 'ml-100k'"):
        load_user_attributes("ml-1m")
    monkeypatch.delenv("DPREC_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="u.user"):
        load_user_attributes(data_home=tmp_path / "nowhere")
    home = _fake(tmp_path, "1|24|X|technician|85711\n")
    with pytest.raises(CorruptFileError, match="gender"):
        load_user_attributes(data_home=home)


def test_age_bands():
    assert age_band([7, 18, 24, 25, 49, 50, 56, 73]).astype(str).tolist() == [
        "<18", "18-24", "18-24", "25-34", "45-49", "50-55", "56+", "56+"
    ]  # fmt: skip


@pytest.mark.realdata
def test_ml100k_attributes_match_the_ratings(ml100k_dir):
    a = load_user_attributes(data_home=ml100k_dir.parent)
    d = load_dataset("ml-100k", data_home=ml100k_dir.parent)
    assert a.shape[0] == 943 and np.array_equal(a.index.to_numpy(), d.user_ids)
    assert set(a.gender) == {"M", "F"} and a.occupation.nunique() == 21
    assert (a.gender == "F").sum() == 273
