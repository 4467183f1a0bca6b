"""dprec._threads: one BLAS thread inside, the previous limits after, and the library scan repeated only when
new modules were imported."""

import sys
import types

import threadpoolctl

from dprec import _threads


def _blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_limits_every_blas_to_one_thread_and_restores():
    before = _blas_threads()
    assert before  # numpy's BLAS at least
    with _threads.single_threaded_blas():
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before


def test_scan_is_cached_until_a_module_is_imported(monkeypatch):
    made = []

    class Counting(threadpoolctl.ThreadpoolController):
        def __init__(self):
            made.append(1)
            super().__init__()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", Counting)
    monkeypatch.setitem(_threads._cache, "controller", None)
    for _ in range(3):
        with _threads.single_threaded_blas():
            pass
    assert len(made) == 1
    monkeypatch.setitem(sys.modules, "dprec_test_new_extension", types.ModuleType("dprec_test_new_extension"))
    with _threads.single_threaded_blas():
        pass
    assert len(made) == 2
