"""memgym's speed as ratios to reference environments measured in the same process: gymnasium's CartPole-v1
(`Env.step` and its numpy `VectorEnv`), gymnax's CartPole-v1 (a `jit(vmap)` `lax.scan` rollout) and, if it is
installed, GenZ's cost model (a Python call loop). Absolute rates move with the machine's load; ratios measured
side by side move much less.

Rows (all with uniformly random actions over the unmasked bins, one numpy or JAX draw per step):

- gymnasium Env.step: `gymnasium.make("memgym/<id>")` (the registered wrappers included) stepped one action at a
  time, the mask taken from the step's `info["action_mask"]`, against `gymnasium.make("CartPole-v1")`;
- VectorEnv at --num-envs: `gymnasium.make_vec(..., vectorization_mode="vector_entry_point")`, against
  CartPole-v1's numpy `VectorEnv`;
- scan rollout at --num-envs: `jit(vmap(rollout))` over --steps steps (random policy, and each environment's
  paper heuristic), against gymnax's CartPole-v1 in the same form; its compile time (`lower().compile()`);
- estimate: `memgym.sim.estimate` calls per second over varied batch and context (presets loaded once);
- SecureDisagg-v0 over CacheRatio-v0: the two scan rollouts' steps/s (the same server, with and without the
  remote tier);
- fused JAX PPO (`memgym.train.ppo_jax`, default hyperparameters, --ppo-envs environments): training env
  steps/s over the same environment's heuristic scan rollout, and the program's compile time.

    .venv/bin/python bench/bench_reference.py            # ~3 minutes on 2 CPU cores
    .venv/bin/python bench/bench_reference.py --quick    # fewer steps and repeats, ~1.5 minutes
    .venv/bin/python bench/bench_reference.py --json     # one JSON object instead of the table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

import memgym
from memgym.envs.core import masked_random, rollout
from memgym.envs.gym_adapter import random_masked_action
from memgym.policies import get_policy, heuristic_name

ENV_IDS = ("KernelMapping-v0", "CacheRatio-v0", "SecureDisagg-v0")

# (row, goal: memgym / reference at least this, or compile seconds at most this)
GOALS = {"env_step": 0.15, "vector_env": 0.10, "scan_random": 0.25, "compile_s": 3.0, "estimate": 20.0,
         "secure_over_cache": 0.5, "ppo_over_heuristic": 0.3, "ppo_compile_s": 10.0}


def median_rate(run, work, repeats):
    """(median work units per second over `repeats` calls of run(), all rates)."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        rates.append(work / (time.perf_counter() - t0))
    return statistics.median(rates), rates


# ---- gymnasium Env.step ----------------------------------------------------------------------------------


def cartpole_env_rate(n_steps, repeats):
    env = gymnasium.make("CartPole-v1")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, n_steps).tolist()

    def run():
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
    return median_rate(run, n_steps, repeats)[0]


def memgym_env_rate(env_id, n_steps, repeats):
    env = gymnasium.make(f"memgym/{env_id}")
    nvec = env.action_space.nvec
    rng = np.random.default_rng(0)
    state = {"mask": env.reset(seed=0)[1]["action_mask"]}
    env.step(random_masked_action(rng, state["mask"], nvec))  # compile

    def run():
        mask = state["mask"]
        for _ in range(n_steps):
            _, _, term, trunc, info = env.step(random_masked_action(rng, mask, nvec))
            mask = info["action_mask"]
            if term or trunc:
                mask = env.reset()[1]["action_mask"]
        state["mask"] = mask
    return median_rate(run, n_steps, repeats)[0]


# ---- VectorEnv -------------------------------------------------------------------------------------------


def cartpole_vector_rate(n, n_steps, repeats):
    env = gymnasium.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, (n_steps, n))

    def run():
        for a in actions:
            env.step(a)
    return median_rate(run, n * n_steps, repeats)[0]


