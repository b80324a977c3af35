"""One native thread per worker process.

Worker processes (feature extraction, scoring) each get one core of their own. numpy's OpenBLAS otherwise
starts one thread per core in every process, and with a worker per core the threads fight for the cores:
measured on this 2-core machine, feature extraction took 100 ms per chunk instead of 30 ms with the other
core busy. Setting ``OMP_NUM_THREADS`` only helps before numpy is first imported, which a forked child or a
spawned one that unpickles its initializer has already done; threadpoolctl limits the pools at run time.
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_native_threads(n: int = 1) -> None:
    """Cap the BLAS/OpenMP thread pools of this process (and of processes it starts) at ``n`` threads."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
