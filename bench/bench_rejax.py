"""A third-party JAX trainer on a memgym environment: rejax's PPO through the gymnax view
(`memgym.compat.gymnax.GymnaxEnv`, five-value step) beside memgym's own fused PPO (`train/ppo_jax.py`), on
KernelMapping-v0, in one run.

    .venv/bin/pip install rejax==0.1.3                     # bench-only; not in the extras the tests use
    .venv/bin/python bench/bench_rejax.py                  # ~262k steps each, a few minutes on 2 CPU cores
    .venv/bin/python bench/bench_rejax.py --steps 1000000 --json

Both train for --steps environment steps with the hyperparameters of the experiment preset (--config: envs,
rollout length, epochs, minibatches, learning rate, entropy bonus, network); rejax has no reward scale, so it
normalises rewards instead, and keeps its learning rate constant (memgym's anneals it). Steps/s: training steps over the run time after compilation (rejax's run
includes its one evaluation at the end). Greedy score: the deterministic policy's mean episode return on the
same 16 episodes the heuristic is scored on (`runs.episode_returns`), divided by the H2M2 heuristic's.
rejax's policy does not see the flat action mask (it learns from the 0/1 mask in the observation); infeasible
joint actions are projected by the environment, as for every policy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import yaml

from memgym.compat import flat
from memgym.compat.gymnax import GymnaxEnv
from memgym.envs.registry import make
from memgym.policies import heuristic_name
from memgym.policies.learned import forward, greedy_action
from memgym.train import experiment
from memgym.train.ppo_jax import make_trainer
from memgym.train.runs import episode_returns, heuristic_reference


def timed_run(compiled, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, time.perf_counter() - t0


def memgym_ppo(exp, env, params, steps, key):
    """(steps/s, compile s, greedy mean episode return) of memgym's fused PPO."""
    hp = exp.hyperparameters
    trainer = make_trainer(hp, env, params, exp.num_envs)
    n_updates = max(1, steps // trainer.batch_size)
    t0 = time.perf_counter()
    state = jax.block_until_ready(jax.jit(trainer.init)(key))
    run = jax.jit(trainer.run).lower(state, 1, 1).compile()
    compile_s = time.perf_counter() - t0
    (state, _), run_s = timed_run(run, state, n_updates, n_updates)
    nvec = tuple(env.action_nvec(params))

    def greedy(k, obs, s, p):
        logits, _ = forward(state.net, state.obs_norm, obs.features, hp["activation"])
        return greedy_action(logits, obs.action_mask, nvec)

    score = episode_returns(env, greedy, params, jax.random.PRNGKey(exp.seed))
    return n_updates * trainer.batch_size / run_s, compile_s, score


def rejax_ppo(exp, env, params, steps, key):
    """(steps/s, compile s, greedy mean episode return) of rejax's PPO through the gymnax view."""
    from rejax import PPO

    hp = exp.hyperparameters
    view = GymnaxEnv(env, params, step_values=5)
    algo = PPO.create(env=view, env_params=view.default_params, total_timesteps=steps, eval_freq=steps,
                      skip_initial_evaluation=True, num_envs=exp.num_envs, num_steps=hp["num_steps"],
                      num_epochs=hp["update_epochs"], num_minibatches=hp["num_minibatches"],
                      learning_rate=hp["learning_rate"], gamma=hp["gamma"],
                      gae_lambda=hp["gae_lambda"], clip_eps=hp["clip_eps"], ent_coef=hp["ent_coef"],
                      vf_coef=hp["vf_coef"], max_grad_norm=hp["max_grad_norm"], normalize_rewards=True,
                      agent_kwargs={"hidden_layer_sizes": tuple(hp["hidden"]), "activation": hp["activation"]})
    t0 = time.perf_counter()
    train = jax.jit(algo.train).lower(key).compile()
    compile_s = time.perf_counter() - t0
    (ts, _), run_s = timed_run(train, key)
    nvec = tuple(env.action_nvec(params))

    def greedy(k, obs, s, p):
        logits = algo.actor.apply(ts.actor_ts.params, view.flat_obs(obs)[None],  # rejax's MLP wants a batch
                                  method=lambda m, x: m.action_logits(m.features(x)))
        return flat.unflatten_action(jnp.argmax(logits[0]), nvec)

    score = episode_returns(env, greedy, params, jax.random.PRNGKey(exp.seed))
    total = algo.num_envs * algo.num_steps * -(-steps // (algo.num_envs * algo.num_steps))
    return total / run_s, compile_s, score


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="kernel-mapping-ppo-jax", help="experiment preset or YAML path")
    p.add_argument("--steps", type=int, default=262_144, help="training steps for each trainer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = p.parse_args(argv)

    exp = experiment.validate(yaml.safe_load(open(experiment.preset_path("experiments", args.config))), args.config)
    env, params = make(exp.env, **exp.env_params)
    key = jax.random.PRNGKey(args.seed)
    reference = heuristic_reference(exp.env, exp.env_params, exp.seed)
    rows = {}
    for name, fn in (("memgym PPO (train/ppo_jax.py)", memgym_ppo), ("rejax 0.1.3 PPO (gymnax view)", rejax_ppo)):
        sps, compile_s, score = fn(exp, env, params, args.steps, key)
        rows[name] = {"steps_per_s": sps, "compile_s": compile_s, "greedy_return": float(score),
                      "greedy_vs_heuristic": float(score) / reference}
    if args.json:
        print(json.dumps({"env": exp.env, "env_params": exp.env_params, "steps": args.steps,
                          "heuristic": heuristic_name(exp.env), "heuristic_return": reference, "rows": rows}))
        return
    print(f"# bench_rejax: {exp.env} {exp.env_params}, {args.steps:,} steps each  |  "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}")
    print(f"# {heuristic_name(exp.env)} mean episode return: {reference:.3f}")
    print("\n| trainer | env steps/s | compile s | greedy return | greedy / heuristic |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['steps_per_s']:,.0f} | {r['compile_s']:.1f} | {r['greedy_return']:.3f} | "
              f"{r['greedy_vs_heuristic']:.4f} |")


if __name__ == "__main__":
    main()
