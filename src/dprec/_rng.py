"""Random-number conventions: every random step takes ``rng``."""

from __future__ import annotations

import numpy as np

from ._validation import check_int


def as_generator(rng=None) -> np.random.Generator:
    """Normalise ``rng`` to a :class:`numpy.random.Generator`.

    Parameters
    ----------
    rng : int, numpy.random.Generator, numpy.random.SeedSequence or None
        A seed, an existing generator (returned as is, so that callers share its stream) or ``None``
        for fresh OS entropy (not reproducible; documented as such wherever it is a default).
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer, np.random.SeedSequence)):
        if isinstance(rng, (int, np.integer)):
            rng = check_int(rng, "rng seed")
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be an int seed, a numpy.random.Generator, a SeedSequence or None; got {type(rng).__name__}"
    )
