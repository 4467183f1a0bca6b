"""The generated interleaved QL drivers (:mod:`dprec.kernels._ql_quad`) against the single one."""

from __future__ import annotations

import ast
import importlib.util
import pathlib

import numpy as np
import pytest

from dprec.kernels import _ql_quad as Q
from dprec.kernels import psd as P

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _tridiagonal(g, k):
    """A scaled tridiagonal form of a random indefinite symmetric matrix, as the spectral solve makes it."""
    B = g.normal(size=(k, k))
    W = np.zeros((5, k, k))
    Wv = np.zeros((7, k))
    W[0] = B + B.T - 0.5 * k * np.eye(k) * g.random()
    assert P._scale_tridiagonalize(W, Wv) > 0
    return Wv[0].copy(), Wv[1].copy()


def test_generated_module_is_current():
    spec = importlib.util.spec_from_file_location("gen_ql_quad", ROOT / "scripts" / "gen_ql_quad.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    committed = (ROOT / "src" / "dprec" / "kernels" / "_ql_quad.py").read_text()
    assert ast.dump(ast.parse(gen.source())) == ast.dump(ast.parse(committed)), "run python scripts/gen_ql_quad.py"


@pytest.mark.parametrize("k", [2, 3, 9, 33])
def test_four_lanes_are_the_single_driver_and_the_replay_is_the_transpose(k):
    g = np.random.default_rng(k)
    lanes = [_tridiagonal(g, k) for _ in range(4)]
    Y0 = g.normal(size=(4, k, 2))
    cap = 4 * k * k + 64
    d = np.array([lane[0] for lane in lanes])
    e = np.array([lane[1] for lane in lanes])
    Y = Y0.copy()
    R = np.zeros((4, cap, 3))
    e[2] = 0.0  # a lane with nothing to do
    counts = Q.tridiagonal_ql_quad(
        d[0], e[0], Y[0], R[0], d[1], e[1], Y[1], R[1], d[2], e[2], Y[2], R[2], d[3], e[3], Y[3], R[3]
    )
    assert counts[2] == 0 and np.array_equal(Y[2], Y0[2]) and np.array_equal(d[2], lanes[2][0])
    x = g.normal(size=(4, k))
    xr = x.copy()
    Q.replay_quad(xr[0], R[0], counts[0], xr[1], R[1], counts[1], xr[2], R[2], counts[2], xr[3], R[3], counts[3])
    for u in (0, 1, 3):
        # the single driver, accumulating the rotations into G from I: the same operations on (d, e)
        ds, es = lanes[u][0].copy(), lanes[u][1].copy()
        G = np.eye(k)
        assert Q.tridiagonal_ql(ds, es, G)
        np.testing.assert_array_equal(d[u], ds)  # eigenvalues bit for bit
        assert 0 < counts[u] <= cap
        np.testing.assert_allclose(Y[u], G @ Y0[u], rtol=0, atol=1e-13)  # the vectors rotated along
        np.testing.assert_allclose(xr[u], G.T @ x[u], rtol=0, atol=1e-13)  # the replay: Gᵀ x
        np.testing.assert_allclose(G @ G.T, np.eye(k), atol=1e-13)


def test_a_full_record_reports_more_rotations_than_it_holds():
    g = np.random.default_rng(0)
    k = 9
    lanes = [_tridiagonal(g, k) for _ in range(4)]
    args, Rs = [], []
    for dd, ee in lanes:
        R = np.zeros((5, 3))
        Rs.append(R)
        args += [dd.copy(), ee.copy(), np.zeros((k, 2)), R]
    counts = Q.tridiagonal_ql_quad(*args)
    assert all(c > 5 for c in counts)  # the caller then solves these items by the explicit projection
