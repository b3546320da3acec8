"""KernelMapping-v0 throughput: env steps/s of a `lax.scan` rollout (H2M2 heuristic and random policies) at
batch 1, 1024 and 4096, and the heuristic's decision time per call.

    python bench/bench_kernel_mapping.py [--steps 64] [--repeats 3]
"""

from __future__ import annotations

import jax

import memgym
from _timing import bench_args, rollout_rate, timed  # bench/ is on sys.path when a script here runs
from memgym.policies import kernel_mapping as km


def main(argv=None):
    args = bench_args(__doc__, argv)
    env, params = memgym.make("KernelMapping-v0")
    rows = []
    for name in ("random", "h2m2"):
        policy = km.POLICIES[name]
        for b in args.batches:
            sps, compile_s = rollout_rate(env, policy, b, args.steps, args.repeats, params=params)
            rows.append((f"scan rollout, {name}", b, sps, compile_s))
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
