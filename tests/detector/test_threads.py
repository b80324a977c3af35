"""Worker processes run one native (BLAS/OpenMP) thread each, even though numpy was imported first."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from detector.threads import limit_native_threads


def _pool_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    np.ones((64, 64)) @ np.ones((64, 64))  # the BLAS is loaded and has started its pool
    return [p["num_threads"] for p in threadpool_info()]


def test_forked_and_spawned_workers_are_capped_at_one_native_thread():
    for method in ("fork", "spawn"):
        ctx = multiprocessing.get_context(method)
        with ProcessPoolExecutor(1, mp_context=ctx, initializer=limit_native_threads) as pool:
            threads = pool.submit(_pool_threads).result(timeout=60)
        assert threads and all(n == 1 for n in threads), (method, threads)


def test_scoring_workers_initializer_caps_native_threads():
    from plugin import scoring

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=scoring._init_worker,
                             initargs=("detector.scoring:load_detector", "no-such-detector", "")) as pool:
        threads = pool.submit(_pool_threads).result(timeout=60)
    assert threads and all(n == 1 for n in threads), threads
