"""Numba kernels for alternating least squares (non-private ALS and, reused stage by stage, DP-ALS).

All functions are plain ``numba.njit`` kernels over arrays: CSR matrices are passed as
``(indptr, indices, data)``, there are no globals and no random numbers inside (callers draw noise in
Python and add it *between* the stages). Orientation: the user step reads the user×item CSR; the item
step reads its transpose (item-major CSR, i.e. the CSC of the user×item matrix, row indices sorted).

Item step = three stages, so that DP-ALS can add Gaussian noise between them:

(a) :func:`item_stats` — partial sufficient statistics over a block of users ``[u_start, u_stop)``::

        A_j = Σ_i wA_ij · u_i u_iᵀ        (n_items, k, k), float64, symmetric
        b_j = Σ_i wb_ij · u_i             (n_items, k),    float64

    accumulated in float64 whatever the dtype of ``U`` and the weights (float32 inputs are read exactly, all
    products and sums are float64: the result is the exact sum up to float64 rounding — DP-ALS releases it);

    computed in parallel over items on the item-major CSR; the block restriction is a binary search in
    each item's (sorted) user list, so a full pass is one block ``(0, n_users)``;
(b) :func:`reduce_stats` — the sum of per-block partials;
(c) :func:`solve_batched` — ``x_j = (A_j + G + diag(reg_diag_j))⁻¹ b_j`` by a Cholesky factorisation per
    item (float64), in parallel over items.

Explicit ALS uses ``wA = 1`` and ``wb = residual rating``; Hu–Koren–Volinsky implicit ALS uses
``wA = c − 1 = α r``, ``wb = c = 1 + α r`` and ``G = UᵀU`` (the YᵀY trick).

The user step needs no noise; :func:`solve_rows` fuses Gram + Cholesky per row and :func:`cg_rows` runs
warm-started conjugate-gradient steps (implicit feedback), both parallel over cost-balanced row chunks.

Gram blocks are formed by gathering the rated rows into a dense scratch block and calling BLAS ``gemm``
through ``np.dot`` (single-threaded BLAS inside each numba thread: callers limit BLAS threads): a float64
block and ``dgemm`` for the item statistics (whatever the factors' dtype), a block of the factors' dtype for
the user step (``sgemm`` for float32 factors; its Cholesky is float64).
"""

from __future__ import annotations

import ctypes
import itertools
import threading

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import get_cython_function_address, intrinsic

from .._threads import single_threaded_blas

__all__ = [
    "balanced_bounds",
    "gram",
    "item_stats",
    "reduce_stats",
    "solve_batched",
    "solve_rows",
    "cg_rows",
    "explicit_sq_error",
    "implicit_loss",
    "row_gram_solve",
    "clipped_weighted_residuals",
    "global_mean_stats",
    "item_bias_stats",
    "spectral_moment",
    "clip_rows_into",
]

_JIT = dict(cache=True, fastmath=True)
_PJIT = dict(cache=True, fastmath=True, parallel=True)
#: fast-math without nnan/ninf for the Cholesky helpers: their positive-pivot test must stay exact
_FM = {"nsz", "arcp", "contract", "reassoc"}


# ---------------------------------------------------------------------------------------------- helpers
@njit(**_JIT)
def balanced_bounds(indptr, nchunks, row_cost):
    """Boundaries of ``nchunks`` contiguous row ranges of about equal cost ``nnz_r + row_cost``."""
    n = indptr.shape[0] - 1
    bounds = np.empty(nchunks + 1, dtype=np.int64)
    bounds[0] = 0
    bounds[nchunks] = n
    total = float(indptr[n] - indptr[0]) + row_cost * n
    r = 0
    for c in range(1, nchunks):
        target = total * c / nchunks
        while r < n and (float(indptr[r] - indptr[0]) + row_cost * r) < target:
            r += 1
        bounds[c] = r
    return bounds


@njit(cache=True, fastmath=_FM)
def _chol_factor(C):
    """In-place Cholesky ``C = RᵀR`` of the upper triangle (``R`` overwrites it); False at the first pivot
    that is not positive (``C`` not positive definite).
    """
    k = C.shape[0]
    for j in range(k):
        dj = C[j, j]
        if not dj > 0.0:
            return False
        dj = np.sqrt(dj)
        inv = 1.0 / dj
        C[j, j] = dj
        rj = C[j]
        for m in range(j + 1, k):
            rj[m] *= inv
        for i in range(j + 1, k):
            rji = rj[i]
            ri = C[i, i:]
            rt = rj[i:]
            for m in range(k - i):
                ri[m] -= rji * rt[m]
    return True


@njit(cache=True, fastmath=_FM)
def _chol_solve_ws(C, rhs, x, y):
    """Solve ``C x = rhs`` (upper triangle of the SPD ``C`` is overwritten by its factor; ``y`` scratch).
    x = 0 and False when ``C`` is not positive definite."""
    k = C.shape[0]
    if not _chol_factor(C):
        for i in range(k):
            x[i] = 0.0
        return False
    _chol_back_solve(C, rhs, x, y)
    return True


@njit(cache=True, fastmath=_FM)
def _chol_back_solve(C, rhs, x, y):
    """``x = (RᵀR)⁻¹ rhs`` from the upper-triangular Cholesky factor ``R`` held in the upper triangle of ``C``:
    ``Rᵀ y = rhs``, then ``R x = y`` (``y`` scratch)."""
    k = C.shape[0]
    for i in range(k):  # Rᵀ y = rhs
        y[i] = rhs[i]
    for i in range(k):
        yi = y[i] / C[i, i]
        y[i] = yi
        for m in range(i + 1, k):
            y[m] -= C[i, m] * yi
    for i in range(k - 1, -1, -1):  # R x = y
        t = y[i]
        for m in range(i + 1, k):
            t -= C[i, m] * x[m]
        x[i] = t / C[i, i]


@njit(cache=True, fastmath=_FM)
def _chol_solve(A, b, x):
    """Solve ``A x = b`` for symmetric positive definite ``A`` (k×k, float64; only the upper triangle is
    read, and it is overwritten by the factor ``R`` with ``A = RᵀR``).

    Right-looking, row-oriented updates (contiguous inner loops that vectorise). Returns False (and
    x = 0) when a pivot is not positive (``A`` not positive definite). :func:`_chol_solve_ws` with a
    caller-owned scratch vector is the allocation-free form.
    """
    return _chol_solve_ws(A, b, x, np.empty(A.shape[0]))


