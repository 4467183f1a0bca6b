"""Machinery shared by the differentially private models.

Privacy model (DESIGN.md §1): neighbouring datasets differ by one *user* with all their ratings
(``privacy_unit="user"``, default) or by one *rating* (``"rating"``). What a DP model releases is the
item side (item biases, item factors, noisy counts, the global mean); each user's own parameters are
computed from the released item side plus that user's own ratings (joint DP / billboard model, Chien
et al. 2021) and serve only that user.

Contribution bounding by weighting
----------------------------------
Under user-level DP, user ``i`` with ``n_i`` ratings enters every per-item statistic with the weight
``w_i = min(1, √(k / n_i))`` (``k`` = ``max_ratings_per_user``). Then for any statistic vector of the form
``s_j = Σ_i w_i f(r_ij)`` with ``|f| ≤ B``, removing user ``i`` changes it by a vector of L2 norm

    ‖Δs‖₂ = w_i √(Σ_j f(r_ij)²) ≤ min(1, √(k/n_i)) · √n_i · B ≤ √k · B,

the same bound as keeping at most ``k`` ratings per user (:func:`dprec.privacy.sample_per_user`), but
every rating is used: heavy users are down-weighted instead of subsampled, which lowers the variance of
the statistics at equal sensitivity. The weight depends only on the user's own data, so it is a valid
per-user transformation. Scalar totals (the global mean) use ``w_i = min(1, k / n_i)`` so that
``Σ_j w_i ≤ k`` and ``|Σ_j w_i f(r_ij)| ≤ k · B``. Under ``privacy_unit="rating"`` every weight is 1 and
``k = 1``. ``contribution="sample"`` keeps exactly ``k`` uniformly sampled ratings per user instead.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._json import to_jsonable
from ..errors import CorruptFileError
from ..privacy import accounting as acc
from ..privacy.units import check_delta, check_epsilon, check_privacy_unit
from .base import read_npz_with_manifest, write_npz_with_manifest, _version

__all__ = ["DPModelMixin", "contribution_weights", "open_ledger"]


def contribution_weights(X: sp.csr_matrix, k: int, *, privacy_unit: str, method: str = "weight", rng=None, scalar=False):
    """Per-rating weights (aligned with ``X.data``) that bound each user's contribution.

    Parameters
    ----------
    X : csr_matrix (n_users, n_items)
    k : int
        ``max_ratings_per_user``.
    privacy_unit : {"user", "rating"}
        ``"rating"`` returns all-ones weights (each rating is its own unit).
    method : {"weight", "sample"}
        ``"weight"``: ``w_i = min(1, √(k/n_i))`` (``min(1, k/n_i)`` when ``scalar``); ``"sample"``: weight 1 on
        ``min(k, n_i)`` uniformly sampled ratings of each user, 0 elsewhere.
    scalar : bool
        Weights for scalar totals (L1-type bound ``Σ_j w_ij ≤ k``) instead of per-item vectors (L2-type bound
        ``Σ_j w_ij² ≤ k``).

    Returns
    -------
    numpy.ndarray of float64, shape (nnz,), with ``Σ_j w_ij² ≤ k`` per user (``Σ_j w_ij ≤ k`` if ``scalar``).
    """
    n_u = np.diff(X.indptr)
    if privacy_unit == "rating":
        return np.ones(X.nnz)
    if method == "weight":
        nu = np.maximum(n_u, 1).astype(np.float64)
        w_user = np.minimum(1.0, k / nu) if scalar else np.minimum(1.0, np.sqrt(k / nu))
        return np.repeat(w_user, n_u)
    if method == "sample":
        from .._rng import as_generator

        g = as_generator(rng)
        w = np.zeros(X.nnz)
        # random keys per rating; keep the k smallest keys within each user row
        keys = g.random(X.nnz)
        for u in np.flatnonzero(n_u > 0):
            s, e = X.indptr[u], X.indptr[u + 1]
            if e - s <= k:
                w[s:e] = 1.0
            else:
                w[s + np.argpartition(keys[s:e], k - 1)[:k]] = 1.0
        return w
    raise ValueError(f'contribution must be "weight" or "sample", got {method!r}')


def open_ledger(ledger, *, dataset: str):
    """Accept ``None``, a :class:`dprec.privacy.Ledger` or a path; open it for ``dataset`` (fails closed)."""
    if ledger is None:
        return None
    from ..privacy.ledger import Ledger

    if isinstance(ledger, Ledger):
        if ledger.dataset != dataset:
            from ..errors import LedgerError

            raise LedgerError(
                f"the ledger is for dataset {ledger.dataset!r} but this data is {dataset!r}; "
                "use the ledger of this dataset (budgets are per dataset)"
            )
        return ledger
    if isinstance(ledger, (str, os.PathLike)):
        return Ledger.open(ledger, dataset=dataset)
    raise TypeError(f"ledger must be a dprec.privacy.Ledger, a path or None, got {type(ledger).__name__}")


class DPModelMixin:
    """Validation, accounting, reporting and public export common to DP models.

    A subclass sets ``self._report_steps`` (list of dicts) during fit and implements ``_public_state()``
    (arrays that are DP releases) and ``_from_public_state(arrays)``.
    """

    is_private = True

    def _init_privacy(self, epsilon, delta, privacy_unit, secure_noise):
        self.epsilon = check_epsilon(epsilon)
        self.privacy_unit = check_privacy_unit(privacy_unit)
        if math.isinf(self.epsilon):
            self.delta = 0.0 if delta is None else float(delta)
        else:
            if delta is None:
                raise ValueError("delta is required when epsilon is finite (e.g. delta=1e-5)")
            self.delta = check_delta(delta)
        if not isinstance(secure_noise, bool):
            raise ValueError(f"secure_noise must be True or False, got {secure_noise!r}")
        self.secure_noise = secure_noise

    @property
    def private(self) -> bool:
        return math.isfinite(self.epsilon)

    def _check_fit_data(self, data) -> None:
        if data.rating_bounds is None:
            raise ValueError(
                f"{type(self).__name__} needs public rating bounds: build the data with rating_bounds=(lo, hi) "
                "(e.g. Interactions.from_pandas(df, rating_bounds=(1, 5))). They are a declared public input; "
                "dprec never derives them from the data."
            )

    def _charge(self, ledger, data, *, rho: float, delta_extra: float = 0.0, label: str = ""):
        """Charge the ledger *before* any noise is drawn. Raises BudgetExceededError and records nothing."""
        self._ledger_record = None
        if ledger is None or not self.private:
            return
        led = open_ledger(ledger, dataset=_dataset_id(data))
        params = {k: v for k, v in self.get_params().items() if k != "rng"}
        self._ledger_record = led.charge(
            rho=rho,
            delta=delta_extra if delta_extra > 0 else None,
            model=type(self).__name__,
            mechanism="gaussian (zCDP)" + (" + gaussian threshold (δ)" if delta_extra > 0 else ""),
            label=label or f"{type(self).__name__} fit ε={self.epsilon} δ={self.delta}",
            params=_jsonable(params),
        )

    def privacy_report(self) -> dict:
        """What was released, at what privacy cost, under which assumptions (JSON-able).

        ``epsilon``/``delta`` are the guarantee of the released item side under ``unit``; ``steps`` list every
        Gaussian release with its sensitivity, σ, count and ρ; ``verified_epsilon`` recomputes ε from the
        listed ρ's independently of the planner.
        """
        self._require_fitted()
        steps = list(self._report_steps)
        if getattr(self, "_selection", None):
            steps = [self._selection] + steps
        if self.private:
            total_rho = math.fsum(s["rho"] * s["count"] for s in steps)
            d_extra = math.fsum(s.get("delta", 0.0) for s in steps)
            verified = acc.rho_to_epsilon(total_rho, self.delta - d_extra) if total_rho > 0 else 0.0
        else:
            total_rho, d_extra, verified = math.inf, 0.0, math.inf
        return _jsonable(
            {
                "model": type(self).__name__,
                "unit": self.privacy_unit,
                "epsilon": self.epsilon,
                "delta": self.delta,
                "is_private": self.private,
                "total_rho": total_rho,
                "verified_epsilon": verified,
                "accounting": "zero-concentrated DP (Gaussian releases, ρ summed), converted to (ε, δ) with "
                "the tight conversion of Canonne, Kamath & Steinke 2020 (OpenDP)"
                + ("; DP item selection adds its δ by basic composition" if d_extra > 0 else ""),
                "steps": steps,
                "bounds": self._bounds_report(),
                "public_assumptions": self._public_assumptions(),
                "released": self._released_description(),
                "saved_model_is_dp_artifact": False,
                "export_public_is_dp_artifact": self.private,
                "joint_dp": "user parameters are computed from the released item side and each user's own "
                "ratings only; they serve that user and are never released (billboard model).",
                "noise": "OpenDP samplers for releases ≤ 100k entries (secure_noise=True)"
                if self.secure_noise
                else "numpy Generator (fast; not hardened against floating-point attacks)",
                "ledger_charge": self._ledger_record if getattr(self, "_ledger_record", None) else None,
            }
        )

    def _plan_fit(self, data, steps, *, rng, k: int, ledger=None, selection_share: float = 0.1):
        """Calibrate the fit's Gaussian steps, charge the ledger, then (if needed) run DP item selection.

        Without a public catalog the set of items in the data is private. Then ``selection_share`` of ρ and
        half of δ go to :func:`dprec.privacy.bounding.dp_item_selection` (noisy-count threshold over at most
        ``k`` sampled items per user), and the rest of ρ, at the remaining δ, is split across ``steps``.
        Composition: the selection is δ_sel-approximate ρ_sel-zCDP, the steps ρ_rest-zCDP, so the fit is
        ``(ε(ρ_sel + ρ_rest, δ − δ_sel), δ)``-DP, checked here to be within the target.

        The whole cost is known before any noise is drawn, so the ledger is charged first: a refused charge
        raises :class:`~dprec.errors.BudgetExceededError` with nothing drawn and nothing recorded.

        Returns ``(plan, item_mask)``; ``item_mask`` is None when all items are usable.
        """
        self._catalog_public = bool(data.public_items)
        self._selection = None
        if not self.private or data.public_items:
            plan = acc.plan(self.epsilon, self.delta, steps)
            self._charge(ledger, data, rho=plan.total_rho if self.private else 0.0)
            return plan, None
        from ..privacy.bounding import dp_item_selection, sample_per_user

        delta_sel = self.delta / 2
        rho_total = acc.epsilon_to_rho(self.epsilon, self.delta - delta_sel)
        rho_sel = selection_share * rho_total
        eps_rest = acc.rho_to_epsilon((1 - selection_share) * rho_total, self.delta - delta_sel)
        plan = acc.plan(eps_rest, self.delta - delta_sel, steps)
        total = rho_sel + plan.total_rho
        if acc.rho_to_epsilon(total, self.delta - delta_sel) > self.epsilon:  # defensive: never overshoot
            raise RuntimeError("internal accounting error: selection + fit exceed the target; please report")
        self._charge(ledger, data, rho=total, delta_extra=delta_sel)
        kk = 1 if self.privacy_unit == "rating" else k
        if self.privacy_unit == "rating":
            # each rating is its own unit: one row per rating (counts per item are unchanged)
            nnz = data.matrix.nnz
            Xs = sp.csr_matrix((np.ones(nnz), data.matrix.indices, np.arange(nnz + 1)), shape=(nnz, data.n_items))
        else:
            Xs = sample_per_user(data.matrix, kk, rng)
        sel = dp_item_selection(Xs, rho=rho_sel, delta_sel=delta_sel, k=kk, rng=rng)
        mask = np.zeros(data.n_items, bool)
        mask[sel.items] = True
        self._selection = dict(sel.to_dict(), name="item_selection", count=1, sensitivity_l2=sel.sensitivity)
        return plan, mask

    def _public_assumptions(self) -> list[str]:
        out = [
            f"rating bounds {self.rating_bounds} are public (declared by the caller)",
            "all hyperparameters are public and chosen without looking at the data",
        ]
        if getattr(self, "_catalog_public", True):
            out.append("the item catalog is public (declared by the caller)")
        else:
            out.append("no public item catalog: items were selected by a DP noisy-count threshold (charged)")
        return out

    def _extra_manifest(self) -> dict:
        return {"privacy": self.privacy_report()}

    def _restore_manifest(self, manifest: dict) -> None:
        priv = manifest.get("privacy") or {}
        steps = priv.get("steps", [])
        self._selection = next((s for s in steps if s.get("name") == "item_selection"), None)
        self._report_steps = [s for s in steps if s.get("name") != "item_selection"]
        self._catalog_public = self._selection is None
        self._ledger_record = priv.get("ledger_charge")

    # ------------------------------------------------------------------ public export
    def export_public(self, path) -> str:
        """Write only the DP-released item side (and the public item ids) to ``path`` (``.npz``).

        This file is the model's DP artifact: it contains no per-user data. Serve a user from it with
        ``Model.load_public(path)`` followed by ``fold_in(that user's ratings)`` — which costs no budget.
        """
        self._require_fitted()
        arrays = {k: np.asarray(v) for k, v in self._public_state().items()}
        released = self._released_item_mask()
        arrays["__item_ids"] = self._item_ids[released]
        manifest = {
            "format": "dprec-public",
            "format_version": 1,
            "class": type(self).__name__,
            "dprec_version": _version(),
            "params": self.get_params(),
            "rating_bounds": self.rating_bounds,
            "contains_user_data": False,
            "is_dp_artifact": self.private,
            "privacy": self.privacy_report(),
        }
        return write_npz_with_manifest(path, arrays, manifest)

    @classmethod
    def load_public(cls, path):
        """A model holding only the public item side of ``path``; add users with :meth:`fold_in`."""
        from .base import _REGISTRY

        arrays, manifest = read_npz_with_manifest(path, expected_format="dprec-public")
        target = _REGISTRY.get(manifest.get("class"))
        if target is None or not issubclass(target, cls):
            raise CorruptFileError(f"{path}: holds a {manifest.get('class')}, not a {cls.__name__}")
        model = target(**manifest["params"])
        model._item_ids = arrays.pop("__item_ids")
        model._user_ids = np.array([], dtype=model._item_ids.dtype if model._item_ids.dtype.kind in "iu" else str)
        model._user_index_cache = model._item_index_cache = None
        model.rating_bounds = tuple(manifest["rating_bounds"]) if manifest["rating_bounds"] else None
        model._seen = sp.csr_matrix((0, len(model._item_ids)))
        try:
            model._from_public_state(arrays)
        except (KeyError, ValueError, IndexError) as exc:
            raise CorruptFileError(f"{path}: public model file is inconsistent ({exc})") from None
        model._restore_manifest(manifest)
        model._fitted = True
        return model

    def _mask_unreleased(self, scores: np.ndarray) -> np.ndarray:
        """Items not selected by DP item selection are never recommended."""
        mask = getattr(self, "_item_mask", None)
        if mask is not None:
            scores[..., ~mask] = -np.inf
        return scores

    def _released_item_mask(self) -> np.ndarray:
        mask = getattr(self, "_item_mask", None)
        return np.ones(len(self._item_ids), bool) if mask is None else mask


def _dataset_id(data) -> str:
    return data.dataset_id


def _jsonable(o: Any):
    return to_jsonable(o)
