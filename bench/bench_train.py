"""Training throughput and learning: the fused JAX PPO trainer against SB3's PPO, and against the heuristic.

    .venv/bin/python bench/bench_train.py                     # throughput table, ~2 minutes on 2 CPU cores
    .venv/bin/python bench/bench_train.py --learning          # + the learning curve, up to --budget-s (600)
    .venv/bin/python bench/bench_train.py --learning --hp ent_coef=0.003 --num-envs 64   # try settings

Throughput: env steps per second of training (environment, policy and PPO update), after compilation,
median of --repeats chunks; the compile time of the whole program; SB3 PPO (torch, CPU) on the same scenario
through `MemgymSB3VecEnv`, timed after its first rollout. Learning: the experiment config's PPO trained for at
most --budget-s seconds of wall time (compile included); each row is the time, the steps, the training
episodes' mean return (stochastic policy), the greedy policy's return, and both as a fraction of the
heuristic's return on the same scenario.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import jax
import numpy as np
import yaml

from memgym.envs.core import rollout
from memgym.envs.registry import make
from memgym.policies import get_policy, heuristic_name, policy_names
from memgym.policies.learned import forward, greedy_action
from memgym.train import experiment
from memgym.train.ppo_jax import chunk_means, make_trainer
from memgym.train.runs import episode_returns, heuristic_reference


def jax_throughput(exp, env, params, updates_per_chunk, repeats):
    trainer = make_trainer(exp.hyperparameters, env, params, exp.num_envs)
    keys = jax.random.split(jax.random.PRNGKey(exp.seed), exp.n_seeds)
    t0 = time.perf_counter()
    state = jax.block_until_ready(jax.jit(jax.vmap(trainer.init))(keys))
    run = jax.jit(jax.vmap(trainer.run, in_axes=(0, None, None))).lower(state, 1, 1).compile()
    compile_s = time.perf_counter() - t0
    state, _ = run(state, 1, 10**6)  # warm-up
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, _ = run(state, updates_per_chunk, 10**6)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    steps = updates_per_chunk * trainer.batch_size * exp.n_seeds
    return steps / statistics.median(times), compile_s


def sb3_throughput(exp, steps):
    from stable_baselines3 import PPO

    from memgym.train.sb3_adapter import MemgymSB3VecEnv

    import torch

    torch.set_num_threads(1)  # as memgym.train.sb3_train does: torch's threads fight XLA's on 2 cores
    venv = MemgymSB3VecEnv(exp.env, num_envs=8, seed=0, **exp.env_params)
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=4, seed=0, device="cpu", verbose=0)
    model.learn(256 * 8)  # first rollout: the adapter's compile, torch warm-up
    t0 = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - t0)


def learning_curve(exp, env, params, budget_s):
    """Train until the budget is spent; yields rows (t, steps, ep_rew_mean, greedy_return)."""
    t_start = time.perf_counter()
    trainer = make_trainer(exp.hyperparameters, env, params, exp.num_envs)
    keys = jax.random.split(jax.random.PRNGKey(exp.seed), exp.n_seeds)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    run = jax.jit(jax.vmap(trainer.run, in_axes=(0, None, None)), donate_argnums=0)
    activation = exp.hyperparameters["activation"]
    nvec = tuple(env.action_nvec(params))

    @jax.jit
    def greedy_return(net, obs_norm, key):
        def policy(k, obs, s, p):
            logits, _ = forward(net, obs_norm, obs.features, activation)
            return greedy_action(logits, obs.action_mask, nvec)

        rewards = jax.vmap(lambda k: rollout(env, policy, params, k, params.max_steps)[0])(jax.random.split(key, 8))
        return rewards.sum(-1).mean()

    total_updates = max(1, math.ceil(exp.total_timesteps / trainer.batch_size))
    chunk = max(1, exp.log_every // trainer.batch_size)
    updates = 0
    while updates < total_updates and time.perf_counter() - t_start < budget_s:
        n = min(chunk, total_updates - updates)
        state, stats = run(state, n, total_updates)
        stats = jax.device_get(stats)
        updates += n
        means = [chunk_means({k: v[i] for k, v in stats.items()})["rollout/ep_rew_mean"] for i in range(exp.n_seeds)]
        seed0 = jax.tree_util.tree_map(lambda x: x[0], state)
        greedy = float(greedy_return(seed0.net, seed0.obs_norm, jax.random.PRNGKey(1)))
        yield time.perf_counter() - t_start, updates * trainer.batch_size, float(np.mean(means)), greedy


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="kernel-mapping-ppo-jax", help="experiment preset or YAML path")
    p.add_argument("--learning", action="store_true", help="also train for up to --budget-s and print the curve")
    p.add_argument("--budget-s", type=float, default=600.0)
    p.add_argument("--every-s", type=float, default=15.0, help="print a curve row at most this often")
    p.add_argument("--num-envs", type=int, default=None, help="override the config's num_envs")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="override a hyperparameter")
    p.add_argument("--updates", type=int, default=20, help="updates per timed chunk (throughput)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sb3-steps", type=int, default=8192, help="timed SB3 PPO steps (0: skip SB3)")
    args = p.parse_args()

    raw = yaml.safe_load(open(experiment.preset_path("experiments", args.config)))
    for item in args.hp:
        k, v = item.split("=", 1)
        raw.setdefault("hyperparameters", {})[k] = yaml.safe_load(v)
    if args.num_envs:
        raw["num_envs"] = args.num_envs
    exp = experiment.validate(raw, args.config)
    env, params = make(exp.env, **exp.env_params)
    heuristic = heuristic_name(exp.env)
    print(f"# bench_train: {exp.name} on {exp.env} {exp.env_params}  |  {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, jax {jax.__version__} ({jax.devices()[0].platform})")
    print(f"# hyperparameters: num_envs={exp.num_envs} n_seeds={exp.n_seeds} {exp.hyperparameters}")
    rows = []
    sps, compile_s = jax_throughput(exp, env, params, args.updates, args.repeats)
    rows.append(("JAX PPO (fused, lax.scan) training", f"{sps:,.0f}", f"{compile_s:.1f}"))
    if args.sb3_steps:
        rows.append(("SB3 PPO (torch CPU, MemgymSB3VecEnv ×8)", f"{sb3_throughput(exp, args.sb3_steps):,.0f}", "—"))
    print("\n| path | env steps/s | compile s |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    if not args.learning:
        return
    reference = heuristic_reference(exp.env, exp.env_params, exp.seed)
    print(f"\n{heuristic} mean episode return: {reference:.4f}  (budget {args.budget_s:.0f} s, "
          f"total_timesteps {exp.total_timesteps:,})")
    if "oracle" in policy_names(exp.env):
        oracle = episode_returns(env, get_policy(exp.env, "oracle"), params, jax.random.PRNGKey(exp.seed))
        print(f"oracle (per-step exhaustive search) mean episode return: {oracle:.4f} = "
              f"{oracle / reference:.4f} × {heuristic}")
    print("\n| time s | steps | ep_rew_mean | / heuristic | greedy return | greedy / heuristic |")
    print("|---|---|---|---|---|---|")
    def show(t, steps, rew, greedy):
        print(f"| {t:.0f} | {steps:,} | {rew:.3f} | {rew / reference:.4f} | {greedy:.3f} | {greedy / reference:.4f} |",
              flush=True)

    best, next_row, row, shown = 0.0, 0.0, None, None
    for row in learning_curve(exp, env, params, args.budget_s):
        best = max(best, row[3] / reference)
        if row[0] >= next_row:
            show(*row)
            shown, next_row = row, row[0] + args.every_s
    if row is not None and row is not shown:
        show(*row)
    print(f"\nbest greedy / heuristic: {best:.4f}")


if __name__ == "__main__":
    main()
