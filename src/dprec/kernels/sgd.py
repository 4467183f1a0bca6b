"""Numba kernel of DP-SGD matrix factorisation: per-unit clipped gradients of the item parameters.

One call processes one Poisson-sampled batch, given as a CSR matrix whose non-empty rows are the *groups* of
the batch (a sampled user with all of its ratings under the user unit; the sampled ratings of one user under
the rating unit). For every group ``g`` with ratings ``(j, r_j)``:

1. the user side ``[u; b] = argmin Σ_j (r_j − μ − c_j − b − uᵀ v_j)² + λ_u (n_g + 1) ‖u‖² + λ_b b²`` is solved
   locally (a ``(d+1)×(d+1)`` Cholesky solve in float64; never returned);
2. the residuals ``e_j = r_j − μ − c_j − b − uᵀ v_j`` give the gradient of ``½ Σ_j e_j²`` with respect to the
   item parameters ``θ_j = [v_j; c_j]``: ``g_j = −e_j [u; 1]`` (zero on items the group did not rate);
3. the group's gradient is clipped to L2 norm ``C``: ``g ← g · min(1, C / ‖g‖)`` with
   ``‖g‖² = Σ_j e_j² (‖u‖² + 1)``, and added to the batch sum ``G`` (``n_items × (d+1)``, float64).

No random numbers inside: the Gaussian noise on ``G`` is drawn in bulk by the caller (dense, from the model's
noise stream). Parallel over contiguous chunks of groups, each chunk with its own partial sum (no races).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["clipped_item_gradient"]

#: relative safety margin on the clip factor: the float64 norm of a group gradient is within ~1e-15 of exact
_CLIP_MARGIN = 1e-12


@njit(cache=True, nogil=True)
def _group_gradient(s, e_, indices, data, V, c, mu, user_reg, bias_reg, clip_norm, G, A, rhs, x, res):
    d = V.shape[1]
    n = e_ - s
    if n == 0:
        return 0.0
    k = d + 1
    for a in range(k):
        rhs[a] = 0.0
        for b in range(k):
            A[a, b] = 0.0
    # normal equations of [u; b] on y_j = [v_j; 1], target t_j = r_j − μ − c_j
    for p in range(s, e_):
        j = indices[p]
        t = data[p] - mu - c[j]
        for a in range(d):
            va = V[j, a]
            rhs[a] += va * t
            for b in range(a, d):
                A[a, b] += va * V[j, b]
            A[a, d] += va
        A[d, d] += 1.0
        rhs[d] += t
    for a in range(d):
        A[a, a] += user_reg * (n + 1.0)
    A[d, d] += bias_reg
    for a in range(k):
        for b in range(a):
            A[a, b] = A[b, a]
    # Cholesky (A is SPD: ridge > 0 on every coordinate)
    for a in range(k):
        sacc = A[a, a]
        for q in range(a):
            sacc -= A[a, q] * A[a, q]
        if sacc <= 0.0:
            sacc = 1e-300
        A[a, a] = np.sqrt(sacc)
        for b in range(a + 1, k):
            sacc = A[b, a]
            for q in range(a):
                sacc -= A[b, q] * A[a, q]
            A[b, a] = sacc / A[a, a]
    for a in range(k):
        sacc = rhs[a]
        for q in range(a):
            sacc -= A[a, q] * x[q]
        x[a] = sacc / A[a, a]
    for a in range(k - 1, -1, -1):
        sacc = x[a]
        for q in range(a + 1, k):
            sacc -= A[q, a] * x[q]
        x[a] = sacc / A[a, a]
    uu = 0.0
    for a in range(d):
        uu += x[a] * x[a]
    ss = 0.0
    for p in range(s, e_):
        j = indices[p]
        pred = mu + c[j] + x[d]
        for a in range(d):
            pred += x[a] * V[j, a]
        r = data[p] - pred
        res[p - s] = r
        ss += r * r
    norm = np.sqrt(ss * (uu + 1.0))
    scale = 1.0
    if norm > clip_norm:
        scale = clip_norm / norm * (1.0 - _CLIP_MARGIN)
    for p in range(s, e_):
        j = indices[p]
        w = -scale * res[p - s]
        for a in range(d):
            G[j, a] += w * x[a]
        G[j, d] += w
    return norm


#: Scratch budget of :func:`clipped_item_gradient`'s partial sums (bytes, all parts together).
GRADIENT_PART_BYTES = 1 << 30


def gradient_parts(n_items: int, d: int) -> int:
    """Number of partial sums for :func:`clipped_item_gradient`: :data:`~dprec.kernels.als.REDUCTION_PARTS`, fewer
    when their ``parts × n_items × (d + 1)`` float64 buffers would exceed :data:`GRADIENT_PART_BYTES` (at least
    one). A function of the shape alone, so the float64 sum, and the fit, are the same for every thread count."""
    from .als import REDUCTION_PARTS

    per_part = 8 * max(1, int(n_items)) * (int(d) + 1)
    return max(1, min(REDUCTION_PARTS, GRADIENT_PART_BYTES // per_part))


@njit(cache=True, parallel=True, nogil=True)
def clipped_item_gradient(indptr, indices, data, V, c, mu, user_reg, bias_reg, clip_norm, n_chunks):
    """Sum over the batch's groups (rows of the CSR ``(indptr, indices, data)``) of the clipped item gradients.

    Parameters
    ----------
    V : (n_items, d) float64 item factors; ``c`` : (n_items,) float64 item biases; ``mu`` : global mean.
    user_reg, bias_reg : λ_u (× the group's rating count + 1) and λ_b of the local user solve.
    clip_norm : C, the L2 bound of each group's gradient on ``[V, c]``.
    n_chunks : number of partial sums (≥ 1; :func:`gradient_parts`), summed in order: the result depends on it.

    Returns
    -------
    G : (n_items, d + 1) float64
        ``Σ_g clip_C(∇_θ ½ Σ_j e_gj²)``; column ``d`` is the item-bias part.
    norms : (n_groups,) float64
        Each group's unclipped gradient norm (diagnostics and tests; never released).
    """
    n_rows = len(indptr) - 1
    m, d = V.shape
    n_chunks = max(1, min(n_chunks, n_rows))
    parts = np.zeros((n_chunks, m, d + 1))
    norms = np.zeros(n_rows)
    maxlen = 0
    for i in range(n_rows):
        maxlen = max(maxlen, indptr[i + 1] - indptr[i])
    for ch in prange(n_chunks):
        lo = ch * n_rows // n_chunks
        hi = (ch + 1) * n_rows // n_chunks
        A = np.empty((d + 1, d + 1))
        rhs = np.empty(d + 1)
        x = np.empty(d + 1)
        res = np.empty(max(maxlen, 1))
        for i in range(lo, hi):
            norms[i] = _group_gradient(
                indptr[i],
                indptr[i + 1],
                indices,
                data,
                V,
                c,
                mu,
                user_reg,
                bias_reg,
                clip_norm,
                parts[ch],
                A,
                rhs,
                x,
                res,
            )
    G = np.zeros((m, d + 1))
    for ch in range(n_chunks):
        G += parts[ch]
    return G, norms
