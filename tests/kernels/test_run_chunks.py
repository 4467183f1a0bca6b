"""The chunk runner of the serial kernels (``kernels.als.run_chunks``): every chunk once, errors reach the caller,
numba's thread count is the number of threads."""

import threading

import numba
import numpy as np
import pytest

from dprec.kernels.als import run_chunks


def _record(nchunks):
    seen, lock = [], threading.Lock()

    def kernel(c0, c1, tag):
        assert tag == "arg" and 0 <= c0 < c1 <= nchunks
        with lock:
            seen.append((c0, c1, threading.get_ident()))

    run_chunks(kernel, nchunks, "arg")
    return seen


@pytest.mark.parametrize("nchunks", [0, 1, 2, 5, 97, 1000])
def test_every_chunk_runs_exactly_once(nchunks):
    seen = _record(nchunks)
    covered = sorted(c for c0, c1, _ in seen for c in range(c0, c1))
    assert covered == list(range(nchunks))


def test_one_thread_runs_everything_in_the_callers_thread():
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        seen = _record(50)
    finally:
        numba.set_num_threads(before)
    assert {t for _, _, t in seen} == {threading.get_ident()}
    assert sorted(c for c0, c1, _ in seen for c in range(c0, c1)) == list(range(50))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
def test_two_threads_share_the_chunks():
    """Chunk 0 blocks until a second thread has run a chunk: the pass only ends if two threads take chunks
    (with one thread the wait times out and the error reaches the caller)."""
    before = numba.get_num_threads()
    ids, lock, two = set(), threading.Lock(), threading.Event()

    def kernel(c0, c1):
        with lock:
            ids.add(threading.get_ident())
            if len(ids) == 2:
                two.set()
        if c0 == 0 and not two.wait(10):
            raise TimeoutError("no second thread took a chunk")

    try:
        numba.set_num_threads(2)
        run_chunks(kernel, 64)
    finally:
        numba.set_num_threads(before)
    assert len(ids) == 2


def test_blas_runs_one_thread_inside_and_is_restored_after():
    """The kernels call BLAS from every thread: inside a multi-threaded pass each BLAS library has one thread,
    and the caller's limits come back afterwards."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before, seen = numba.get_num_threads(), []
    outside = blas_threads()
    try:
        numba.set_num_threads(2)
        run_chunks(lambda c0, c1: seen.append(blas_threads()), 4)
    finally:
        numba.set_num_threads(before)
    assert seen and all(s == [1] * len(outside) for s in seen)
    assert blas_threads() == outside


def test_an_error_in_a_chunk_reaches_the_caller():
    def kernel(c0, c1):
        if c0 <= 7 < c1:
            raise FloatingPointError("chunk 7")

    with pytest.raises(FloatingPointError, match="chunk 7"):
        run_chunks(kernel, 40)


def test_serial_kernels_equal_for_one_and_two_threads():
    """The item statistics and the batched solve through run_chunks: bit-identical for any thread count."""
    import scipy.sparse as sp

    from dprec.kernels import als as K

    g = np.random.default_rng(3)
    X = sp.random(300, 120, density=0.05, format="csr", random_state=g, dtype=np.float64)
    Xt = X.T.tocsr()
    U = g.standard_normal((300, 6)).astype(np.float32)
    w = np.abs(g.standard_normal(Xt.nnz)).astype(np.float32)
    before = numba.get_num_threads()
    outs = []
    try:
        for t in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(t)
            A, b = K.item_stats(Xt.indptr, Xt.indices, w, w, U)
            x, fails = K.solve_batched(A, b, 1.0)
            outs.append((A, b, x, fails))
    finally:
        numba.set_num_threads(before)
    for got, want in zip(outs[1], outs[0]):
        np.testing.assert_array_equal(got, want)
