"""One JSON normal form for everything dprec writes (reports, results rows, CLI output)."""

from __future__ import annotations

import math

import numpy as np


def to_jsonable(obj):
    """Recursively convert to JSON-safe values.

    numpy scalars and arrays become Python numbers and lists, ``±inf`` becomes ``"inf"``/``"-inf"`` (ε = ∞ is
    a first-class setting), NaN becomes ``None``, objects with ``to_dict()`` are converted through it, and
    anything else unknown becomes its ``str``.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    return str(obj)
