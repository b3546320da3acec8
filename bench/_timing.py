"""Shared by the benchmark scripts: time a jitted call after compiling it."""

from __future__ import annotations

import argparse
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


def bench_args(doc, argv=None, extra=None):
    """The benchmark scripts' shared options (--steps, --repeats, --batches); `extra(parser)` adds more."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 1024, 4096])
    if extra is not None:
        extra(ap)
    return ap.parse_args(argv)


def rollout_rate(env, policy, n, steps, repeats, params=None, scenario=None, values=None):
    """(env steps/s, compile s) of a jitted `lax.scan` rollout of `policy` vmapped over n environments: all
    sharing `params`, or each with `scenario(values[i])`, built inside the timed program."""
    from memgym.envs.core import rollout

    keys = jax.random.split(jax.random.PRNGKey(0), n)
    if scenario is None:
        run = jax.jit(jax.vmap(lambda k: rollout(env, policy, params, k, steps)[0]))
        compile_s, run_s = timed(run, keys, repeats=repeats)
    else:
        run = jax.jit(jax.vmap(lambda v, k: rollout(env, policy, scenario(v), k, steps)[0]))
        compile_s, run_s = timed(run, values, keys, repeats=repeats)
    return n * steps / run_s, compile_s
