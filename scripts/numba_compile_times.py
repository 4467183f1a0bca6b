"""pytest plugin: numba's compile seconds per kernel in a test run (a repository tool, not part of dprec).

Run a cold test run with it (a fresh numba cache, so that everything compiles)::

    NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=scripts pytest -p numba_compile_times

At the end it writes ``numba_compile_times.json`` (or ``$NUMBA_COMPILE_TIMES_OUT``): per kernel the exclusive
compile seconds (a kernel's own compile, without the callees compiled inside it) and the inclusive ones, from
numba's ``numba:compile`` events, and prints the ten largest. Used for issue 16's cold-test-run budget: the same
kernel compiled for many argument types (dtype, layout, read-only, literal arguments) is what to look for;
``find $NUMBA_CACHE_DIR -name '*.nbc'`` counts the signatures per kernel.
"""

from __future__ import annotations

import collections
import json
import os
import time

from numba.core import event

_self: collections.Counter = collections.Counter()
_incl: collections.Counter = collections.Counter()
_stack: list = []


class _Listener(event.Listener):
    def on_start(self, ev):
        f = ev.data["dispatcher"].py_func
        _stack.append([f"{f.__module__}.{f.__qualname__}", time.perf_counter(), 0.0])

    def on_end(self, ev):
        name, t0, child = _stack.pop()
        dt = time.perf_counter() - t0
        _self[name] += dt - child  # nested compiles (callees typed inside this one) are their own entries
        _incl[name] += dt
        if _stack:
            _stack[-1][2] += dt


event.register("numba:compile", _Listener())


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("NUMBA_COMPILE_TIMES_OUT", "numba_compile_times.json")
    with open(out, "w") as fh:
        json.dump({"self_seconds": _self.most_common(), "inclusive_seconds": _incl.most_common()}, fh, indent=0)
    total = sum(_self.values())
    top = ", ".join(f"{n.rsplit('.', 1)[-1]} {s:.1f}" for n, s in _self.most_common(10))
    print(f"\nnumba compile: {total:.1f} s in all; largest: {top} (written to {out})")