def memgym_vector_rate(env_id, n, n_steps, repeats):
    env = gymnasium.make_vec(f"memgym/{env_id}", num_envs=n, vectorization_mode="vector_entry_point")
    nvec = env.single_action_space.nvec
    rng = np.random.default_rng(0)
    state = {"mask": env.reset(seed=0)[1]["action_mask"]}
    env.step(random_masked_action(rng, state["mask"], nvec))  # compile

    def run():
        mask = state["mask"]
        for _ in range(n_steps):  # autoreset: the returned mask is already the next episode's where one ended
            mask = env.step(random_masked_action(rng, mask, nvec))[4]["action_mask"]
        state["mask"] = mask
    return median_rate(run, n * n_steps, repeats)[0]


# ---- jit(vmap) lax.scan rollouts -------------------------------------------------------------------------


def compiled_rate(fn, n, n_steps, repeats, *extra):
    """(steps/s, compile s) of jit(fn)(keys u32[n, 2], *extra) returning per-step rewards; compile: lower +
    compile."""
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(keys, *extra).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(keys, *extra))
    rate = median_rate(lambda: jax.block_until_ready(compiled(keys, *extra)), n * n_steps, repeats)[0]
    return rate, compile_s


def gymnax_rate(n, n_steps, repeats):
    import gymnax

    env, params = gymnax.make("CartPole-v1")

    def one(key):
        key, k0 = jax.random.split(key)
        obs, state = env.reset(k0, params)

        def body(carry, k):
            obs, state = carry
            ka, ks = jax.random.split(k)
            action = jax.random.randint(ka, (), 0, 2)
            out = env.step(ks, state, action, params)  # gymnax 1.0 returns six values, earlier ones five
            return (out[0], out[1]), out[2]
        return jax.lax.scan(body, (obs, state), jax.random.split(key, n_steps))[1]
    return compiled_rate(jax.vmap(one), n, n_steps, repeats)


def memgym_scan_rate(env_id, policy, n, n_steps, repeats, stacked=False):
    """`stacked`: each environment gets its own copy of the params as an argument of the program, so a
    deterministic policy on an environment without randomness of its own (CacheRatio-v0, SecureDisagg-v0)
    cannot be computed once and broadcast to all n: the rollout runs n times, as it would for n systems."""
    env, params = memgym.make(env_id)
    if not stacked:
        return compiled_rate(jax.vmap(lambda k: rollout(env, policy, params, k, n_steps)[0]), n, n_steps, repeats)
    table = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), params)
    run = jax.vmap(lambda k, p: rollout(env, policy, p, k, n_steps)[0])
    return compiled_rate(run, n, n_steps, repeats, table)


# ---- estimate --------------------------------------------------------------------------------------------


def estimate_rate(seconds):
    from memgym.sim.estimate import estimate

    estimate("llama2-7b", "a100-80gb", 8, 2048)  # presets loaded and the programs compiled once
    configs = [(b, c) for b in (1, 2, 4, 8, 16) for c in (512, 1024, 2048, 4096)]
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for b, c in configs:
            estimate("llama2-7b", "a100-80gb", b, c)
        done += len(configs)
    return done / (time.perf_counter() - t0)


def genz_rate(seconds):
    """GenZ's decode-iteration estimate per second, or None where GenZ is not installed."""
    try:
        from GenZ import decode_moddeling  # noqa: F401
    except ImportError:
        return None
    configs = [(b, c) for b in (1, 2, 4, 8, 16) for c in (512, 1024, 2048, 4096)]
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for b, c in configs:
            decode_moddeling(model="llama2_7b", batch_size=b, input_tokens=c, output_tokens=1, system_name="A100_80GB_GPU",
                             bits="bf16", tensor_parallel=1)
        done += len(configs)
    return done / (time.perf_counter() - t0)


# ---- fused JAX PPO ---------------------------------------------------------------------------------------