@njit(**_JIT)
def _lower_bound(a, lo, hi, v):
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------------------------- stage (a)
def _cython_fn(module: str, name: str, n_args: int):
    """A routine of scipy's BLAS/LAPACK (``scipy.linalg.cython_blas`` / ``cython_lapack``: Fortran calling
    convention, every argument by pointer, no return value) as a ctypes function for numba.

    Kernels take it as an argument (a first-class function), never read it as a global: numba cannot cache a
    function whose code embeds a ctypes pointer, but it caches one that receives it.
    """
    p = ctypes.c_void_p
    return ctypes.CFUNCTYPE(None, *([p] * n_args))(get_cython_function_address(module, name))


#: ``dsyrk(uplo, trans, n, k, alpha, a, lda, beta, c, ldc)``: ``C ← α·A·Aᵀ + β·C`` on one triangle
_DSYRK = _cython_fn("scipy.linalg.cython_blas", "dsyrk", 10)
#: ``dpotrf(uplo, n, a, lda, info)``: Cholesky factorisation in place (``info > 0``: not positive definite)
_DPOTRF = _cython_fn("scipy.linalg.cython_lapack", "dpotrf", 5)


@njit(**_JIT)
def _syrk_rows(syrk, G, n, C, iargs, chars, scal):
    """``C ← G[:n]ᵀ G[:n]`` (k×k, float64) by BLAS ``dsyrk``; only the lower triangle of ``C`` (row-major) is
    written. ``G`` is row-major (rows × k), i.e. the column-major k×rows matrix that ``dsyrk('U', 'N')`` reads
    as ``A`` (``C = A·Aᵀ``); column-major upper is row-major lower. ``iargs`` (2, int32), ``chars`` (2, uint8)
    and ``scal`` (2, float64) are caller-owned scratch for the by-reference Fortran arguments."""
    k = G.shape[1]
    iargs[0] = k  # n, lda, ldc (Fortran names)
    iargs[1] = n  # k (Fortran name): the inner dimension
    chars[0] = 85  # 'U'
    chars[1] = 78  # 'N'
    scal[0] = 1.0
    scal[1] = 0.0
    syrk(
        chars[0:].ctypes,
        chars[1:].ctypes,
        iargs[0:].ctypes,
        iargs[1:].ctypes,
        scal[0:].ctypes,
        G.ctypes,
        iargs[0:].ctypes,
        scal[1:].ctypes,
        C.ctypes,
        iargs[0:].ctypes,
    )


@njit(cache=True, fastmath=True, nogil=True)
def _item_stats_nb(c0, c1, bounds, indptr, indices, wA, wb, U, u_start, u_stop, A, b, syrk):
    """Partial sufficient statistics of the items of chunks ``c0 ≤ c < c1`` (items ``bounds[c]`` to
    ``bounds[c + 1]``; run by :func:`run_chunks`) over users ``u_start <= i < u_stop``.

    Parameters
    ----------
    indptr, indices : item-major CSR of the user×item matrix (its CSC), user indices sorted per item.
    wA, wb : float arrays aligned with ``indices``: Gram weights and right-hand-side weights.
    U : (n_users, k) user factors (float32 or float64).
    u_start, u_stop : the user block.
    syrk : BLAS ``dsyrk`` (:data:`_DSYRK`).

    Every product and sum is float64, whatever the input dtypes. An item whose Gram weights are all ``≥ 0``
    (every model's) has ``A_j = GᵀG`` with rows ``g_i = √wA_ij · u_i`` (float64): one ``dsyrk`` (half the
    flops of ``gemm``, exactly symmetric); an item with a negative weight takes ``Gᵀ(wA ∘ G)`` by ``dgemm``.

    Writes, for each of those items,
    ``A[j]`` (k, k) float64, ``A_j = Σ wA_ij u_i u_iᵀ`` (symmetric), and ``b[j]`` (k,) float64, ``b_j = Σ wb_ij u_i``.
    """
    k = U.shape[1]
    for c in range(c0, c1):
        lo_item, hi_item = bounds[c], bounds[c + 1]
        # scratch sized for the largest item of the chunk
        mx = 1
        for j in range(lo_item, hi_item):
            mx = max(mx, indptr[j + 1] - indptr[j])
        # float64 scratch: products and sums in float64, whatever the dtype of U and the weights
        G = np.empty((mx, k))
        C = np.empty((k, k))
        bj = np.empty(k)
        iargs = np.empty(2, dtype=np.int32)
        chars = np.empty(2, dtype=np.uint8)
        scal = np.empty(2)
        for j in range(lo_item, hi_item):
            s = _lower_bound(indices, indptr[j], indptr[j + 1], u_start)
            e = _lower_bound(indices, s, indptr[j + 1], u_stop)
            n = e - s
            if n == 0:
                A[j] = 0.0
                b[j] = 0.0
                continue
            nonneg = True
            for p in range(s, e):
                nonneg = nonneg and wA[p] >= 0
            bj[:] = 0.0
            for t in range(n):
                p = s + t
                i = indices[p]
                wbv = np.float64(wb[p])
                sw = np.sqrt(np.float64(wA[p])) if nonneg else 1.0
                for a in range(k):
                    v = np.float64(U[i, a])
                    G[t, a] = sw * v
                    bj[a] += wbv * v
            if nonneg:
                _syrk_rows(syrk, G, n, C, iargs, chars, scal)
                for a in range(k):
                    b[j, a] = bj[a]
                    for q in range(a + 1):
                        A[j, a, q] = C[a, q]
                        A[j, q, a] = C[a, q]
            else:
                GW = np.empty((n, k))
                for t in range(n):
                    wa = np.float64(wA[s + t])
                    for a in range(k):
                        GW[t, a] = wa * G[t, a]
                Aj = np.dot(G[:n].T, GW)
                for a in range(k):
                    b[j, a] = bj[a]
                    for q in range(k):
                        A[j, a, q] = 0.5 * (Aj[a, q] + Aj[q, a])


# ---------------------------------------------------------------------------------------------- stage (b)
def reduce_stats(parts):
    """Sum per-block partial statistics ``[(A_1, b_1), (A_2, b_2), ...]`` into one ``(A, b)``."""
    parts = list(parts)
    if not parts:
        raise ValueError("reduce_stats needs at least one (A, b) partial")
    A = np.array(parts[0][0], dtype=np.float64, copy=True)
    b = np.array(parts[0][1], dtype=np.float64, copy=True)
    for Ap, bp in parts[1:]:
        A += Ap
        b += bp
    return A, b


