"""One BLAS thread while dprec's own threads run: threadpoolctl's limit, with its library scan cached.

dprec's kernels run on several threads (numba's and :func:`dprec.kernels.als.run_chunks`'s) and some of them call
BLAS; a multi-threaded BLAS inside each of them would oversubscribe the cores, so every fit and scoring call runs
under a limit of one BLAS thread. ``threadpoolctl.threadpool_limits`` finds the BLAS libraries by scanning the
process's loaded shared objects on every call (about 2.5 ms on the 2-core benchmark VM, more than the rest of a
single-user ``recommend``). Here one :class:`threadpoolctl.ThreadpoolController` is kept and the scan repeated
only when the number of imported modules has changed since: a library loaded later arrives with the extension
module that imports it, which the count sees. Written here because threadpoolctl leaves caching its controller to
the caller.
"""

from __future__ import annotations

import sys
import threading

_lock = threading.Lock()
_cache: dict = {"modules": -1, "controller": None}


def single_threaded_blas():
    """A context manager limiting every BLAS library loaded in the process to one thread (restored on exit)."""
    from threadpoolctl import ThreadpoolController

    with _lock:
        if _cache["controller"] is None or _cache["modules"] != len(sys.modules):
            _cache["controller"] = ThreadpoolController()
            _cache["modules"] = len(sys.modules)
        controller = _cache["controller"]
    return controller.limit(limits=1, user_api="blas")