def ppo_rate(env_id, num_envs, repeats):
    from memgym.train.ppo_jax import default_hyperparameters, make_trainer

    env, params = memgym.make(env_id)
    trainer = make_trainer(default_hyperparameters(), env, params, num_envs)
    t0 = time.perf_counter()
    state = jax.block_until_ready(jax.jit(trainer.init)(jax.random.PRNGKey(0)))
    run = jax.jit(trainer.run).lower(state, 1, 1).compile()
    compile_s = time.perf_counter() - t0
    state = jax.block_until_ready(run(state, 1, 10**6)[0])
    updates = 2
    holder = {"state": state}

    def go():
        holder["state"] = jax.block_until_ready(run(holder["state"], updates, 10**6)[0])
    return median_rate(go, updates * trainer.batch_size, repeats)[0], compile_s


# ---- the run ---------------------------------------------------------------------------------------------


def measure(args) -> dict:
    q = args.quick
    reps = 3 if q else 5
    single, vec_steps, scan_steps = (200, 5, 32) if q else (500, 10, 64)
    n = args.num_envs
    out = {"jax": jax.__version__, "gymnasium": gymnasium.__version__, "platform": jax.devices()[0].platform,
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "load_before": list(os.getloadavg()), "num_envs": n, "scan_steps": scan_steps, "quick": q}
    out["cartpole_env_sps"] = cartpole_env_rate(single * 10, reps)
    out["env_step_sps"] = {e: memgym_env_rate(e, single, reps) for e in ENV_IDS}
    out["cartpole_vector_sps"] = cartpole_vector_rate(n, vec_steps * 5, reps)
    out["vector_env_sps"] = {e: memgym_vector_rate(e, n, vec_steps, reps) for e in ENV_IDS}
    out["gymnax_scan_sps"], out["gymnax_compile_s"] = gymnax_rate(n, scan_steps, reps)
    out["scan_random_sps"], out["scan_heuristic_sps"], out["compile_s"] = {}, {}, {}
    for e in ENV_IDS:
        env, params = memgym.make(e)
        out["scan_random_sps"][e], out["compile_s"][e] = memgym_scan_rate(e, masked_random(env), n, scan_steps, reps)
        out["scan_heuristic_sps"][e], _ = memgym_scan_rate(e, get_policy(e, heuristic_name(e)), n, scan_steps, reps,
                                                           stacked=True)
    est_s = 1.0 if q else 3.0
    out["estimate_per_s"] = estimate_rate(est_s)
    out["genz_per_s"] = genz_rate(est_s)
    if not args.no_ppo:
        out["ppo_sps"], out["ppo_compile_s"] = {}, {}
        for e in ENV_IDS:
            out["ppo_sps"][e], out["ppo_compile_s"][e] = ppo_rate(e, args.ppo_envs, reps)
    out["ratios"] = ratios(out)
    return out


def ratios(m: dict) -> dict:
    r = {"env_step": {e: m["env_step_sps"][e] / m["cartpole_env_sps"] for e in ENV_IDS},
         "vector_env": {e: m["vector_env_sps"][e] / m["cartpole_vector_sps"] for e in ENV_IDS},
         "scan_random": {e: m["scan_random_sps"][e] / m["gymnax_scan_sps"] for e in ENV_IDS},
         "scan_heuristic": {e: m["scan_heuristic_sps"][e] / m["gymnax_scan_sps"] for e in ENV_IDS},
         "secure_over_cache": {
             "random": m["scan_random_sps"]["SecureDisagg-v0"] / m["scan_random_sps"]["CacheRatio-v0"],
             "heuristic": m["scan_heuristic_sps"]["SecureDisagg-v0"] / m["scan_heuristic_sps"]["CacheRatio-v0"]}}
    if m["genz_per_s"]:
        r["estimate_over_genz"] = m["estimate_per_s"] / m["genz_per_s"]
    if "ppo_sps" in m:
        r["ppo_over_heuristic"] = {e: m["ppo_sps"][e] / m["scan_heuristic_sps"][e] for e in ENV_IDS}
    return r


