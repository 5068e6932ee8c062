"""One thread policy for every fit: LightGBM, BLAS and OpenMP get the same fixed thread count.

On a busy machine, libraries that each start their own thread pool oversubscribe the cores and
OpenMP threads spin-wait for each other: on 2 busy cores a LightGBM fit at 2 threads cost 20-30x
the CPU of a single-threaded one. A fixed count also keeps ``deterministic=True`` boosters
identical from run to run. The limit is applied with :mod:`threadpoolctl` around the fitting
code (never through environment variables, which only work before the libraries load), and
LightGBM gets the same count through its ``num_threads`` parameter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from threadpoolctl import threadpool_info, threadpool_limits

log = logging.getLogger(__name__)


def thread_report(num_threads: int) -> dict[str, Any]:
    """What the current process runs with: the configured count and each thread pool's limit.

    Parameters
    ----------
    num_threads
        The configured count (``training.num_threads``); LightGBM receives it as ``num_threads``.

    Returns
    -------
    dict
        ``{"num_threads", "lightgbm_num_threads", "blas_threads", "openmp_threads"}``; the last
        two are the largest limit among the loaded BLAS / OpenMP libraries (``None`` if none is
        loaded), so a recorded run shows whether anything escaped the policy.
    """
    pools: dict[str, int | None] = {"blas": None, "openmp": None}
    for lib in threadpool_info():
        api = lib.get("user_api")
        if api in pools:
            current = pools[api]
            pools[api] = int(lib["num_threads"]) if current is None else max(current, int(lib["num_threads"]))
    return {
        "num_threads": int(num_threads),
        "lightgbm_num_threads": int(num_threads),
        "blas_threads": pools["blas"],
        "openmp_threads": pools["openmp"],
    }


@contextmanager
def thread_limits(num_threads: int) -> Iterator[dict[str, Any]]:
    """Limit BLAS and OpenMP thread pools to ``num_threads`` for the duration of the block.

    Parameters
    ----------
    num_threads
        Threads per fit (``training.num_threads``, default 1). Pass the same value to LightGBM.

    Yields
    ------
    dict
        The policy as applied (see :func:`thread_report`), for the caller to record on the run.

    Raises
    ------
    ValueError
        If ``num_threads`` is below 1.
    """
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    # Libraries that start their pools lazily (e.g. LightGBM's OpenMP) must be loaded before the
    # limit is set: threadpoolctl only sees what is loaded when the block starts.
    import lightgbm  # noqa: F401

    with threadpool_limits(limits=num_threads):
        applied = thread_report(num_threads)
        log.debug("thread policy: %s", applied)
        yield applied
