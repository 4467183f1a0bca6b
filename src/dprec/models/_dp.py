"""Machinery shared by the differentially private models: privacy arguments, planning, charging, reporting, export.

The privacy model is in ``docs/privacy-model.md``; every release a model can make is declared once in
:mod:`dprec.models.releases` with its statistic, sensitivity and proof.

How a DP fit runs (:meth:`DPModelMixin._start_private_fit`)
-----------------------------------------------------------
1. Every configuration the fit may choose (its public rules may pick one after the DP user count) is planned
   and checked *before* anything is charged: a parameter combination that cannot run is refused with nothing
   recorded.
2. The ledger is charged the whole cost, once. A refused charge raises
   :class:`~dprec.errors.BudgetExceededError` with nothing drawn.
3. Noise comes from :class:`~dprec.privacy.noise.NoiseStreams`: fresh OS entropy unless the caller gave a seed
   (reproducibility mode, flagged in the report and by a :class:`~dprec.privacy.PrivacyWarning`), one stream
   per (model, release step).
4. Without a public catalog, DP item selection (:class:`~dprec.models.releases.ItemSelection`) runs first;
   then the DP user count ñ (:class:`~dprec.models.releases.UserCount`, 0.2% of the budget, shared with any
   other count the model's rules read: :meth:`DPModelMixin._count_releases`), which feeds the
   δ check (``δ ≥ 1/ñ`` warns) and any public rules; then the model's own releases, each through
   :meth:`DPModelMixin._release`.
5. The privacy report is generated from the releases that ran.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from .._json import to_jsonable
from ..errors import CorruptFileError, LedgerError, SelectionWarning
from ..privacy import accounting as acc
from ..privacy.noise import NoiseSource, NoiseStreams
from ..privacy.units import check_delta
from . import registry as _registry
from ._blocks import user_sum
from .base import config_from_file
from .io import dprec_version, ids_for_npz, ids_from_npz, read_npz_with_manifest, write_npz_with_manifest
from .releases import ItemSelection, Release, UserCount, contribution_weights

__all__ = [
    "DPModelMixin",
    "contribution_weights",
    "open_ledger",
    "COUNT_SHARE",
    "SELECTION_SHARE",
    "SELECTION_TARGET",
    "SELECTION_MAX_ITEMS",
    "SELECTION_ROUNDS",
    "SELECTION_GROWTH",
    "SelectionWarning",
]

#: share of the (post-selection) budget spent on the DP user count: σ ≈ 90 users at ε = 1
COUNT_SHARE = 0.002
#: bounds of the share of ρ (after half of δ) spent on DP item selection when there is no public catalog
SELECTION_SHARE = (0.1, 0.6)
#: the budget rule's target: the selection threshold τ, in weighted users (§4.7); the share is what it takes to
#: bring τ down to this, within SELECTION_SHARE (tuned on synthetic data and an unreported ML-100K split)
SELECTION_TARGET = 25.0
#: public cap on the items one user spreads its selection weight over (users above it: a uniform sample)
SELECTION_MAX_ITEMS = 256
#: rounds of DP item selection (> 1: DP-SIPS, :func:`~dprec.privacy.bounding.dp_sips_selection`; 1: one
#: threshold, the default — DP-SIPS released fewer items at ML-100K's size and at ε = 1, see docs/tuning.md)
SELECTION_ROUNDS = 1
#: ratio of consecutive rounds' budgets ρ_{r+1}/ρ_r
SELECTION_GROWTH = 2.0
#: below this many released items a fit without a public catalog warns (:class:`SelectionWarning`)
SELECTION_FEW_ITEMS = 20


def selection_cap(unit: str) -> int:
    """The public cap on the items of one unit in DP item selection (one item per rating under ``"rating"``)."""
    return 1 if unit == "rating" else SELECTION_MAX_ITEMS


def selection_rho(rho_total: float, delta_sel: float, unit: str) -> float:
    """The budget rule of DP item selection (§4.7), from public inputs only (ρ, δ_sel, the unit's cap).

    ``ρ_sel`` is the budget at which the selection threshold ``τ(σ)`` equals :data:`SELECTION_TARGET`
    (``σ = 1/√(2ρ_sel)``; ``τ`` increases in ``σ``, so bisection), clipped to ``SELECTION_SHARE`` of ``ρ``: at
    small ε the selection gets up to 60% (without items nothing can be recommended), at large ε 10%.
    """
    from ..privacy.bounding import selection_threshold

    lo, hi = SELECTION_SHARE[0] * rho_total, SELECTION_SHARE[1] * rho_total
    cap = selection_cap(unit)

    def tau(rho):
        return selection_threshold(1.0 / math.sqrt(2.0 * rho), cap, delta_sel)

    if tau(hi) >= SELECTION_TARGET:
        return hi
    if tau(lo) <= SELECTION_TARGET:
        return lo
    a, b = lo, hi  # tau(a) > target >= tau(b)
    for _ in range(100):
        m = 0.5 * (a + b)
        a, b = (m, b) if tau(m) > SELECTION_TARGET else (a, m)
    return b


def open_ledger(ledger, *, dataset: str):
    """Accept ``None``, a :class:`dprec.privacy.Ledger` or a path; open it for ``dataset`` (fails closed)."""
    if ledger is None:
        return None
    from ..privacy.ledger import Ledger

    if isinstance(ledger, Ledger):
        if not ledger.matches(dataset):
            raise LedgerError(
                f"the ledger at {ledger.path} is for dataset {ledger.dataset!r}, not this data; use the ledger of "
                "this dataset (budgets are per dataset)"
            )
        return ledger
    if isinstance(ledger, (str, os.PathLike)):
        return Ledger.open(ledger, dataset=dataset)
    raise TypeError(f"ledger must be a dprec.privacy.Ledger, a path or None, got {type(ledger).__name__}")


class DPModelMixin:
    """Validation, planning, charging, reporting and public export common to DP models.

    A subclass's ``_fit`` calls :meth:`_start_private_fit` with its candidate release lists, then
    :meth:`_plan_releases` with the chosen list, and draws every release through :meth:`_release`. It implements
    ``_public_state()`` (arrays that are DP releases), ``_from_public_state(arrays)``, ``_bounds_report()`` and
    ``_released_description()``.
    """

    #: release steps accounted outside zCDP (no ρ in the report), e.g. DP-SGD's subsampled Gaussian
    _steps_outside_zcdp: frozenset[str] = frozenset()

    is_private = True

    def _init_private_state(self):
        """Declare the fit state every DP model carries (called from the model's ``__init__``); the privacy
        parameters themselves (ε, δ, unit, secure noise) are validated by :class:`~dprec.models.config.PrivateConfig`."""
        self._report_steps: list = []
        self._selection = None
        self._item_mask = None
        self._catalog_public = True
        self._noise_origin = None
        self._ledger_state = None
        self._releases: dict = {}
        self._streams = self._noise = None
        self._count_plan = self._rest_budget = None
        #: the DP user count ñ (the exact count at ε = ∞)
        self.n_users_dp_ = None
        #: every DP count the rules read, by release name (``"n_users"``, …; exact at ε = ∞)
        self.dp_counts_ = None

    @property
    def released_item_mask_(self) -> np.ndarray:
        """Boolean mask of the items whose statistics were released (all True with a public catalog)."""
        self._require_fitted()
        return self._released_item_mask()

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

    # ------------------------------------------------------------------ planning and charging
    def _budget_split(self, catalog_public: bool):
        """``(ρ_selection, δ_selection, ε_rest, δ_rest)``: the selection's part and the (ε, δ) left for the rest."""
        if catalog_public:
            return 0.0, 0.0, self.epsilon, self.delta
        delta_sel = self.delta / 2
        rho_total = acc.epsilon_to_rho(self.epsilon, self.delta - delta_sel)
        rho_sel = selection_rho(rho_total, delta_sel, self.privacy_unit)
        eps_rest = acc.rho_to_epsilon(rho_total - rho_sel, self.delta - delta_sel)
        return rho_sel, delta_sel, eps_rest, self.delta - delta_sel

    def _open_noise(self, ledger) -> None:
        """A fit's fresh state: its own noise streams (fresh entropy, or the caller's seed in reproducibility mode)
        and report; refuses a ledger for a non-private (ε = ∞) fit."""
        self._selection, self._item_mask, self._report_steps = None, None, []
        self._streams = NoiseStreams(self.rng, model=type(self).__name__, warn=self.private)
        self._noise = NoiseSource(self._streams, secure=self.secure_noise)
        self._noise_origin = self._streams.describe() if self.private else "none (ε = ∞)"
        if not self.private and ledger is not None:
            raise LedgerError(
                f"{type(self).__name__}(epsilon=inf) is a non-private fit: it would use the data this ledger "
                "guards without any noise. Pass ledger=None to train the non-private reference deliberately"
            )

    def _start_private_fit(self, data, candidates: Sequence[Sequence[tuple[Release, float]]], *, ledger):
        """Validate every candidate configuration, charge the ledger once, then run item selection and the user count.

        ``candidates``: every list of ``(release, weight)`` the fit may choose after the DP user count (one list
        for a model without rules). Each is planned against the budget left after the count and checked for the
        secure sampler's size limit, before the charge. Returns the item mask (None when all items are usable).
        """
        self._catalog_public = bool(data.public_items)
        self._open_noise(ledger)
        counts = self._count_releases()
        if not self.private:
            self.n_users_dp_ = float(data.n_users)
            self.dp_counts_ = {c.name: float(user_sum(c.statistic, data.matrix)[0]) for c in counts}
            self._count_plan = acc.plan(math.inf, 0.0, [c.step(1.0) for c in counts])
            self._rest_budget = (math.inf, 0.0, math.inf)
            return None
        rho_sel, delta_sel, eps_rest, delta_rest = self._budget_split(self._catalog_public)
        share = COUNT_SHARE / len(counts)
        plan0 = acc.plan(
            eps_rest, delta_rest, [c.step(share) for c in counts] + [acc.Step("rest", 1 - COUNT_SHARE, 1.0)]
        )
        self._count_plan, self._rest_budget = (
            plan0,
            (acc.rho_to_epsilon(plan0["rest"].total_rho, delta_rest), delta_rest, plan0["rest"].total_rho),
        )
        if not self._catalog_public:
            self._noise.check_size(ItemSelection.name, data.n_items)
        for releases in candidates:  # refuse before charging anything
            self._plan_releases(releases, n_items=data.n_items, dry_run=True)
        total = rho_sel + plan0.total_rho
        if acc.rho_to_epsilon(total, self.delta - delta_sel) > self.epsilon * (1 + 1e-12):
            raise RuntimeError("internal accounting error: selection + fit exceed the target; please report")
        self._charge(ledger, data, rho=total, delta_extra=delta_sel)
        mask = None
        if not self._catalog_public:
            mask = self._select_items(data, rho=rho_sel, delta_sel=delta_sel)
        # the DP counts: public rules and the δ check use ñ, never the exact count
        self.dp_counts_ = {
            c.name: float(self._release(c, user_sum(c.statistic, data.matrix), plan0[c.name])[0]) for c in counts
        }
        n_est = self.dp_counts_[UserCount.name]
        self.n_users_dp_ = n_est
        check_delta(self.delta, max(n_est, 1.0))
        self._item_mask = mask
        return mask

    def _count_releases(self) -> list[Release]:
        """The DP counts released before the public rules run, sharing ``COUNT_SHARE`` of the budget equally: the
        user count ñ (first, for every model); a model whose rules read another count appends it (DP-ALS: the
        rating count under the rating unit). Their values land in ``dp_counts_`` by release name."""
        return [UserCount(self.privacy_unit)]

    def _plan_releases(self, releases: Sequence[tuple[Release, float]], *, n_items: int, dry_run: bool = False):
        """Calibrate ``releases`` (``(release, weight)`` pairs) on the budget left after the user count.

        Raises (before any charge when called with ``dry_run``) on an invalid weight or a release too large for
        the secure sampler. Returns the :class:`~dprec.privacy.accounting.Plan`.
        """
        steps = [r.step(w if self.private else 1.0) for r, w in releases]
        for r, _ in releases:
            self._noise.check_size(r.name, r.size(n_items))
        eps_rest, delta_rest, rho_rest = self._rest_budget
        p = acc.plan(eps_rest, delta_rest, steps)
        if self.private and p.total_rho > rho_rest * (1 + 1e-12):
            raise RuntimeError(
                "internal accounting error: the fit's releases exceed the reserved budget; please report"
            )
        if not dry_run:
            self._releases = {r.name: r for r, _ in releases}
        return p

    def _release(self, release: Release, statistic, step, *, index: int = 0) -> np.ndarray:
        """The Gaussian mechanism of ``release`` on its exact ``statistic``, with σ from the plan ``step``;
        recorded for the report (once per release name)."""
        out = self._noise.release(
            statistic,
            step=release.name,
            sigma=step.sigma if self.private else 0.0,
            sensitivity=step.sensitivity,
            index=index,
        )
        if not any(s["name"] == release.name for s in self._report_steps):
            self._report_steps.append(release.report(step, self._noise.samplers.get(release.name, "")))
        return out

    def _record(self, release: Release, step) -> None:
        """Report a release whose noise a fused kernel added (the sampler is taken from the noise source)."""
        if not any(s["name"] == release.name for s in self._report_steps):
            self._report_steps.append(release.report(step, self._noise.samplers.get(release.name, "")))

    def _select_items(self, data, *, rho: float, delta_sel: float) -> np.ndarray:
        from ..privacy.bounding import dp_item_selection, dp_sips_selection, sample_per_user

        kk = selection_cap(self.privacy_unit)
        if self.privacy_unit == "rating":
            # each rating is its own unit: one row per rating (counts per item are unchanged)
            nnz = data.matrix.nnz
            X = sp.csr_matrix((np.ones(nnz), data.matrix.indices, np.arange(nnz + 1)), shape=(nnz, data.n_items))
        else:
            X = data.matrix
        sampling = self._noise.generator("item_selection_sampling")
        if SELECTION_ROUNDS > 1:
            sel = dp_sips_selection(
                X,
                rho=rho,
                delta_sel=delta_sel,
                k=kk,
                rounds=SELECTION_ROUNDS,
                growth=SELECTION_GROWTH,
                noise=self._noise,
                sample_rng=sampling,
            )
        else:
            Xs = X if self.privacy_unit == "rating" else sample_per_user(X, kk, sampling)
            sel = dp_item_selection(Xs, rho=rho, delta_sel=delta_sel, k=kk, noise=self._noise)
        mask = np.zeros(data.n_items, bool)
        mask[sel.items] = True
        self._selection = dict(
            sel.to_dict(),
            name=ItemSelection.name,
            count=1,
            sensitivity_l2=sel.sensitivity,
            statistic=ItemSelection.what,
            sampler=self._noise.samplers.get(ItemSelection.name, ""),
        )
        self._selection.pop("n_selected", None)  # the number of released items is in the artifact itself
        n_sel = int(sel.items.size)
        if n_sel < SELECTION_FEW_ITEMS:
            warnings.warn(
                f"{type(self).__name__}: DP item selection released {n_sel} of the items (no public catalog was "
                f"given, so items must be selected privately at ε = {self.epsilon}); only these can be recommended. "
                "Declare the item catalog as public (public_items=... when building the Interactions; --items on "
                "the CLI) to skip the selection and its cost",
                SelectionWarning,
                stacklevel=5,  # the caller's fit()
            )
        return mask

    def _charge(self, ledger, data, *, rho: float, delta_extra: float = 0.0):
        """Charge the ledger *before* any noise is drawn. Raises BudgetExceededError and records nothing."""
        self._ledger_state = "no ledger (the caller passed none)"
        if ledger is None:
            return
        led = open_ledger(ledger, dataset=data.dataset_id)
        token = self._streams._reuse_token
        kwargs = {"seed": token} if token is not None else {}
        led.charge(
            rho=rho,
            delta=delta_extra if delta_extra > 0 else None,
            model=type(self).__name__,
            mechanism="gaussian (zCDP)" + (" + gaussian threshold (δ)" if delta_extra > 0 else ""),
            label=f"{type(self).__name__} fit ε={self.epsilon} δ={self.delta} unit={self.privacy_unit}",
            **kwargs,
        )
        self._ledger_state = "charged to a privacy ledger before any noise was drawn"

    # ------------------------------------------------------------------ reporting
    def privacy_report(self) -> dict:
        """What was released, at what privacy cost, under which assumptions (JSON-able, for publication).

        ``epsilon``/``delta`` are the guarantee of the released item side under ``unit``; ``steps`` list every
        release with its statistic, sensitivity, σ, count, ρ and the sampler that drew its noise;
        ``verified_epsilon`` recomputes ε from the listed ρ's independently of the planner. It carries no seed,
        no data fingerprint, no ledger hash, time or sequence number, and no exact count.
        """
        self._require_fitted()
        steps = ([self._selection] if self._selection else []) + list(self._report_steps)
        if self.private:
            total_rho = math.fsum(s["rho"] * s["count"] for s in steps)
            d_extra = math.fsum(s.get("delta", 0.0) for s in steps)
            verified = acc.rho_to_epsilon(total_rho, self.delta - d_extra) if total_rho > 0 else 0.0
        else:
            total_rho, d_extra, verified = math.inf, 0.0, math.inf
        return to_jsonable(
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
                + ("; DP item selection adds its δ by composition" if d_extra > 0 else ""),
                "steps": steps,
                # the DP user count ñ is itself a release (its step is listed); None when non-private (exact)
                "n_users_dp": round(float(self.n_users_dp_), 1) if self.private and self.n_users_dp_ else None,
                "bounds": self._bounds_report(),
                "public_assumptions": self._public_assumptions(),
                "released": self._released_description(),
                "saved_model_is_dp_artifact": False,
                "export_public_is_dp_artifact": self.private,
                "joint_dp": "user parameters are computed from the released item side and each user's own "
                "ratings only; they serve that user and are never released (billboard model).",
                "noise": self._noise_origin,
                "secure_noise": self.secure_noise,
                "ledger": self._ledger_state,
                **({"erasure": self._erasure} if getattr(self, "_erasure", None) else {}),
            }
        )

    def _public_assumptions(self) -> list[str]:
        out = [
            f"rating bounds {self.rating_bounds_} are public (declared by the caller)",
            "all hyperparameters are public inputs; some defaults (max_ratings_per_user, the residual bounds, "
            "item_bias_regularization and DP-ALS's rule thresholds) were tuned on MovieLens-100K — see docs/tuning.md",
        ]
        if self._catalog_public:
            out.append("the item catalog is public (declared by the caller)")
        else:
            out.append("no public item catalog: items were selected by a DP noisy-count threshold (charged)")
        return out

    def _manifest_params(self) -> dict:
        """:meth:`get_params` for files: without ``rng`` — a noise seed is never written anywhere."""
        return {k: v for k, v in self.get_params().items() if k != "rng"}

    def _common_state(self) -> dict:
        # items that DP item selection did not release stay unrecommendable after save/load
        return {} if self._item_mask is None else {"__item_mask": self._item_mask}

    def _set_common_state(self, state: dict) -> None:
        mask = state.pop("__item_mask", None)
        if mask is not None:
            if mask.dtype != bool or mask.shape != (len(self._item_ids),):
                raise CorruptFileError("the model file's released-item mask does not match its items")
        self._item_mask = mask

    def _extra_manifest(self) -> dict:
        return {"privacy": self.privacy_report()}

    def _restore_manifest(self, manifest: dict) -> None:
        # the manifest passed io.PrivacyManifest (steps are objects with a str name; noise, ledger str or null)
        priv = manifest.get("privacy") or {}
        if not isinstance(priv, dict):
            raise CorruptFileError("the file's privacy report is not an object")
        steps = priv.get("steps") or []
        if not isinstance(steps, list) or not all(
            isinstance(s, dict) and isinstance(s.get("name"), str) for s in steps
        ):
            raise CorruptFileError("the file's privacy report has malformed steps")
        missing = [s["name"] for s in steps if s.get("rho") is None and s["name"] not in self._steps_outside_zcdp]
        if missing:  # every zCDP step carries its ρ, which privacy_report sums
            raise CorruptFileError(f"the file's privacy report lacks rho for step(s) {missing}")
        self._selection = next((s for s in steps if s.get("name") == ItemSelection.name), None)
        self._report_steps = [s for s in steps if s.get("name") != ItemSelection.name]
        self._catalog_public = self._selection is None
        self._noise_origin = priv.get("noise")
        self._ledger_state = priv.get("ledger")
        if priv.get("n_users_dp") is not None and getattr(self, "n_users_dp_", None) is None:
            self.n_users_dp_ = float(priv["n_users_dp"])  # validated by io.PrivacyManifest: a finite number

    # ------------------------------------------------------------------ public export
    def export_public(self, path, *, key=None) -> str:
        """Write only the DP-released item side (and the public item ids) to ``path`` (``.npz``).

        This file is the model's DP artifact: it contains no per-user data. Serve a user from it with
        ``Model.load_public(path)`` followed by ``fold_in(that user's ratings)`` — which costs no budget.
        Item ids are stored as integers or fixed-width unicode (never objects). ``key``: as in
        :meth:`~dprec.models.base.Recommender.save`, a keyed MAC that ``load_public(path, key=key)`` checks.
        """
        self._require_fitted()
        arrays = {k: np.asarray(v) for k, v in self._public_state().items()}
        released = self._released_item_mask()
        arrays["__item_ids"], item_enc = ids_for_npz(self._item_ids[released], "item")
        manifest = {
            "format": "dprec-public",
            "format_version": 1,
            "class": type(self).__name__,
            "dprec_version": dprec_version(),
            "params": self._manifest_params(),
            "rating_bounds": self.rating_bounds_,
            "contains_user_data": False,
            "is_dp_artifact": self.private,
            "ids": {"item": item_enc},
            **self._extra_manifest(),  # the privacy report and model-specific public facts (DP-ALS's resolved hyperparameters)
        }
        # whether anyone asked to be erased depends on the users, not on a DP release: not in the public artifact
        manifest["privacy"] = {k: v for k, v in manifest["privacy"].items() if k != "erasure"}
        return write_npz_with_manifest(path, arrays, manifest, key=key)

    @classmethod
    def load_public(cls, path, *, key=None):
        """A model holding only the public item side of ``path``; add users with :meth:`fold_in`.

        ``key``: the secret the file was exported with (its MAC is then checked). Any inconsistency raises
        :class:`~dprec.errors.CorruptFileError`.
        """
        arrays, manifest = read_npz_with_manifest(path, expected_format="dprec-public", key=key)
        target = _registry.model_class_by_name(manifest["class"])
        if target is None or not issubclass(target, cls):
            raise CorruptFileError(f"{path}: holds a {manifest['class']}, not a {cls.__name__}")
        model = target._from_config(config_from_file(target, manifest["params"], path))
        try:
            if "__item_ids" not in arrays:
                raise CorruptFileError(f"{path}: public model file has no item ids")
            model._item_ids = ids_from_npz(arrays.pop("__item_ids"), (manifest.get("ids") or {}).get("item", "native"))
            if len(set(model._item_ids.tolist())) != len(model._item_ids):
                raise CorruptFileError(f"{path}: the item ids repeat an id")
            model._user_ids = np.array([], dtype=model._item_ids.dtype if model._item_ids.dtype.kind in "iu" else str)
            model._user_index_cache = model._item_index_cache = None
            bounds = manifest["rating_bounds"]
            model.rating_bounds_ = (float(bounds[0]), float(bounds[1])) if bounds is not None else None
            model._seen = sp.csr_matrix((0, len(model._item_ids)))
            model._from_public_state(arrays)
            model._restore_manifest(manifest)
        except CorruptFileError:
            raise
        except (KeyError, ValueError, IndexError, TypeError, AttributeError, RecursionError) as exc:
            raise CorruptFileError(f"{path}: public model file is inconsistent ({type(exc).__name__}: {exc})") from None
        model._fitted = True
        return model

    def _mask_unreleased(self, scores: np.ndarray) -> np.ndarray:
        """Items not selected by DP item selection are never recommended."""
        if self._item_mask is not None:
            scores[..., ~self._item_mask] = -np.inf
        return scores

    def _released_item_mask(self) -> np.ndarray:
        return np.ones(len(self._item_ids), bool) if self._item_mask is None else self._item_mask