def table(m: dict) -> str:
    r, n = m["ratios"], m["num_envs"]
    rows = []  # (path, env, memgym, reference, ratio, goal)
    for e in ENV_IDS:
        rows.append(("gymnasium Env.step", e, m["env_step_sps"][e], m["cartpole_env_sps"], r["env_step"][e],
                     f">= {GOALS['env_step']}"))
    for e in ENV_IDS:
        rows.append((f"VectorEnv at {n}", e, m["vector_env_sps"][e], m["cartpole_vector_sps"], r["vector_env"][e],
                     f">= {GOALS['vector_env']}"))
    for e in ENV_IDS:
        rows.append((f"scan rollout at {n}, random", e, m["scan_random_sps"][e], m["gymnax_scan_sps"],
                     r["scan_random"][e], f">= {GOALS['scan_random']}"))
        rows.append((f"scan rollout at {n}, heuristic", e, m["scan_heuristic_sps"][e], m["gymnax_scan_sps"],
                     r["scan_heuristic"][e], ""))
        rows.append(("compile of the random rollout, s", e, m["compile_s"][e], m["gymnax_compile_s"], None,
                     f"<= {GOALS['compile_s']}"))
    genz = m["genz_per_s"]
    rows.append(("estimate() calls/s", "llama2-7b", m["estimate_per_s"], genz, r.get("estimate_over_genz"),
                 f">= {GOALS['estimate']}/s" + ("" if genz else " (GenZ not installed)")))
    for kind in ("random", "heuristic"):
        rows.append((f"SecureDisagg / CacheRatio scan, {kind}", "", m["scan_" + kind + "_sps"]["SecureDisagg-v0"],
                     m["scan_" + kind + "_sps"]["CacheRatio-v0"], r["secure_over_cache"][kind],
                     f">= {GOALS['secure_over_cache']}"))
    if "ppo_sps" in m:
        for e in ENV_IDS:
            rows.append(("fused PPO / heuristic scan", e, m["ppo_sps"][e], m["scan_heuristic_sps"][e],
                         r["ppo_over_heuristic"][e], f">= {GOALS['ppo_over_heuristic']}"))
            rows.append(("fused PPO compile, s", e, m["ppo_compile_s"][e], None, None,
                         f"<= {GOALS['ppo_compile_s']}"))

    def num(x):
        return "-" if x is None else f"{x:.4g}"
    header = f"{'path':<38} {'env':<17} {'memgym':>10} {'reference':>10} {'ratio':>7}  goal"
    lines = [f"memgym speed against reference environments: jax {m['jax']}, gymnasium {m['gymnasium']} on "
             f"{m['platform']} ({m['cpu']}, {m['cores']} cores, load average "
             f"{'/'.join(f'{x:.1f}' for x in m['load_before'])} before the run)" + (" --quick" if m["quick"] else ""),
             header, "-" * len(header)]
    for path, env, mine, ref, ratio, goal in rows:
        lines.append(f"{path:<38} {env:<17} {num(mine):>10} {num(ref):>10} {num(ratio):>7}  {goal}")
    lines.append("reference: CartPole-v1 (gymnasium Env and numpy VectorEnv; gymnax for the scan rollout), GenZ for "
                 "estimate, CacheRatio-v0 for SecureDisagg-v0, the heuristic's scan rollout for PPO; rates are "
                 "steps (or calls) per second, medians of repeats after compilation")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--num-envs", type=int, default=1024)
    ap.add_argument("--ppo-envs", type=int, default=256, help="environments of the fused PPO row")
    ap.add_argument("--no-ppo", action="store_true", help="skip the fused PPO rows")
    args = ap.parse_args(argv)
    if args.num_envs < 1 or args.ppo_envs < 2:
        ap.error("--num-envs must be >= 1 and --ppo-envs >= 2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium's passive checker warns once per environment
        m = measure(args)
    print(json.dumps(m, indent=1) if args.json else table(m))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
