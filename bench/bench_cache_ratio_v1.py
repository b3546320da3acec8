"""CacheRatio-v1 throughput: env steps/s of a `lax.scan` rollout (random, the HybridServe heuristic and the
clairvoyant lookahead oracle) at the default scenario (128 slots, a 2048-request stream), vmapped over
episodes, with compile times; and the heuristic's and the oracle's decision time per call.

    python bench/bench_cache_ratio_v1.py [--steps 64] [--repeats 3] [--batches 1 256] [--json]
"""

from __future__ import annotations

import json

import jax

import memgym
from _timing import bench_args, rollout_rate, timed  # bench/ is on sys.path when a script here runs
from memgym.policies import cache_ratio_v1 as pv1

ORACLE_MAX_BATCH = 16  # the oracle plays bins × horizon steps per decision: its rollouts stay small


def main(argv=None):
    def extra(ap):
        ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = bench_args(__doc__, argv, extra)
    batches = args.batches if args.batches != [1, 1024, 4096] else [1, 256]
    env, params = memgym.make("CacheRatio-v1")
    rows = []
    for name in ("random", "hybridserve", "oracle"):
        for b in batches:
            if name == "oracle" and b > ORACLE_MAX_BATCH:
                continue
            sps, compile_s = rollout_rate(env, pv1.POLICIES[name], b, args.steps, args.repeats, params=params)
            rows.append({"path": f"scan rollout, {name}", "batch": b, "steps_per_s": sps, "compile_s": compile_s})
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    decisions = {}
    for name in ("hybridserve", "oracle"):
        compile_s, one = timed(jax.jit(pv1.POLICIES[name]), jax.random.PRNGKey(0), obs, state, params, repeats=10)
        decisions[name] = {"us_per_call": one * 1e6, "compile_s": compile_s}
    header = (f"CacheRatio-v1 ({params.bins} share bins, {params.n_slots} slots, {params.n_requests} requests, "
              f"{args.steps} steps per rollout, {jax.devices()[0].platform})")
    if args.json:
        print(json.dumps({"header": header, "rollouts": rows, "decisions": decisions}, indent=1))
        return
    print(header)
    print(f"{'path':32}{'batch':>8}{'steps/s':>14}{'compile s':>11}")
    for r in rows:
        print(f"{r['path']:32}{r['batch']:>8}{r['steps_per_s']:>14,.0f}{r['compile_s']:>11.2f}")
    for name, d in decisions.items():
        print(f"{name} decision: {d['us_per_call']:.1f} us per call (jitted, batch 1); compile {d['compile_s']:.2f} s")


if __name__ == "__main__":
    main()
