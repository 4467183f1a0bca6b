"""Distributed fits of ``ALS(feedback="explicit")``, ``DPALS`` and ``DPImplicitALS`` on ``dask.distributed``.

One switch: ``DaskBackend(client).fit(model, ratings)``, with ``ratings = backend.ratings(parquet_path_or_ddf,
items=catalog, rating_bounds=(lo, hi), dataset_id=...)``. The model runs its own ``_fit`` — the same planner,
releases, ledger charge and :class:`~dprec.privacy.noise.NoiseStreams` as a local fit — with a
:class:`UserBlocks` handle where a local fit has its CSR matrix:

1. one shuffle groups the ratings by user (every rating of a user in one block: the per-user contribution
   bound is computed from the whole row);
2. each block bounds its users' contributions (the release's own weights, same ``k``), solves its users'
   factors against the broadcast released item side, clips them and emits its term of every additive
   statistic (the releases' ``statistic`` and :func:`dprec.kernels.als.item_stats`);
3. a tree reduction on the workers sums the terms; the client adds noise once to the global sum, after the
   ledger charge, and solves the item side (post-processing), which it broadcasts back.

DP implicit ALS follows the same steps with its own statistics (the clipped users' Gramian and the head items'
``(A_j, b_j)``), its loop mirrored in :meth:`UserBlocks.implicit_iterate` around the model's own releases and
noisy solve.

Workers never receive a noise stream, a seed, a random generator, the budget or the ledger
(:func:`check_public` guards every task). Requires ``pip install "dprec[dask]"``. See ``docs/scaling.md``.
"""

from ._dask import DaskBackend, DaskFit, DaskRatings, UserBlocks, check_public

__all__ = ["DaskBackend", "DaskFit", "DaskRatings", "UserBlocks", "check_public"]
