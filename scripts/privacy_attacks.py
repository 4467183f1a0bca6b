"""Redo the attacks of the privacy review against the current code; each must fail.

Run: ``python scripts/privacy_attacks.py`` (prints one line per attack; exit code 1 if any succeeds).
``tests/privacy/test_attacks.py`` runs the same functions in the test suite.

1. *Seed in the artifact*: read the seed from an exported DP artifact and regenerate the noise.
2. *Common seeds*: try seeds 0…999 with dprec's own stream derivation on a default (fresh-entropy) fit.
3. *Shared stream*: two models fitted with the same seed on the same data; if they drew the same standard
   normals with different σ's, ``(σ₂ r₁ − σ₁ r₂)/(σ₂ − σ₁)`` would be the exact statistic.
4. *ε = ∞ bypass*: a non-private fit against a ledger must be refused, charging nothing.
5. *Publication hygiene*: no seed, 64-hex digest, data fingerprint, time or sequence number in anything written
   for publication (export_public, the privacy report, the ledger's public summary).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
import warnings

import numpy as np

import dprec
from dprec.datasets import synthetic
from dprec.errors import LedgerError
from dprec.models import DPALS, DPGlobalEffects, DPPopularity
from dprec.models.io import read_npz_with_manifest

SEED = 918273645
FORBIDDEN_KEYS = {
    "rng",
    "seed",
    "time",
    "created",
    "hash",
    "head_hash",
    "prev_hash",
    "seq",
    "fingerprint",
    "data_fingerprint",
    "dataset_digest",
    "mac",
}


def _data():
    return synthetic(400, 80, 4, mean_ratings_per_user=12, rng=1)


def _quiet_fit(model, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(data, **kw)


def _weighted_counts(X, k):
    """The exact weighted item counts Σ_i min(1, √(k/n_i)) that DP popularity and the N_j of the item biases release."""
    n_u = np.diff(X.indptr)
    w = np.repeat(np.minimum(1.0, np.sqrt(k / np.maximum(n_u, 1))), n_u)
    return np.bincount(X.indices, weights=w, minlength=X.shape[1])


def _walk_keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _walk_keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_keys(v)


def attack_seed_from_artifact(tmp: str) -> dict:
    """Look for the noise seed in a DPPopularity export made with an explicit seed."""
    data = _data()
    m = _quiet_fit(DPPopularity(epsilon=1.0, delta=1e-6, rng=SEED), data)
    path = m.export_public(os.path.join(tmp, "pop.npz"))
    with open(path, "rb") as fh:
        raw = fh.read()
    _, manifest = read_npz_with_manifest(path, expected_format="dprec-public")
    found = str(SEED).encode() in raw or any(k in ("rng", "seed") for k in _walk_keys(manifest))
    return {"attack": "seed from the exported artifact", "succeeded": bool(found)}


def attack_common_seeds(n_seeds: int = 1000) -> dict:
    """A default fit (rng=None): does any common seed regenerate its noise exactly?"""
    data = _data()
    m = _quiet_fit(DPPopularity(epsilon=1.0, delta=1e-6), data)
    from dprec.privacy.noise import NoiseStreams

    exact = _weighted_counts(data.matrix, m._bounds["k"])
    sigma = next(s["sigma"] for s in m.privacy_report()["steps"] if s["name"] == "item_counts")
    hits = 0
    for seed in range(n_seeds):
        z = NoiseStreams(seed, model="DPPopularity", warn=False).generator("item_counts").standard_normal(len(exact))
        if np.max(np.abs(m.item_counts_ - sigma * z - exact)) < 1e-6:
            hits += 1
    return {"attack": f"regenerate the noise of a default fit from {n_seeds} common seeds", "succeeded": hits > 0}


def attack_shared_stream() -> dict:
    """DPGlobalEffects(rng=0) and DPALS(rng=0) on the same data release the same kind of item statistics."""
    data = _data()
    a = _quiet_fit(DPGlobalEffects(epsilon=1.0, delta=1e-6, rng=0), data)
    b = _quiet_fit(DPALS(epsilon=1.0, delta=1e-6, rng=0), data)  # the biases-only band: the same releases
    sa = next(s["sigma"] for s in a.privacy_report()["steps"] if s["name"] == "item_biases")
    sb = next(s["sigma"] for s in b.privacy_report()["steps"] if s["name"] == "item_biases")
    k = a._bounds["k"]
    exact = _weighted_counts(data.matrix, k)  # N_j of the (S_j, N_j) release
    if sa == sb:  # equal σ: the difference of the releases is the difference of the noises
        guess = a.item_counts_
    else:
        guess = (sb * a.item_counts_ - sa * b.item_counts_) / (sb - sa)
    mask = (a.item_counts_ > 0) & (b.item_counts_ > 0)  # items whose released counts were not floored at 0
    err = float(np.sqrt(np.mean((guess[mask] - exact[mask]) ** 2)))
    return {
        "attack": "cancel the noise of two models fitted with one seed",
        "succeeded": err < 1e-6,
        "rms_error": err,
        "sigma": sa,
    }


def attack_inf_bypasses_ledger(tmp: str) -> dict:
    """``fit(data, ledger=L)`` at ε = ∞ used to run with no charge and no refusal."""
    data = _data()
    led = dprec.Ledger.create(os.path.join(tmp, "inf.sqlite"), dataset=data.dataset_id, epsilon=1.0, delta=1e-6)
    before = led.spent()
    try:
        DPALS(epsilon=math.inf).fit(data, ledger=led)
        refused = False
    except LedgerError:
        refused = True
    return {"attack": "ε = ∞ fit against a ledger", "succeeded": (not refused) or led.spent() != before}


def attack_publication_hygiene(tmp: str) -> dict:
    """Search everything written for publication for a seed, a digest, the data fingerprint, times, seq numbers."""
    data = _data()
    fingerprint = data.dataset_id.split(":", 1)[-1]
    led = dprec.Ledger.create(os.path.join(tmp, "hyg.sqlite"), dataset=data.dataset_id, epsilon=50.0, delta=1e-5)
    leaks = []
    for cls in (DPPopularity, DPGlobalEffects, DPALS):
        m = _quiet_fit(cls(epsilon=2.0, delta=1e-6, rng=SEED), data, ledger=led)
        path = m.export_public(os.path.join(tmp, cls.__name__ + ".npz"))
        _, manifest = read_npz_with_manifest(path, expected_format="dprec-public")
        manifest.pop("arrays", None)  # per-array checksums of the released (DP) arrays themselves
        for what, obj in (("export_public", manifest), ("privacy_report", m.privacy_report())):
            text = json.dumps(obj)
            if str(SEED) in text:
                leaks.append(f"{cls.__name__} {what}: seed")
            if re.search(r"[0-9a-f]{64}", text):
                leaks.append(f"{cls.__name__} {what}: 64-hex digest")
            if fingerprint in text:
                leaks.append(f"{cls.__name__} {what}: data fingerprint")
            bad = FORBIDDEN_KEYS & set(_walk_keys(obj))
            if bad:
                leaks.append(f"{cls.__name__} {what}: keys {sorted(bad)}")
    text = json.dumps(led.public_summary())
    if (
        fingerprint in text
        or re.search(r"[0-9a-f]{64}", text)
        or FORBIDDEN_KEYS & set(_walk_keys(led.public_summary()))
    ):
        leaks.append("ledger public summary")
    if fingerprint in os.path.basename(str(dprec.Ledger.default_path(data.dataset_id))):
        leaks.append("default ledger file name")
    return {
        "attack": "find a seed, digest, fingerprint, time or seq in published files",
        "succeeded": bool(leaks),
        "leaks": leaks,
    }


def run_all() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        return [
            attack_seed_from_artifact(tmp),
            attack_common_seeds(),
            attack_shared_stream(),
            attack_inf_bypasses_ledger(tmp),
            attack_publication_hygiene(tmp),
        ]


if __name__ == "__main__":
    results = run_all()
    for r in results:
        extra = {k: v for k, v in r.items() if k not in ("attack", "succeeded")}
        print(f"{'SUCCEEDED' if r['succeeded'] else 'failed   '}  {r['attack']}  {extra if extra else ''}")
    sys.exit(1 if any(r["succeeded"] for r in results) else 0)