# ---------------------------------------------------------------------------------------------- stage (c)
@njit(cache=True, fastmath=True, nogil=True)
def _solve_batched_nb(c0, c1, A, b, reg_diag, G, out, nchunks, fails):
    """``out_j = (A_j + G + diag(reg_diag_j))⁻¹ b_j`` (Cholesky, float64) for the items of chunks ``c0 ≤ c < c1``
    of ``nchunks`` equal chunks (run by :func:`run_chunks`).

    ``A`` (n, k, k) and ``b`` (n, k) are read only; ``G`` (k, k) is a shared base matrix (zeros for explicit
    ALS, ``UᵀU`` for implicit); ``reg_diag`` (n, k) holds the per-item ridge λ_j on the diagonal;
    ``out`` (n, k) receives the solutions (any float dtype). ``fails[c]`` receives chunk ``c``'s number of
    systems that were not positive definite (their solution is set to 0).
    """
    n, k = b.shape
    step = (n + nchunks - 1) // nchunks
    M = np.empty((k, k))
    rhs = np.empty(k)
    x = np.empty(k)
    for c in range(c0, c1):
        fails[c] = 0
        for j in range(c * step, min(n, (c + 1) * step)):
            for a in range(k):
                rhs[a] = b[j, a]
                for q in range(k):
                    M[a, q] = A[j, a, q] + G[a, q]
                M[a, a] += reg_diag[j, a]
            if not _chol_solve(M, rhs, x):
                fails[c] += 1
            for a in range(k):
                out[j, a] = x[a]


# ---------------------------------------------------------------------------------------------- user step
@njit(**_JIT)
def row_gram_solve(cols, wA, wb, Y, G, reg, x, Gbuf, GWbuf):
    """Solve one row: ``x = (G + Σ wA_j y_j y_jᵀ + diag(reg))⁻¹ Σ wb_j y_j`` (fold-in and user step)."""
    k = Y.shape[1]
    n = cols.shape[0]
    rhs = np.zeros(k)
    for t in range(n):
        j = cols[t]
        wa = wA[t]
        wbv = wb[t]
        for a in range(k):
            v = Y[j, a]
            Gbuf[t, a] = v
            GWbuf[t, a] = wa * v
            rhs[a] += wbv * v
    M = np.empty((k, k))
    if n > 0:
        Aj = np.dot(Gbuf[:n].T, GWbuf[:n])
        for a in range(k):
            for q in range(k):
                M[a, q] = 0.5 * (Aj[a, q] + Aj[q, a]) + G[a, q]
    else:
        for a in range(k):
            for q in range(k):
                M[a, q] = G[a, q]
    for a in range(k):
        M[a, a] += reg[a]
    return _chol_solve(M, rhs, x)


@njit(cache=True, fastmath=True, nogil=True)
def _solve_rows_nb(c0, c1, bounds, indptr, indices, wA, wb, Y, G, reg_rows, out, fails):
    """Fused per-row Gram + Cholesky: ``out_r = (G + Σ_j wA_rj y_j y_jᵀ + diag(reg_rows_r))⁻¹ Σ_j wb_rj y_j``
    for the rows of chunks ``c0 ≤ c < c1`` (rows ``bounds[c]`` to ``bounds[c + 1]``; run by :func:`run_chunks`).
    ``fails[c]`` receives chunk ``c``'s number of non positive-definite systems.
    """
    k = Y.shape[1]
    for c in range(c0, c1):
        fails[c] = 0
        lo, hi = bounds[c], bounds[c + 1]
        mx = 1
        for r in range(lo, hi):
            mx = max(mx, indptr[r + 1] - indptr[r])
        Gb = np.empty((mx, k), dtype=Y.dtype)
        GWb = np.empty((mx, k), dtype=Y.dtype)
        x = np.empty(k)
        for r in range(lo, hi):
            s, e = indptr[r], indptr[r + 1]
            ok = row_gram_solve(indices[s:e], wA[s:e], wb[s:e], Y, G, reg_rows[r], x, Gb, GWb)
            if not ok:
                fails[c] += 1
            for a in range(k):
                out[r, a] = x[a]


# ---------------------------------------------------------------------------------------------- implicit CG
#: CG row blocks: at most this many rows and (unless a single row is larger) as many stored entries as fill
#: ``_CG_BLOCK_BYTES`` of gathered float32 rows (:func:`_cg_block_entries`). The blocks depend on ``indptr`` and
#: ``k`` only (never on the thread count), so every row's arithmetic is the same for any number of threads; 64
#: rows make the block's ``P·S`` product an ``sgemm`` of useful size.
_CG_BLOCK_ROWS = 64
#: 512 KiB: the gathered rows ``Yb`` stay in a core's L2 cache (512 KiB–2 MiB on current x86 servers) across the
#: block's four passes over them. The earlier fixed cap of 8,192 entries was 2 MiB at k = 64, which spilled to
#: L3: the implicit CG iteration was about 5% slower on the 2-core Intel Xeon benchmark machine (CHANGELOG).
_CG_BLOCK_BYTES = 1 << 19
#: gathered rows ahead of the copy that are prefetched (the random reads of ``Y`` are the item step's cost)
_CG_PREFETCH = 16


@intrinsic
def _prefetch(typingctx, arr, row, col):
    """``llvm.prefetch`` (read, keep in all cache levels) of the address of ``arr[row, col]`` (2-D array).

    The name ``llvm.prefetch.p0`` is the opaque-pointer mangling (the LLVM of numba ≥ 0.68, the floor in
    pyproject.toml); a typed-pointer LLVM would want ``p0i8``."""
    sig = types.void(arr, row, col)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [context.cast(builder, args[i + 1], signature.args[i + 1], types.intp) for i in range(2)]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
        )
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


