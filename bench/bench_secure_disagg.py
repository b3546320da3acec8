"""SecureDisagg-v0 throughput: env steps/s of a `lax.scan` rollout (tdmem heuristic and random policies) at
batch 1, 1024 and 4096, every environment with its own remote memory (48-96 GB, re-derived by a vmapped
`derive`), the heuristic's decision time, and `derive`'s time per scenario (compile vs run). The reference
measured in the same run is CacheRatio-v0's HybridServe heuristic at batch 1024 (the same server without the
remote tier), and each policy's steps/s is also given relative to random at the same batch.

    python bench/bench_secure_disagg.py [--steps 64] [--repeats 3] [--batches 1 1024 4096]
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

import memgym
from _timing import bench_args, rollout_rate, timed  # bench/ is on sys.path when a script here runs
from bench_cache_ratio import host_rollout_rate
from memgym.envs import secure_disagg as sd
from memgym.policies import cache_ratio as pc
from memgym.policies import secure_disagg as ps
from memgym.sim import disagg

REF_BATCH = 1024


def main(argv=None):
    args = bench_args(__doc__, argv, lambda ap: ap.add_argument("--remote-gb", type=float, nargs=2,
                                                                 default=[48.0, 96.0], metavar=("LO", "HI")))
    env, params = memgym.make("SecureDisagg-v0")

    # every environment gets its own remote memory, so deterministic policies cannot be computed once and
    # broadcast: the batch is a real batch of different systems, each derived (wg, max_batch, the baseline's
    # step times, the oracle plan) by `derive` under vmap
    def scenario(remote_gb):
        return sd.derive(dataclasses.replace(params, remote=disagg.with_remote(params.remote, capacity_gb=remote_gb)))

    derive_b = jax.jit(jax.vmap(scenario))
    derive_rows, rollout_rows, scen = [], [], {}
    for b in args.batches:
        remote = jnp.linspace(*args.remote_gb, b)
        # derive plays every static plan (share x mode x block bins) per scenario: one timed call at large batches
        compile_s, run_s = timed(derive_b, remote, repeats=args.repeats if b < 1024 else 1)
        derive_rows.append((b, compile_s, run_s))
        scen[b] = derive_b(remote)
    for name in ("random", "tdmem"):
        for b in args.batches:
            sps, compile_s = rollout_rate(env, ps.POLICIES[name], b, args.steps, args.repeats,
                                          scenario=lambda p: p, values=scen[b])
            rollout_rows.append((name, b, sps, compile_s))

    # the reference: CacheRatio-v0's heuristic, 1024 environments with their own host memory
    cenv, cparams = memgym.make("CacheRatio-v0")
    ref_sps, c_compile = host_rollout_rate(cenv, cparams, pc.hybridserve, REF_BATCH, args.steps, args.repeats)

    # the heuristic's decision at the first step (mode, share and block: the whole plan) and a later one
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    decide = jax.jit(ps.tdmem)
    d_compile, one = timed(decide, jax.random.PRNGKey(0), obs, state, params, repeats=20)
    obs2, state2 = env.step(jax.random.PRNGKey(1), state, decide(jax.random.PRNGKey(0), obs, state, params), params)[:2]
    _, later = timed(decide, jax.random.PRNGKey(0), obs2, state2, params, repeats=20)
    nb = max(args.batches)
    keys = jax.random.split(jax.random.PRNGKey(0), nb)
    obs_b, state_b = jax.vmap(env.reset)(keys, scen[nb])
    decide_b = jax.jit(jax.vmap(ps.tdmem))
    _, many = timed(decide_b, keys, obs_b, state_b, scen[nb], repeats=args.repeats)

    print(f"SecureDisagg-v0 ({params.bins} share x {params.remote_bins} remote x {sd.N_MODES} mode x "
          f"{params.batch_bins} block bins, {params.max_steps} steps per episode, {args.steps} steps per rollout, "
          f"remote {args.remote_gb[0]:g}-{args.remote_gb[1]:g} GB per env, {jax.devices()[0].platform}, "
          f"{jax.device_count()} device(s))")
    print(f"{'path':28}{'batch':>8}{'steps/s':>14}{'vs random':>11}{'vs CR-v0 1024':>15}{'compile s':>11}")
    rnd = {b: s for n, b, s, _ in rollout_rows if n == "random"}
    for name, b, sps, c in rollout_rows:
        print(f"{'scan rollout, ' + name:28}{b:>8}{sps:>14,.0f}{sps / rnd[b]:>11.2f}{sps / ref_sps:>15.3f}{c:>11.2f}")
    print(f"{'CacheRatio-v0 hybridserve':28}{REF_BATCH:>8}{ref_sps:>14,.0f}{'':>11}{1.0:>15.3f}{c_compile:>11.2f}")
    print(f"{'derive (vmapped)':28}{'batch':>8}{'s per call':>14}{'ms/scenario':>13}{'compile s':>11}"
          f"{'first - run':>13}")
    for b, c, r in derive_rows:
        print(f"{'':28}{b:>8}{r:>14.3f}{r / b * 1e3:>13.3f}{c:>11.2f}{c - r:>13.2f}")
    print(f"tdmem heuristic decision: {one * 1e6:.0f} us per call at the first step (its plan is derive's, a "
          f"lookup; the call fits the action), {later * 1e6:.0f} us at a later step (jitted, batch 1); {many / nb * 1e6:.2f} us "
          f"per decision vmapped over {nb}; compile {d_compile:.2f} s")


if __name__ == "__main__":
    main()
