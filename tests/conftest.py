"""Shared pytest fixtures for dprec. Keep it tidy: one section per topic, fixtures documented."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dprec import Interactions

# --------------------------------------------------------------------------- real data
ML100K_FILES = ("u.data", "u.item", "u.user")


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """Path of the unpacked MovieLens-100K folder under ``$DPREC_DATA``; skips when absent."""
    env = os.environ.get("DPREC_DATA")
    if not env:
        pytest.skip("MovieLens-100K test needs DPREC_DATA (e.g. DPREC_DATA=../shared/datasets); it is unset")
    folder = Path(env) / "ml-100k"
    missing = [f for f in ML100K_FILES if not (folder / f).is_file()]
    if missing:
        pytest.skip(f"MovieLens-100K not found: {folder} lacks {missing} (DPREC_DATA={env})")
    return folder


# --------------------------------------------------------------------------- small data
@pytest.fixture
def ratings_df() -> pd.DataFrame:
    """A tiny explicit-ratings table: 4 users (string ids), 5 items, 12 ratings with timestamps."""
    rows = [
        ("alice", "i1", 5.0, 10),
        ("alice", "i2", 3.0, 11),
        ("alice", "i3", 4.0, 12),
        ("bob", "i1", 2.0, 13),
        ("bob", "i4", 1.0, 14),
        ("bob", "i5", 4.5, 15),
        ("carol", "i2", 3.5, 16),
        ("carol", "i3", 2.5, 17),
        ("carol", "i4", 5.0, 18),
        ("dave", "i5", 1.5, 19),
        ("dave", "i1", 4.0, 20),
        ("dave", "i3", 3.0, 21),
    ]
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


@pytest.fixture
def small_data(ratings_df) -> Interactions:
    """:func:`ratings_df` as Interactions with bounds (0.5, 5) and timestamps."""
    return Interactions.from_pandas(ratings_df, timestamp_col="timestamp", rating_bounds=(0.5, 5))


@pytest.fixture(scope="session")
def synthetic_small() -> Interactions:
    """A seeded synthetic dataset (300 users × 200 items, ~30 ratings/user, timestamps). Do not mutate."""
    from dprec.datasets import synthetic

    return synthetic(300, 200, 4, mean_ratings_per_user=30, timestamps=True, rng=0)


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh seeded generator (seed 0)."""
    return np.random.default_rng(0)


# --------------------------------------------------------------------------- privacy ledger
@pytest.fixture(autouse=True)
def _ledger_dirs(tmp_path_factory, monkeypatch):
    """Point the ledger key directory and the default ledger directory at fresh temporary folders, so no
    test reads or writes the user's real ``~/.config/dprec/ledger-keys`` or ledgers."""
    monkeypatch.setenv("DPREC_LEDGER_KEY_DIR", str(tmp_path_factory.mktemp("ledger-keys")))
    monkeypatch.setenv("DPREC_LEDGER_DIR", str(tmp_path_factory.mktemp("ledgers")))
