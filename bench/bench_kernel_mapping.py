"""KernelMapping-v0 throughput: env steps/s of a `lax.scan` rollout (H2M2 heuristic and random policies) at
batch 1, 1024 and 4096, and the heuristic's decision time per call.

    python bench/bench_kernel_mapping.py [--steps 64] [--repeats 3]
"""

from __future__ import annotations

import argparse

import jax

import memgym
from _timing import timed  # bench/ is on sys.path when a script here runs
from memgym.envs.core import rollout
from memgym.policies import kernel_mapping as km


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 1024, 4096])
    args = ap.parse_args(argv)
    env, params = memgym.make("KernelMapping-v0")
    rows = []
    for name in ("random", "h2m2"):
        policy = km.POLICIES[name]
        for b in args.batches:
            run = jax.jit(jax.vmap(lambda k, p=policy: rollout(env, p, params, k, args.steps)[0]))
            keys = jax.random.split(jax.random.PRNGKey(0), b)
            compile_s, run_s = timed(run, keys, repeats=args.repeats)
            rows.append((f"scan rollout, {name}", b, b * args.steps / run_s, compile_s))
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    decide = jax.jit(km.h2m2)
    compile_s, one = timed(decide, jax.random.PRNGKey(0), obs, state, params, repeats=20)
    keys = jax.random.split(jax.random.PRNGKey(0), 1024)
    obs_b, state_b = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    decide_b = jax.jit(jax.vmap(km.h2m2, in_axes=(0, 0, 0, None)))
    _, many = timed(decide_b, keys, obs_b, state_b, params, repeats=5)
    print(f"KernelMapping-v0 ({params.n_slots} slots, {params.bins} bins, {jax.devices()[0].platform})")
    print(f"{'path':32}{'batch':>8}{'steps/s':>14}{'compile s':>11}")
    for path, b, sps, c in rows:
        print(f"{path:32}{b:>8}{sps:>14,.0f}{c:>11.2f}")
    print(f"H2M2 heuristic decision: {one * 1e6:.1f} us per call (jitted, batch 1; the paper's C++ solver: 50 us), "
          f"{many / 1024 * 1e6:.2f} us per decision vmapped over 1024; compile {compile_s:.2f} s")


if __name__ == "__main__":
    main()
