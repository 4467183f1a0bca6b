"""External reference models wrapped for the benchmark runner.

:class:`ImplicitALS` wraps the ``implicit`` library's ``AlternatingLeastSquares`` (Hu, Koren & Volinsky 2008
weighted ALS) so that :func:`dprec.metrics.evaluate` can score it on top-N metrics next to dprec's own models.
It cannot predict ratings (``predicts_ratings = False``), so RMSE/MAE are NaN for it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field, field_validator

from .._threads import single_threaded_blas
from ..errors import ConfigError, NotFittedError
from ..models.config import ModelConfig, validate_config
from ..models.registry import register_model

__all__ = ["ImplicitALS"]


class ImplicitALSConfig(ModelConfig):
    """Hyperparameters of :class:`ImplicitALS` (passed to implicit; confidence ``1 + alpha * value``)."""

    factors: int = Field(64, ge=1, strict=True, description="latent dimension")
    regularization: float = Field(0.01, ge=0, description="L2 penalty of implicit's ALS")
    alpha: float = Field(1.0, gt=0, description="confidence scaling: 1 + alpha * value")
    iterations: int = Field(15, ge=1, strict=True, description="ALS sweeps")
    binarize: bool = Field(False, strict=True, description="replace every stored rating by 1 before fitting")
    use_cg: bool = Field(True, strict=True, description="conjugate-gradient solver (implicit's default) or Cholesky")

    @field_validator("rng")
    @classmethod
    def _int_seed(cls, v):
        if v is not None and not isinstance(v, int):
            raise ValueError(f"rng must be an int seed or None for the implicit adapter, got {v!r}")
        return v


@register_model("implicit-als")
class ImplicitALS:
    """Adapter over ``implicit.cpu.als.AlternatingLeastSquares`` (implicit >= 0.5: user×item CSR).

    Parameters: those of :class:`ImplicitALSConfig` (``factors``, ``regularization``, ``alpha``, ``iterations``,
    ``binarize``, ``use_cg``) and ``num_threads``, ``rng`` (implicit's ``random_state``: initial factors).
    Needs the ``implicit`` package (``pip install "dprec[bench]"``).
    """

    Config = ImplicitALSConfig
    is_private = False
    predicts_ratings = False
    feedback = "implicit"
    uses_threads = True  # implicit's own threads: num_threads

    def __init__(self, **params):
        self.config = validate_config(self.Config, params)
        for key, value in self.config:
            setattr(self, key, value)
        self._fitted = False

    def get_params(self) -> dict:
        return self.config.model_dump()

    def fit(self, data) -> ImplicitALS:
        try:
            from implicit.cpu.als import AlternatingLeastSquares
        except ImportError:
            raise ConfigError('model "implicit-als" needs the implicit package: pip install "dprec[bench]"') from None

        from dprec.data import as_interactions

        data = as_interactions(data)
        m = data.matrix.astype(np.float32)
        if self.binarize:
            m = m.copy()
            m.data[:] = 1.0
        self._user_items = sp.csr_matrix(m)
        self._user_index = data.user_index
        self._item_ids = data.item_ids
        with single_threaded_blas():  # implicit warns (and slows) with threaded BLAS
            self._model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                num_threads=self.num_threads,
                use_cg=self.use_cg,
                random_state=self.rng,
                calculate_training_loss=False,
            )
            self._model.fit(self._user_items, show_progress=False)
        self._fitted = True
        return self

    def recommend(self, user, n: int = 10, *, filter_seen: bool = True):
        """Top-``n`` raw item ids and scores for raw user ids (2-D for a batch, 1-D for one user)."""
        if not self._fitted:
            raise NotFittedError("ImplicitALS is not fitted yet: call fit(data) first")
        single = np.ndim(user) == 0
        users = np.atleast_1d(np.asarray(user, dtype=object))
        rows = np.array([self._user_index[u.item() if isinstance(u, np.generic) else u] for u in users], dtype=np.int32)
        n_eff = min(int(n), len(self._item_ids))
        ids, scores = self._model.recommend(
            rows, self._user_items[rows], N=n_eff, filter_already_liked_items=filter_seen
        )
        ids, scores = np.atleast_2d(ids), np.atleast_2d(scores).astype(np.float64)
        bad = (ids < 0) | ~np.isfinite(scores) | (scores <= np.finfo(np.float32).min)
        scores[bad] = -np.inf
        raw = self._item_ids[np.where(bad, 0, ids)]
        if bad.any():
            raw = raw.astype(object) if raw.dtype.kind not in "iu" else raw.copy()
            raw[bad] = -1 if raw.dtype.kind in "iu" else None
        if single:
            keep = np.isfinite(scores[0])
            return raw[0][keep], scores[0][keep]
        return raw, scores

    def fold_in_many(self, data):
        """Add new users from their own ratings (implicit's ``recalculate_user``: the least-squares user solve
        against the fitted item factors), for the strong-generalisation protocol. Replaces (not mutates) the
        wrapped model's state, so a shallow copy of this adapter can fold in without touching the original."""
        import copy

        import pandas as pd

        from dprec.data import as_interactions

        if not self._fitted:
            raise NotFittedError("ImplicitALS is not fitted yet: call fit(data) first")
        data = as_interactions(data, what="fold_in_many data")
        new = [u.item() if isinstance(u, np.generic) else u for u in data.user_ids]
        if any(u in self._user_index for u in new):
            raise ValueError("fold_in_many adds new users only; some users are already known")
        cols = pd.Index(self._item_ids).get_indexer(data.item_ids)
        X = data.matrix
        if (cols[X.indices] < 0).any():
            raise ValueError("fold_in_many: some items are not in the model's catalog")
        m = sp.csr_matrix((X.data, cols[X.indices], X.indptr), shape=(data.n_users, len(self._item_ids)))
        m.sort_indices()
        m = m.astype(np.float32)
        if self.binarize:
            m.data[:] = 1.0
        n_old = self._user_items.shape[0]
        with single_threaded_blas():
            factors = self._model.recalculate_user(np.arange(n_old, n_old + data.n_users), m)
        inner = copy.copy(self._model)
        inner.user_factors = np.vstack([self._model.user_factors, factors])
        self._model = inner
        self._user_items = sp.vstack([self._user_items, m], format="csr")
        self._user_index = {**self._user_index, **{u: n_old + i for i, u in enumerate(new)}}
        return data.user_ids

    def predict(self, users, items):
        raise NotImplementedError("implicit's ALS scores preferences; it does not predict ratings (RMSE = NaN)")
