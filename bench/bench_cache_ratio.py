"""CacheRatio-v0 throughput: env steps/s of a `lax.scan` rollout (HybridServe heuristic and random policies)
at batch 1, 1024 and 4096, the heuristic's decision time, and FlexGen's policy search time (LP + batch
search with scipy's HiGHS, host side).

    python bench/bench_cache_ratio.py [--steps 64] [--repeats 3]
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

import memgym
from _timing import bench_args, rollout_rate, timed  # bench/ is on sys.path when a script here runs
from memgym.envs import cache_ratio as cr
from memgym.policies import cache_ratio as pc
from memgym.sim import config, offload


def host_rollout_rate(env, params, policy, n, steps, repeats):
    """`rollout_rate` over n environments, each with its own host memory (112-144 GB): deterministic policies
    cannot be computed once and broadcast, the batch is a real batch of different systems."""
    def scenario(host_gb):
        rates = dataclasses.replace(params.rates, cpu_capacity_bytes=host_gb * 1e9)
        return cr.derive_capacity(dataclasses.replace(params, rates=rates))
    return rollout_rate(env, policy, n, steps, repeats, scenario=scenario, values=jnp.linspace(112.0, 144.0, n))


def main(argv=None):
    args = bench_args(__doc__, argv)
    env, params = memgym.make("CacheRatio-v0")
    rows = []
    for name in ("random", "hybridserve"):
        policy = pc.POLICIES[name]
        for b in args.batches:
            sps, compile_s = host_rollout_rate(env, params, policy, b, args.steps, args.repeats)
            rows.append((f"scan rollout, {name}", b, sps, compile_s))
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    decide = jax.jit(pc.hybridserve)
    compile_s, one = timed(decide, jax.random.PRNGKey(0), obs, state, params, repeats=20)
    print(f"CacheRatio-v0 ({params.bins} share bins x {params.batch_bins} block bins, {params.max_steps} steps, "
          f"{jax.devices()[0].platform})")
    print(f"{'path':32}{'batch':>8}{'steps/s':>14}{'compile s':>11}")
    for path, b, sps, c in rows:
        print(f"{path:32}{b:>8}{sps:>14,.0f}{c:>11.2f}")
    print(f"HybridServe balance decision: {one * 1e6:.1f} us per call (jitted, batch 1); compile {compile_s:.2f} s")
    # FlexGen's policy search, host side (as `memgym reproduce hybridserve` runs it)
    for model, rates, label in (("opt-30b", offload.fitted_rates("t4-flexgen"), "T4 fitted, prompt 512, gen 32"),):
        m = config.load_model(model)
        offload.flexgen_lp(m, rates, 32.0, 32.0, 512.0, 32.0)  # compile the coefficient extraction
        t0 = time.perf_counter()
        sol = offload.flexgen_lp(m, rates, 160.0, 32.0, 512.0, 32.0)
        lp_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sol = offload.flexgen_search(m, rates, 512.0, 32.0, cpu_attention=(1.0,))
        search_s = time.perf_counter() - t0
        print(f"FlexGen LP ({model}, {label}): one solve {lp_s * 1e3:.1f} ms; batch search {search_s:.2f} s "
              f"-> {sol.gbs}x{sol.nb}, {sol.tokens_per_s:.2f} tok/s")


if __name__ == "__main__":
    main()
