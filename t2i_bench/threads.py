"""CPU threading: OpenMP threads that wait passively, set before torch loads.

torch's CPU kernels run on GNU OpenMP (libgomp). By default an OpenMP thread that finishes
its share of a parallel region *spins* for about 300,000 iterations (``GOMP_SPINCOUNT``)
before it sleeps. On a machine whose cores are shared with other processes, the spinning
threads take the cores the thread doing the next piece of work needs: the tiny model's
thousands of short parallel regions per image then wait on the scheduler, and generation
with 2 threads on 2 busy cores ran 16-40x slower than alone (``python -m benchmarks --only
contention``). ``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep at once.

It changes no result: the thread count, and so how work is split and every float, stay the
same. libgomp reads the variable once, when it is loaded, so it is set when ``t2i_bench`` is
imported, before torch; a user's own ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` wins.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"


def configure_openmp() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user set a policy; True if it takes effect.

    It takes effect in this process only if torch is not imported yet; child processes
    (Ray workers, subprocesses) inherit it either way."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return "torch" not in sys.modules
