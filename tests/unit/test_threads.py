"""Unit tests for icpkit.threads: the limit holds inside the block and is undone after it."""

from __future__ import annotations

import lightgbm  # noqa: F401  (loads LightGBM's OpenMP runtime, as training does)
import numpy  # noqa: F401  (loads BLAS)
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from icpkit.threads import thread_limits, thread_report


def _limits() -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for lib in threadpool_info():
        out.setdefault(lib["user_api"], set()).add(int(lib["num_threads"]))
    return out


def test_thread_limits_sets_blas_and_openmp_to_the_configured_count_and_restores_them():
    with threadpool_limits(limits=3):  # a machine whose pools were left at 3 threads
        assert _limits()["blas"] == {3} and _limits()["openmp"] == {3}
        with thread_limits(1) as applied:
            inside = _limits()
        after = _limits()
    assert inside["blas"] == {1} and inside["openmp"] == {1}
    assert applied == {"num_threads": 1, "lightgbm_num_threads": 1, "blas_threads": 1, "openmp_threads": 1}
    assert after["blas"] == {3} and after["openmp"] == {3}


def test_thread_limits_reports_a_count_above_one_as_applied():
    with threadpool_limits(limits=1), thread_limits(2) as applied:
        assert _limits()["blas"] == {2}
    assert applied["blas_threads"] == 2 and applied["openmp_threads"] == 2


def test_thread_report_outside_a_block_shows_what_the_pools_run_with():
    with threadpool_limits(limits=2):
        report = thread_report(1)
    # The configured count is what LightGBM gets; the pools show they were not limited.
    assert report["lightgbm_num_threads"] == 1 and report["blas_threads"] == 2


def test_thread_limits_below_one_is_an_error():
    with pytest.raises(ValueError, match="num_threads"), thread_limits(0):
        pass