def _cg_block_entries(k):
    """Stored entries per CG block: ``_CG_BLOCK_BYTES`` of gathered float32 rows of length ``k`` (at least
    ``_CG_BLOCK_ROWS``)."""
    return max(_CG_BLOCK_ROWS, _CG_BLOCK_BYTES // (4 * max(int(k), 1)))


@njit(**_JIT)
def cg_blocks(indptr, max_rows, max_entries):
    """Boundaries of consecutive row blocks of at most ``max_rows`` rows and ``max_entries`` stored entries
    (a row with more entries is a block of its own); a function of ``indptr`` alone."""
    n = indptr.shape[0] - 1
    out = np.empty(n + 1, dtype=np.int64)
    out[0] = 0
    nb = 0
    r = 0
    while r < n:
        e = r + 1
        while e < n and e - r < max_rows and indptr[e + 1] - indptr[r] <= max_entries:
            e += 1
        nb += 1
        out[nb] = e
        r = e
    return out[: nb + 1]


@njit(**_JIT)
def _aligned_f32(n, k):
    """An uninitialised (n, k) float32 C array starting on a 64-byte boundary (rows of 64 float32 = whole
    cache lines: no load straddles two lines, and the vector loops take the same path for every buffer)."""
    buf = np.empty(n * k + 16, dtype=np.float32)
    off = ((64 - buf.ctypes.data % 64) % 64) // 4
    return buf[off : off + n * k].reshape((n, k))


@njit(inline="always", **_JIT)
def _cg_sparse_pass(Yb, cm, s, e, v, i, out, k, resid):
    """``out[i] += Σ_{t∈[s,e)} w_t Yb[t]`` with ``d_t = Yb[t]·v[i]`` and ``w_t = cm_t d_t`` (``resid``:
    ``w_t = (cm_t + 1) − cm_t d_t``, the right-hand side minus the sparse part of ``A x``).

    Four gathered rows per sweep: their four dots share the loads of ``v[i]`` and one update of ``out[i]``
    takes the four rows (one read and write of ``out[i]`` per four entries instead of per entry)."""
    one = np.float32(1.0)
    t = s
    while t + 4 <= e:
        d0 = np.float32(0.0)
        d1 = np.float32(0.0)
        d2 = np.float32(0.0)
        d3 = np.float32(0.0)
        for a in range(k):
            va = v[i, a]
            d0 += Yb[t, a] * va
            d1 += Yb[t + 1, a] * va
            d2 += Yb[t + 2, a] * va
            d3 += Yb[t + 3, a] * va
        if resid:
            d0 = cm[t] + one - cm[t] * d0
            d1 = cm[t + 1] + one - cm[t + 1] * d1
            d2 = cm[t + 2] + one - cm[t + 2] * d2
            d3 = cm[t + 3] + one - cm[t + 3] * d3
        else:
            d0 *= cm[t]
            d1 *= cm[t + 1]
            d2 *= cm[t + 2]
            d3 *= cm[t + 3]
        for a in range(k):
            out[i, a] += (d0 * Yb[t, a] + d1 * Yb[t + 1, a]) + (d2 * Yb[t + 2, a] + d3 * Yb[t + 3, a])
        t += 4
    while t < e:
        d = np.float32(0.0)
        for a in range(k):
            d += Yb[t, a] * v[i, a]
        d = (cm[t] + one - cm[t] * d) if resid else cm[t] * d
        for a in range(k):
            out[i, a] += d * Yb[t, a]
        t += 1


@njit(**_JIT)
def _cg_block(lo, hi, indptr, indices, conf, Y, S, X, cg_steps, Yb, cm, xb, rb, pb, apb, rs, act):
    """``cg_steps`` CG steps for the rows ``[lo, hi)`` of one block, in place on ``X`` (see :func:`_cg_rows_nb`).

    The block's rows advance together: the dense part ``P·S`` of ``A p`` for all of them is one ``sgemm``
    (BLAS through ``np.dot``), the sparse part ``Σ_j (c_j − 1) y_j (y_jᵀ p)`` reads the block's gathered
    item vectors ``Yb`` (copied once, contiguously, with the random reads of ``Y`` prefetched). A row that has
    stopped (tiny residual, or non-positive curvature) keeps ``p = 0`` and is skipped."""
    k = Y.shape[1]
    B = hi - lo
    s0 = indptr[lo]
    ne = indptr[hi] - s0
    for t in range(ne):
        if t + _CG_PREFETCH < ne:
            jp = indices[s0 + t + _CG_PREFETCH]
            for a in range(0, k, 16):
                _prefetch(Y, jp, a)
        j = indices[s0 + t]
        for a in range(k):
            Yb[t, a] = Y[j, a]
        cm[t] = np.float32(conf[s0 + t]) - np.float32(1.0)
    for i in range(B):
        for a in range(k):
            xb[i, a] = X[lo + i, a]
    # r = b − A x = Σ_j [c_j − (c_j − 1) y_j·x] y_j − (YᵀY + reg I) x
    np.dot(xb[:B], S, apb[:B])
    for i in range(B):
        s, e = indptr[lo + i] - s0, indptr[lo + i + 1] - s0
        for a in range(k):
            rb[i, a] = -apb[i, a]
        _cg_sparse_pass(Yb, cm, s, e, xb, i, rb, k, True)
        acc = np.float32(0.0)
        for a in range(k):
            pb[i, a] = rb[i, a]
            acc += rb[i, a] * rb[i, a]
        rs[i] = acc
        act[i] = not acc < 1e-20
        if not act[i]:
            pb[i, :] = 0.0
    for _ in range(cg_steps):
        np.dot(pb[:B], S, apb[:B])
        for i in range(B):
            if not act[i]:
                continue
            _cg_sparse_pass(Yb, cm, indptr[lo + i] - s0, indptr[lo + i + 1] - s0, pb, i, apb, k, False)
            pAp = np.float32(0.0)
            for a in range(k):
                pAp += pb[i, a] * apb[i, a]
            if not pAp > 0:
                act[i] = False
                pb[i, :] = 0.0
                continue
            alpha = rs[i] / pAp
            rsnew = np.float32(0.0)
            for a in range(k):
                xb[i, a] += alpha * pb[i, a]
                rb[i, a] -= alpha * apb[i, a]
                rsnew += rb[i, a] * rb[i, a]
            if rsnew < 1e-20:
                act[i] = False
                pb[i, :] = 0.0
                continue
            beta = rsnew / rs[i]
            for a in range(k):
                pb[i, a] = rb[i, a] + beta * pb[i, a]
            rs[i] = rsnew
    for i in range(B):
        for a in range(k):
            X[lo + i, a] = xb[i, a]


@njit(nogil=True, **_JIT)
def _cg_rows_nb(c0, c1, indptr, indices, conf, Y, YtY, reg, X, cg_steps, blocks, nchunks):
    """Warm-started conjugate gradient for implicit ALS rows, in place on ``X``.

    Solves ``(YᵀY + reg·I + Σ_j (c_j − 1) y_j y_jᵀ) x = Σ_j c_j y_j`` for every row with ``cg_steps``
    iterations from the current ``X`` (Hu–Koren–Volinsky with preference 1 on observed entries;
    ``conf`` holds c = 1 + α r). ``YtY`` is the float64 Gram of ``Y`` (without ``reg``); ``Y`` is float32,
    C-contiguous and 64-byte aligned. Arithmetic is float32. The rows go in the fixed blocks ``blocks``
    (:func:`cg_blocks`), ``nchunks`` contiguous runs of blocks handed out to the threads; a row's result depends
    on its block only, so it is the same for every thread count and schedule. A serial kernel over the chunks
    ``c0 ≤ c < c1`` (:func:`run_chunks`).
    """
    k = Y.shape[1]
    nb = blocks.shape[0] - 1
    S = YtY.astype(np.float32)
    for a in range(k):
        S[a, a] += reg
    step = (nb + nchunks - 1) // nchunks
    for c in range(c0, c1):
        b0 = min(c * step, nb)
        b1 = min(b0 + step, nb)
        mr = 1
        me = 1
        for b in range(b0, b1):
            mr = max(mr, blocks[b + 1] - blocks[b])
            me = max(me, indptr[blocks[b + 1]] - indptr[blocks[b]])
        Yb = _aligned_f32(me, k)
        cm = np.empty(me, dtype=np.float32)
        xb = _aligned_f32(mr, k)
        rb = _aligned_f32(mr, k)
        pb = _aligned_f32(mr, k)
        apb = _aligned_f32(mr, k)
        rs = np.empty(mr, dtype=np.float32)
        act = np.empty(mr, dtype=np.bool_)
        for b in range(b0, b1):
            _cg_block(
                blocks[b], blocks[b + 1], indptr, indices, conf, Y, S, X, cg_steps, Yb, cm, xb, rb, pb, apb, rs, act
            )


# ---------------------------------------------------------------------------------------------- losses
# Serial chunk kernels on run_chunks (see run_chunks for why not prange): each row's term depends on the row
# only, so the chunking does not change the result.
@njit(nogil=True, **_JIT)
def _explicit_sq_error_nb(c0, c1, bounds, indptr, indices, data, U, V, mu, bu, bi, tot):
    k = U.shape[1]
    for u in range(bounds[c0], bounds[c1]):
        acc = 0.0
        for t in range(indptr[u], indptr[u + 1]):
            i = indices[t]
            d = 0.0
            for a in range(k):
                d += float(U[u, a]) * float(V[i, a])
            e = data[t] - mu - bu[u] - bi[i] - d
            acc += e * e
        tot[u] = acc


def _loss_chunks(indptr, k):
    nchunks = 16 * _nchunks()
    return nchunks, balanced_bounds(_ro(indptr), nchunks, float(k))


def explicit_sq_error(indptr, indices, data, U, V, mu, bu, bi):
    """``Σ (r_ui − μ − b_u − c_i − u·v)²`` over the stored ratings (float64)."""
    tot = np.zeros(indptr.shape[0] - 1)
    nchunks, bounds = _loss_chunks(indptr, U.shape[1])
    run_chunks(_explicit_sq_error_nb, nchunks, bounds, indptr, indices, data, U, V, float(mu), bu, bi, tot)
    return tot.sum()


@njit(**_JIT)
def _gram_and_sq_norm_nb(V):
    """``(VᵀV, ‖V‖²_F)`` in float64, summed row by row."""
    k = V.shape[1]
    VtV = np.zeros((k, k))
    for i in range(V.shape[0]):
        for a in range(k):
            for q in range(k):
                VtV[a, q] += float(V[i, a]) * float(V[i, q])
    nv = 0.0
    for i in range(V.shape[0]):
        for a in range(k):
            nv += float(V[i, a]) * float(V[i, a])
    return VtV, nv


@njit(nogil=True, **_JIT)
def _implicit_loss_nb(c0, c1, bounds, indptr, indices, conf, U, V, VtV, reg, tot):
    k = U.shape[1]
    for u in range(bounds[c0], bounds[c1]):
        # Σ_i (u·v_i)² over all items = uᵀ VtV u
        acc = 0.0
        for a in range(k):
            t = 0.0
            for q in range(k):
                t += VtV[a, q] * float(U[u, q])
            acc += float(U[u, a]) * t
        for t in range(indptr[u], indptr[u + 1]):
            i = indices[t]
            d = 0.0
            for a in range(k):
                d += float(U[u, a]) * float(V[i, a])
            c = conf[t]
            acc += c * (1.0 - d) * (1.0 - d) - d * d
        nu = 0.0
        for a in range(k):
            nu += float(U[u, a]) * float(U[u, a])
        tot[u] = acc + reg * nu


def implicit_loss(indptr, indices, conf, U, V, reg):
    """HKV objective ``Σ_{u,i} c_ui (p_ui − u·v)² + reg (‖U‖² + ‖V‖²)`` using the YᵀY trick (float64)."""
    VtV, nv = _gram_and_sq_norm_nb(V)
    tot = np.zeros(indptr.shape[0] - 1)
    nchunks, bounds = _loss_chunks(indptr, U.shape[1])
    run_chunks(_implicit_loss_nb, nchunks, bounds, indptr, indices, conf, U, V, VtV, float(reg), tot)
    return tot.sum() + reg * nv


# ---------------------------------------------------------------------------------------------- residuals
# fast-math without nnan/ninf: the clip compares with bound = inf (no clipping) and must stay an exact select
@njit(cache=True, parallel=True, fastmath=_FM)
def _residuals_nb(data, rows, cols, mu, row_bias, col_bias, w, bound, out):
    for t in prange(data.shape[0]):
        e = data[t] - mu - row_bias[rows[t]] - col_bias[cols[t]]
        if e > bound:
            e = bound
        elif e < -bound:
            e = -bound
        out[t] = w[t] * e


def clipped_weighted_residuals(data, rows, cols, mu, row_bias, col_bias, w, bound=np.inf, out=None):
    """``w_t · clip(r_t − μ − row_bias[rows_t] − col_bias[cols_t], −bound, bound)`` for every stored entry t.

    One fused parallel pass (the DP-ALS residual statistic's per-entry term); ``bound=inf`` does not clip.
    The residual and its clip are float64 (the clip is an exact select, so ``|clip| ≤ bound`` holds exactly);
    the product with ``w`` is float64 for float64 ``w``, then rounded once into ``out``'s dtype.
    ``out``: a preallocated (nnz,) float32 or float64 array to write into (and return) — reusing one across
    iterations avoids faulting in a fresh nnz-sized array every call; default a new float64 array.
    """
    if out is None:
        out = np.empty(data.shape[0])
    elif out.shape != data.shape or out.dtype not in (np.float32, np.float64) or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous float32/float64 array of shape {data.shape}")
    # numba specialises on the input dtypes: no conversion copies of the (nnz,) arrays
    # (row_bias/col_bias are small per-row/per-column vectors: made contiguous, a copy only of a strided view)
    _residuals_nb(
        _ro(data),
        _ro(rows),
        _ro(cols),
        float(mu),
        _ro(np.ascontiguousarray(row_bias, np.float64)),
        _ro(np.ascontiguousarray(col_bias, np.float64)),
        _ro(w),
        float(bound),
        out,
    )
    return out


# ---------------------------------------------------------------------------------------------- wrappers
# Thin Python entry points: they pick the chunk count from numba's current thread count (numba cannot
# cache functions that query it inside nopython code) and allocate outputs.
def _ro(a):
    """A read-only view of ``a`` (never a copy), for the arrays a kernel only reads.

    numba compiles one specialisation per argument mutability: callers' arrays are sometimes read-only (loaded,
    shared or broadcast data) and sometimes not, so the wrappers pass every read-only input as a read-only view,
    and each kernel compiles once per genuinely different dtype instead of once per mix of flags.
    """
    a = np.asarray(a).view()
    a.flags.writeable = False
    return a


def _nchunks() -> int:
    return max(1, int(numba.get_num_threads()))


#: Partial sums of the reductions (``gram`` and the DP-ALS statistics): a constant, so that the float64 partials
#: and their chunk-order sum, and with them the last bits of every fit, are the same for every thread count.
#: Eight keeps up to eight threads busy and the per-part buffers (``8 × 2 × n_items`` for the item biases) small.
REDUCTION_PARTS = 8


def _sum_parts(parts):
    """``Σ_c parts[c]`` (float64) added in chunk order: the reduction of per-chunk partials, as a fixed order of
    float64 sums (numpy's ``sum`` may reorder)."""
    out = np.zeros(parts.shape[1:])
    for p in parts:
        out += p
    return out


def run_chunks(kernel, nchunks, *args):
    """Call the serial ``nogil`` kernel ``kernel(c0, c1, *args)`` over chunks ``[0, nchunks)`` on
    ``numba.get_num_threads()`` Python threads (the caller's thread is one), handing out runs of chunks as
    threads free up.

    The alternative to a ``prange`` kernel for large kernels: numba compiles a parallel kernel into four
    libraries (the loop body, two wrappers and the caller), each holding and re-optimising the whole call tree
    below it, so a large one costs far more than its serial compile (the PSD item solve: 42 s against 24 s on
    the 2-core AMD EPYC machine). A chunk's result must depend on its index only, never on how chunks are
    grouped into calls or on the thread that runs them.
    Runs are ``nchunks / (16 · threads)`` chunks long (at least one): sixteen hand-outs per thread keep a
    descheduled thread from holding up the pass, and a run amortises the ~10 µs dispatch of a call.
    """
    threads = max(1, min(int(numba.get_num_threads()), nchunks))
    run = max(1, nchunks // (16 * threads))
    starts = itertools.count(0, run)  # next() is atomic under the GIL
    errors = []

    def work():
        try:
            for c0 in starts:
                if c0 >= nchunks:
                    return
                kernel(c0, min(nchunks, c0 + run), *args)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    if threads == 1:
        work()
    else:
        # the kernels call BLAS (dsyrk, gemm) from every thread: one BLAS thread each, or the cores are
        # oversubscribed (item_stats called outside a fit took 3–4 s instead of 0.3 s); a fit already holds this
        with single_threaded_blas():
            pool = [threading.Thread(target=work, daemon=True) for _ in range(threads - 1)]
            for t in pool:
                t.start()
            work()
            for t in pool:
                t.join()
    if errors:
        raise errors[0]


def gram(Y):
    """``YᵀY`` (k×k, float64) of a factor matrix: one BLAS product ``Y_cᵀY_c`` in ``Y``'s dtype per block of rows
    (:data:`REDUCTION_PARTS` blocks, in parallel: numpy releases the GIL in BLAS), summed in float64 in block
    order.

    Plain numpy on purpose: the same products through ``np.dot`` in a numba ``prange`` kernel cost ~7 s of cold
    compile per dtype for no speed."""
    Y = np.ascontiguousarray(Y)
    n, k = Y.shape
    nb = REDUCTION_PARTS
    step = -(-n // nb)
    parts = np.zeros((nb, k, k))

    def blocks(c0, c1):
        for c in range(c0, c1):
            blk = Y[min(c * step, n) : min((c + 1) * step, n)]
            if blk.shape[0]:
                parts[c] = blk.T @ blk

    run_chunks(blocks, nb)
    return _sum_parts(parts)


def item_stats(indptr, indices, wA, wb, U, u_start=0, u_stop=None, out=None):
    """Stage (a): partial statistics ``(A, b)`` of every item over the user block ``[u_start, u_stop)``.

    ``indptr, indices`` are the item-major CSR (CSC of the user×item matrix) with sorted user indices;
    ``wA``/``wb`` are aligned with ``indices``. Returns ``A`` (n_items, k, k) float64 symmetric and
    ``b`` (n_items, k) float64: ``A_j = Σ_i wA_ij u_i u_iᵀ``, ``b_j = Σ_i wb_ij u_i`` over users in the block,
    accumulated in float64 (``U``, ``wA``, ``wb`` may be float32: they are read exactly and every product and
    sum is float64).
    ``out=(A, b)`` reuses preallocated float64 arrays (every entry is overwritten).
    """
    U = np.ascontiguousarray(U)
    if u_stop is None:
        u_stop = U.shape[0]
    if not (0 <= u_start <= u_stop <= U.shape[0]):
        raise ValueError(f"user block [{u_start}, {u_stop}) is outside 0..{U.shape[0]}")
    n_items, k = indptr.shape[0] - 1, U.shape[1]
    if out is None:
        A, b = np.empty((n_items, k, k)), np.empty((n_items, k))
    else:
        A, b = out
        if A.shape != (n_items, k, k) or b.shape != (n_items, k) or A.dtype != np.float64 or b.dtype != np.float64:
            raise ValueError(f"out must be float64 arrays of shapes {(n_items, k, k)} and {(n_items, k)}")
    nchunks = max(1, min(n_items, 8 * _nchunks()))  # cost-balanced chunks, handed out dynamically
    indptr = _ro(indptr)
    bounds = balanced_bounds(indptr, nchunks, 8.0)
    run_chunks(_item_stats_nb, nchunks, bounds, indptr, _ro(indices), _ro(wA), _ro(wb), _ro(U), int(u_start),
               int(u_stop), A, b, _DSYRK)  # fmt: skip
    return A, b


def solve_batched(A, b, reg_diag, G=None, out=None, dtype=np.float32):
    """Stage (c): ``x_j = (A_j + G + diag(reg_diag_j))⁻¹ b_j`` for all j (Cholesky per item, float64).

    ``reg_diag`` may be a scalar, a (k,) vector or an (n, k) array; ``G`` an optional shared (k, k) matrix.
    Returns ``(x, n_failed)`` where ``n_failed`` counts systems that were not positive definite (x_j = 0).
    """
    A = np.ascontiguousarray(A, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    n, k = b.shape
    if A.shape != (n, k, k):
        raise ValueError(f"A must have shape (n, k, k) = {(n, k, k)}, got {A.shape}")
    reg = _ro(np.ascontiguousarray(np.broadcast_to(np.asarray(reg_diag, dtype=np.float64), (n, k))))
    G = np.zeros((k, k)) if G is None else np.ascontiguousarray(G, dtype=np.float64)
    if out is None:
        out = np.empty((n, k), dtype=dtype)
    nchunks = _nchunks()
    fails = np.zeros(nchunks, dtype=np.int64)
    run_chunks(_solve_batched_nb, nchunks, _ro(A), _ro(b), reg, _ro(G), out, nchunks, fails)
    return out, int(fails.sum())


def solve_rows(indptr, indices, wA, wb, Y, G, reg_rows, out):
    """Fused Gram + Cholesky per CSR row (the user step); returns the number of failed systems."""
    n = indptr.shape[0] - 1
    k = Y.shape[1]
    reg = _ro(np.ascontiguousarray(np.broadcast_to(np.asarray(reg_rows, dtype=np.float64), (n, k))))
    indptr = _ro(indptr)
    nchunks = _nchunks()
    bounds = balanced_bounds(indptr, nchunks, float(k) / 3.0 + 8.0)
    fails = np.zeros(nchunks, dtype=np.int64)
    Y, G = _ro(np.ascontiguousarray(Y)), _ro(np.ascontiguousarray(G, dtype=np.float64))
    run_chunks(_solve_rows_nb, nchunks, bounds, indptr, _ro(indices), _ro(wA), _ro(wb), Y, G, reg, out, fails)
    return int(fails.sum())


def aligned_float32(Y):
    """``Y`` as a C-contiguous float32 array on a 64-byte boundary: ``Y`` itself when it already is one, else a
    copy (converted on the way in, so a float64 ``Y`` is copied once)."""
    Y = np.asarray(Y)
    if Y.dtype == np.float32 and Y.flags.c_contiguous and Y.ctypes.data % 64 == 0:
        return Y
    buf = np.empty(Y.size * 4 + 64, dtype=np.uint8)
    off = (-buf.ctypes.data) % 64
    out = buf[off : off + Y.size * 4].view(np.float32).reshape(Y.shape)
    out[...] = Y
    return out


def cg_rows(indptr, indices, conf, Y, YtY, reg, X, cg_steps=3):
    """Warm-started CG steps for implicit ALS rows, in place on ``X`` (float32 arithmetic).

    ``Y`` is read as float32 (an aligned copy is made unless it is already one, see :func:`aligned_float32`).
    Results are bit-identical for every thread count (fixed row blocks, see :func:`_cg_rows_nb`).
    """
    indptr, indices = _ro(indptr), _ro(indices)
    blocks = cg_blocks(indptr, _CG_BLOCK_ROWS, _cg_block_entries(Y.shape[1]))
    nchunks = max(1, min(blocks.shape[0] - 1, 16 * _nchunks()))  # handed out as threads free up
    run_chunks(
        _cg_rows_nb,
        nchunks,
        indptr,
        indices,
        conf,
        aligned_float32(Y),
        np.ascontiguousarray(YtY, dtype=np.float64),
        float(reg),
        X,
        int(cg_steps),
        blocks,
        nchunks,
    )


# ---------------------------------------------------------------------------------------------- release statistics
# Fused parallel forms of the per-user release statistics of dprec.models.releases (GlobalMean, ItemBiases,
# SpectralMoment) and of the user-factor clip of the item statistics. They compute the same float64 values as
# the numpy/scipy expressions they replace, up to the order of the float64 sums (per-chunk partials, then a
# reduction). No fast-math: the clips are exact selects and every operation stays IEEE float64.
@njit(cache=True, nogil=True)
def _global_mean_nb(c0, c1, bounds, indptr, data, k, mid, rating_unit, parts):
    for c in range(c0, c1):
        s_sum = 0.0
        n_sum = 0.0
        for u in range(bounds[c], bounds[c + 1]):
            lo, hi = indptr[u], indptr[u + 1]
            w = 1.0 if rating_unit else min(1.0, k / float(max(hi - lo, 1)))
            for t in range(lo, hi):
                s_sum += w * (np.float64(data[t]) - mid)
                n_sum += w
        parts[c, 0] = s_sum
        parts[c, 1] = n_sum


def global_mean_stats(indptr, data, k, mid, *, rating_unit):
    """``(Σ_t w_t (r_t − mid), Σ_t w_t)`` with scalar weights ``w = min(1, k/max(n_u, 1))`` per user row
    (``w = 1`` when ``rating_unit``): :class:`dprec.models.releases.GlobalMean`'s statistic, one parallel pass."""
    indptr, nchunks = _ro(indptr), REDUCTION_PARTS
    bounds, parts = balanced_bounds(indptr, nchunks, 1.0), np.zeros((nchunks, 2))
    run_chunks(_global_mean_nb, nchunks, bounds, indptr, _ro(data), float(k), float(mid), bool(rating_unit), parts)
    return _sum_parts(parts)


@njit(cache=True, nogil=True)
def _item_bias_nb(c0, c1, bounds, indptr, indices, data, mu, user_reg, bound, k, rating_unit, parts):
    for c in range(c0, c1):
        S = parts[c, 0]
        N = parts[c, 1]
        for u in range(bounds[c], bounds[c + 1]):
            lo, hi = indptr[u], indptr[u + 1]
            if hi == lo:
                continue
            off = 0.0
            w = 1.0
            if not rating_unit:
                for t in range(lo, hi):
                    off += np.float64(data[t]) - mu
                off = off / (float(hi - lo) + user_reg)
                w = min(1.0, np.sqrt(k / float(hi - lo)))
            for t in range(lo, hi):
                e = np.float64(data[t]) - mu - off
                if e > bound:
                    e = bound
                elif e < -bound:
                    e = -bound
                S[indices[t]] += w * e
                N[indices[t]] += w


def item_bias_stats(indptr, indices, data, n_items, mu, user_reg, bound, k, *, rating_unit):
    """The stacked ``(S_j, N_j)_j`` of :class:`dprec.models.releases.ItemBiases` with weighting, one parallel pass.

    Per user row ``u`` (``n_u`` entries): offset ``β_u = Σ_t (r_t − μ)/(n_u + user_reg)`` and weight
    ``w_u = min(1, √(k/n_u))`` (``β = 0``, ``w = 1`` when ``rating_unit``); ``S_j = Σ w_u clip(r − μ − β_u, ±bound)``,
    ``N_j = Σ w_u`` over the entries of item ``j``. Returns a float64 (2·n_items,) vector.
    """
    indptr, nchunks = _ro(indptr), REDUCTION_PARTS
    bounds, parts = balanced_bounds(indptr, nchunks, 1.0), np.zeros((nchunks, 2, int(n_items)))
    run_chunks(_item_bias_nb, nchunks, bounds, indptr, _ro(indices), _ro(data), float(mu), float(user_reg),
               float(bound), float(k), bool(rating_unit), parts)  # fmt: skip
    return _sum_parts(parts).reshape(-1)


@njit(cache=True, nogil=True)
def _spectral_moment_nb(c0, c1, bounds, indptr, indices, data, mu, item_bias, pos, bias_reg, bound, k, parts):
    for c in range(c0, c1):
        C = parts[c]
        mx = 1
        for u in range(bounds[c], bounds[c + 1]):
            mx = max(mx, indptr[u + 1] - indptr[u])
        ps = np.empty(mx, dtype=np.int64)
        xs = np.empty(mx)
        for u in range(bounds[c], bounds[c + 1]):
            lo, hi = indptr[u], indptr[u + 1]
            if hi == lo:
                continue
            ub = 0.0
            for t in range(lo, hi):
                ub += np.float64(data[t]) - mu - item_bias[indices[t]]
            ub = ub / (float(hi - lo) + bias_reg)
            n_s = 0
            for t in range(lo, hi):
                p = pos[indices[t]]
                if p >= 0:
                    e = (np.float64(data[t]) - mu - item_bias[indices[t]]) - ub
                    if e > bound:
                        e = bound
                    elif e < -bound:
                        e = -bound
                    ps[n_s] = p
                    xs[n_s] = e
                    n_s += 1
            if n_s < 2:
                continue
            w = min(1.0, np.sqrt(k / float(n_s)))
            for a in range(n_s):
                xs[a] = w * xs[a]
            for a in range(n_s):  # positions rise along the row (sorted item indices): the upper triangle
                pa, xa = ps[a], xs[a]
                for b in range(a + 1, n_s):
                    C[pa, ps[b]] += xa * xs[b]


def spectral_moment(indptr, indices, data, mu, item_bias, items, bias_reg, bound, k):
    """:class:`dprec.models.releases.SpectralMoment`'s ``C`` (M × M float64, zero diagonal), one parallel pass.

    Per user row: local bias ``b_u = Σ_t (r_t − μ − c_j)/(n_u + bias_reg)`` over all of the row's entries;
    ``x = min(1, √(k/n_uS)) · clip(r − μ − c_j − b_u, ±bound)`` on its entries in ``items`` (``n_uS`` of them);
    ``C[a, b] = Σ_u x_a x_b`` for ``a ≠ b`` (positions in ``items``; each item at most once). The CSR must have
    sorted column indices within each row.
    """
    items = np.asarray(items, dtype=np.int64)
    n_items = len(item_bias)
    # the kernel works on the items in index order (a row's entries then come in rising position) and the
    # result is permuted back to the order of ``items`` (a permutation: no value changes)
    order = np.argsort(items, kind="stable")
    pos = np.full(n_items, -1, dtype=np.int64)
    pos[items[order]] = np.arange(len(items))
    inv = np.empty(len(items), dtype=np.int64)
    inv[order] = np.arange(len(items))
    indptr, nchunks, m = _ro(indptr), REDUCTION_PARTS, len(items)
    bounds, parts = balanced_bounds(indptr, nchunks, 1.0), np.zeros((nchunks, m, m))
    item_bias = _ro(np.ascontiguousarray(item_bias, dtype=np.float64))
    run_chunks(_spectral_moment_nb, nchunks, bounds, indptr, _ro(indices), _ro(data), float(mu), item_bias, _ro(pos),
               float(bias_reg), float(bound), float(k), parts)  # fmt: skip
    C = _sum_parts(parts)
    iu = np.triu_indices(m, 1)
    C.T[iu] = C[iu]  # the lower triangle from the upper
    return np.ascontiguousarray(C[np.ix_(inv, inv)])


@njit(cache=True, parallel=True)
def _clip_rows_nb(U, d, gamma, margin, limit, slack, out):
    n = U.shape[0]  # the rows' first d columns (U and out may be wider: see clip_rows_into)
    for i in prange(n):
        s = 0.0
        for a in range(d):
            v = np.float64(U[i, a])
            s += v * v
        nrm = np.sqrt(s)
        scale = gamma / nrm * (1.0 - margin) if nrm > gamma else 1.0
        for a in range(d):
            out[i, a] = np.float64(U[i, a]) * scale
        while True:  # verify the stored values; shrink again while the rigorous bound fails
            s2 = 0.0
            for a in range(d):
                v = np.float64(out[i, a])
                s2 += v * v
            if not s2 * slack > limit:
                break
            for a in range(d):
                out[i, a] = np.float64(out[i, a]) * (1.0 - margin)


def clip_rows_into(U, gamma, margin, limit, out):
    """Rows ``out_i ← u_i · min(1, γ/‖u_i‖)·(1 − margin)`` (no scaling when ``‖u_i‖ ≤ γ``), then shrunk by
    ``1 − margin`` while the float64 upper bound ``Σ out² · (1 + (d + 2)·eps64)`` of the stored row's squared
    norm exceeds ``limit``: the per-row loop of :func:`dprec.models._biased_als.clip_rows` in one parallel pass."""
    d = U.shape[1]
    slack = 1.0 + (d + 2) * float(np.finfo(np.float64).eps)
    # a column block [:, :d] of a C array is passed as that whole C array (the kernel reads the first d
    # columns): the kernel compiles for C layouts only, with no copy of either array
    _clip_rows_nb(_ro(_row_major_base(U)), d, float(gamma), float(margin), float(limit), slack, _row_major_base(out))
    return out


def _row_major_base(a):
    """``a`` if C-contiguous; else, when ``a`` is the leading columns ``b[:, :d]`` of a C-contiguous 2-D array
    ``b``, that ``b`` (same rows, same memory); else ``a`` itself."""
    if a.flags.c_contiguous:
        return a
    b = a.base
    if (
        isinstance(b, np.ndarray)
        and b.ndim == 2
        and b.flags.c_contiguous
        and b.dtype == a.dtype
        and b.shape[0] == a.shape[0]
        and b.shape[1] >= a.shape[1]
        and b.strides == a.strides
        and b.ctypes.data == a.ctypes.data
    ):
        return b
    return a
