"""Numba kernels for top-``n`` serving: partial selection per row, seen items skipped on the fly.

One tie rule everywhere (that of :func:`dprec.models.base.topk_rows`): best first, ties broken by the smaller
item index, also at the cut-off, so a row's result is the first ``n`` items of
``sorted(candidates, key=lambda j: (-t[j], j))``. Only items with a finite score are candidates (non-finite
scores are what ``recommend`` pads), and an item is a candidate only if ``allowed[j]`` and it is not in the
row's seen list. Missing places are ``index = -1``, ``score = -inf``.

Two kernels:

* :func:`topk_dense` selects from a dense score matrix (any model's ``_scores``), one pass per row.
* :func:`topk_factors` serves factor models, ``t_uj = (o_u + c_j) + u·v_j`` (or the normalised form below),
  from a float32 score block ``S ≈ U Vᵀ`` that the caller computed with BLAS ``sgemm``, **without losing
  float64 exactness**: float32 only *filters*. With ``B_u`` a bound on ``|t32_uj − t_uj|`` (the float32
  rounding of the factors, of the ``k``-term dot product and of the offsets: ``|error| ≤ (k + 6)·2⁻²⁴·
  (‖u‖·max_j‖v_j‖ + max_j|c_j|)``, doubled for safety), let ``τ`` be the ``n``-th largest float32 score of
  the row's candidates. ``n`` candidates have ``t ≥ τ − B_u``, so the exact ``n``-th best is ``≥ τ − B_u``,
  and an item with ``t32 < τ − 2·B_u`` cannot be in the exact top ``n``. The kernel keeps the items with
  ``t32 ≥ τ − 2·B_u`` (typically ``n`` plus a handful), recomputes their scores in float64 from the stored
  factors (the same formula, and order of additions, as the models' float64 ``_scores``) and selects exactly
  among them. Rankings and returned scores are therefore those of the float64 scores (up to the float64
  summation order of the ``k``-term dot product, ~1e-16 relative), and do not depend on which rows share a
  block (``recommend(u) == recommend([u, v])[0]`` bit for bit).

  Normalised form (DP implicit ALS with popularity weight ``β``): ``t_uj = (1 − β)·(u·v_j / M_u) + c_j`` with
  ``M_u = max_j |u·v_j|`` over *all* items (``t_uj = (1 − β)·0 + c_j`` when ``M_u = 0``). ``M_u`` is found
  the same way (float32 filter ``|s32| ≥ max|s32| − 2·B``, float64 among those).

Scores must not be NaN in the factors; ``inf`` factors void the bound (the kernel then rescans the row in
float64, which is exact but slow).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .als import run_chunks

#: rows per parallel chunk (each chunk allocates its scratch buffers once)
_CHUNK = 8
#: rows per thread chunk of the factor kernel: its float32 scores (rows × n_items) stay in the core's cache
FACTOR_CHUNK = 16
#: items per scan block: a block is first tested as a whole by a vectorised count (constant trip count over a
#: slice, so LLVM vectorises it), and only a block with a hit is walked item by item
_W = 64


@njit(cache=True, inline="always")
def _hits(row, off, a, thr, j0):
    """Whether ``a·row[j] + off[j] > thr`` for some ``j`` in the block ``[j0, j0 + _W)`` (float32 arithmetic)."""
    r = row[j0 : j0 + _W]
    o = off[j0 : j0 + _W]
    h = 0
    for j in range(_W):
        h += (a * r[j] + o[j]) > thr
    return h > 0


@njit(cache=True, inline="always")
def _hits_ge64(row, off, a, lim, j0):
    """Whether ``float64(a·row[j] + off[j]) ≥ lim`` for some ``j`` in the block ``[j0, j0 + _W)``."""
    r = row[j0 : j0 + _W]
    o = off[j0 : j0 + _W]
    h = 0
    for j in range(_W):
        h += np.float64(a * r[j] + o[j]) >= lim
    return h > 0


@njit(cache=True, inline="always")
def _hits_abs(row, thr, j0):
    r = row[j0 : j0 + _W]
    h = 0
    for j in range(_W):
        h += abs(r[j]) > thr
    return h > 0


@njit(cache=True, inline="always")
def _insert(best_v, best_i, cnt, n, t, j):
    """Insert ``(t, j)`` into the descending list ``best_v[:cnt]``; ``j`` is larger than every listed index,
    so it goes after the entries with an equal score (ties by smaller index). Returns the new count."""
    pos = cnt
    while pos > 0 and best_v[pos - 1] < t:
        pos -= 1
    if pos >= n:
        return cnt
    stop = cnt if cnt < n else n - 1
    for q in range(stop, pos, -1):
        best_v[q] = best_v[q - 1]
        best_i[q] = best_i[q - 1]
    best_v[pos] = t
    best_i[pos] = j
    return cnt + 1 if cnt < n else n


@njit(cache=True, inline="always")
def _hide_seen(ok, seen_indptr, seen_indices, r):
    if r >= 0:
        for p in range(seen_indptr[r], seen_indptr[r + 1]):
            ok[seen_indices[p]] = False


@njit(cache=True, inline="always")
def _restore(ok, allowed, seen_indptr, seen_indices, r):
    if r >= 0:
        for p in range(seen_indptr[r], seen_indptr[r + 1]):
            ok[seen_indices[p]] = allowed[seen_indices[p]]


@njit(parallel=True, cache=True)
def topk_dense(scores, allowed, seen_indptr, seen_indices, seen_rows, n, out_idx, out_val):
    """Top-``n`` of each row of a dense ``scores`` matrix (any float dtype) into ``out_idx``/``out_val``.

    ``seen_rows[b]`` is the row of ``(seen_indptr, seen_indices)`` whose items row ``b`` skips (``-1``: none);
    ``allowed`` (n_items,) bool restricts the candidates; ``out_idx`` (m, n) int64 and ``out_val`` (m, n)
    float64 must be filled with ``-1`` / ``-inf`` by the caller.
    """
    m, N = scores.shape
    n_chunks = (m + _CHUNK - 1) // _CHUNK
    zero = np.zeros(N, scores.dtype)
    one = scores.dtype.type(1.0)
    for c in prange(n_chunks):
        ok = allowed.copy()
        for b in range(c * _CHUNK, min(m, (c + 1) * _CHUNK)):
            r = seen_rows[b]
            _hide_seen(ok, seen_indptr, seen_indices, r)
            cnt = 0
            thr = -np.inf
            bv = out_val[b]
            bi = out_idx[b]
            row = scores[b]
            for j0 in range(0, N, _W):
                if j0 + _W <= N and not _hits(row, zero, one, thr, j0):
                    continue
                for j in range(j0, min(j0 + _W, N)):
                    t = np.float64(row[j])
                    if t > thr and t < np.inf and ok[j]:  # NaN and ±inf are never candidates
                        cnt = _insert(bv, bi, cnt, n, t, j)
                        if cnt == n:
                            thr = bv[n - 1]
            _restore(ok, allowed, seen_indptr, seen_indices, r)


@njit(cache=True, inline="always")
def _dot64(U, b, V, j):
    acc = 0.0
    for q in range(U.shape[1]):
        acc += np.float64(U[b, q]) * np.float64(V[j, q])
    return acc


@njit(cache=True, inline="always")
def _exact(U, b, V, j, row_off, item_off, normalize, one_minus_beta, M):
    d = _dot64(U, b, V, j)
    if normalize:
        return one_minus_beta * (d / M if M > 0 else 0.0) + item_off[j]
    return (row_off + item_off[j]) + d


@njit(cache=True, nogil=True)
def _topk_factors_nb(
    c0,
    c1,
    U32,
    V32,
    U,
    V,
    row_off,
    item_off,
    item_off32,
    allowed,
    seen_indptr,
    seen_indices,
    seen_rows,
    err,
    norm_err,
    n,
    normalize,
    beta,
    out_idx,
    out_val,
):
    """Exact top-``n`` of ``t_bj`` (module docstring) for the rows of chunks ``c0 ≤ c < c1`` of a block (rows
    ``FACTOR_CHUNK·c`` up to ``FACTOR_CHUNK·(c + 1)``; run by :func:`topk_factors`), filtered through float32 ``S``.

    Parameters
    ----------
    U32 : (m, k) float32 C-contiguous, V32 : (n_items, k) float32 C-contiguous
        The float32 factors: each thread scores its chunk of ``FACTOR_CHUNK`` rows as ``S = U32[chunk] · V32ᵀ`` by
        single-threaded BLAS ``sgemm`` (callers limit BLAS to one thread), then selects from the cached ``S``.
    U : (m, k), V : (n_items, k)
        The block's user factors and the item factors as stored (float32 or float64); exact scores use them.
    row_off : (m,) float64
        ``o_u`` (global mean + user bias; 0 without biases). Ignored when ``normalize``.
    item_off, item_off32 : (n_items,) float64 and float32
        ``c_j`` (item bias, or ``β·popularity`` when ``normalize``), and its float32 rounding.
    allowed, seen_indptr, seen_indices, seen_rows
        Candidates, as in :func:`topk_dense`.
    err : (m,) float64
        ``B_u``: a bound on ``|S_bj − u·v_j|``, plus (not ``normalize``) the float32 rounding of ``c_j`` and of
        the sum.
    norm_err : float
        With ``normalize``: the float32 rounding bound of ``a·S_bj + c_j`` (``a = (1 − β)/M_u``, ``|a·S| ≲ 1``).
    normalize : bool, beta : float
        The normalised form (module docstring) with popularity weight ``β``.
    out_idx, out_val : (m, n) int64 / float64, pre-filled with ``-1`` / ``-inf``.
    """
    m = U32.shape[0]
    V32T = V32.T  # a Fortran-ordered (k, n_items) view, whatever the shape (one compiled layout)
    N = V32T.shape[1]
    one_minus_beta = 1.0 - beta
    for c in range(c0, c1):
        ok = allowed.copy()  # allowed and not seen: seen items are unmarked per row, then restored
        cand = np.empty(N, np.int64)
        top32 = np.empty(n, np.float32)
        r0 = c * FACTOR_CHUNK
        r1 = min(m, r0 + FACTOR_CHUNK)
        S = np.dot(U32[r0:r1], V32T)  # the chunk's float32 scores, kept in cache for the two scans
        for b in range(r0, r1):
            row = S[b - r0]
            B = err[b]
            a32 = np.float32(1.0)
            M = 0.0
            if normalize:
                # M_u = max_j |u·v_j| over every item: float32 filter, then float64 among the survivors
                m32 = np.float32(0.0)
                for j0 in range(0, N, _W):
                    if j0 + _W <= N and not _hits_abs(row, m32, j0):
                        continue
                    for j in range(j0, min(j0 + _W, N)):
                        m32 = max(m32, abs(row[j]))
                lim = np.float64(m32) - 2.0 * B
                for j in range(N):
                    if np.float64(abs(row[j])) >= lim:
                        M = max(M, abs(_dot64(U, b, V, j)))
                a = one_minus_beta / M if M > 0 else 0.0
                a32 = np.float32(a)
                # t32 = a32·S + c32: the dot's bound scales by a (|a·S| ≲ 1), plus the caller's rounding bound
                B = a * B + norm_err
            r = seen_rows[b]
            _hide_seen(ok, seen_indptr, seen_indices, r)
            # pass 1: τ = the n-th largest float32 score among the candidates. The hot test is the score against
            # the running threshold (rarely passed); NaN and -inf never pass it
            cnt = 0
            thr = np.float32(-np.inf)
            for j0 in range(0, N, _W):
                if j0 + _W <= N and not _hits(row, item_off32, a32, thr, j0):
                    continue
                for j in range(j0, min(j0 + _W, N)):
                    t = a32 * row[j] + item_off32[j]
                    if t > thr and ok[j]:
                        pos = n - 1 if cnt == n else cnt
                        cnt = cnt + 1 if cnt < n else n
                        while pos > 0 and top32[pos - 1] < t:
                            top32[pos] = top32[pos - 1]
                            pos -= 1
                        top32[pos] = t
                        if cnt == n:
                            thr = top32[n - 1]
            exact_all = cnt < n or not np.isfinite(np.float64(thr)) or not np.isfinite(B)
            # pass 2: the survivors of the filter t32 ≥ τ − 2·B, in index order
            nc = 0
            lim = -np.inf if exact_all else np.float64(thr) - 2.0 * B
            for j0 in range(0, N, _W):
                if not exact_all and j0 + _W <= N and not _hits_ge64(row, item_off32, a32, lim, j0):
                    continue
                for j in range(j0, min(j0 + _W, N)):
                    if ok[j] and (exact_all or np.float64(a32 * row[j] + item_off32[j]) >= lim):
                        cand[nc] = j
                        nc += 1
            _restore(ok, allowed, seen_indptr, seen_indices, r)
            # exact selection among them (float64 scores; ties by smaller index since cand is increasing)
            bv = out_val[b]
            bi = out_idx[b]
            k = 0
            for q in range(nc):
                j = cand[q]
                t = _exact(U, b, V, j, row_off[b], item_off, normalize, one_minus_beta, M)
                if not np.isfinite(t):
                    continue
                if k == n and t <= bv[n - 1]:
                    continue
                k = _insert(bv, bi, k, n, t, j)


def topk_factors(U32, *args):
    """:func:`_topk_factors_nb` for every row of the block, chunks of ``FACTOR_CHUNK`` rows in parallel
    (:func:`~dprec.kernels.als.run_chunks`); the arguments after ``U32`` are those of :func:`_topk_factors_nb`."""
    run_chunks(_topk_factors_nb, -(-U32.shape[0] // FACTOR_CHUNK), U32, *args)
