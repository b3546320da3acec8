"""Shared by the benchmark scripts: time a jitted call after compiling it."""

from __future__ import annotations

import statistics
import time

import jax


def timed(fn, *args, repeats=3):
    """(seconds of the first call: trace, compile and one run; median seconds of `repeats` later calls)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    return compile_s, statistics.median(runs)
