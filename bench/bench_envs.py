"""Steps per second of the environment front-ends: gymnasium `MemgymEnv` at batch 1, `MemgymVectorEnv` and
SB3 `MemgymSB3VecEnv` at 1024 environments, all with uniformly random actions, beside the adapters' own
jitted `jit(vmap(step))` kernel driven by a plain Python loop with no host transfer, at both batch sizes
(what the adapters add their transfer, numpy and info work to). Also the compile time at each batch size.

    .venv/bin/python bench/bench_envs.py                    # the environment's default scenario, ~30-60 s
    .venv/bin/python bench/bench_envs.py --num-envs 4096 --set model=llama2-70b batch=8

The repeats of all paths are interleaved, so a machine whose load changes during the run skews them alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import numpy as np
import yaml

from memgym.envs.gym_adapter import MemgymEnv, MemgymVectorEnv, keys_from_seeds
from memgym.train.sb3_adapter import MemgymSB3VecEnv


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def random_actions(rng, nvec, n_steps, batch):
    return rng.integers(0, nvec, (n_steps, *batch, len(nvec)))


# Each path returns (first call s, run, environment steps per run); run() blocks until its steps are done.


def gym_env_path(env_id, overrides, n_steps, rng):
    env = MemgymEnv(env_id, **overrides)
    first = timed(lambda: (env.reset(seed=0), env.step(env.action_space.sample())))
    actions = random_actions(rng, env.action_space.nvec, n_steps, ())

    def run():
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()

    return first, run, n_steps


def vector_path(env, reset, nvec, n, n_steps, rng):
    """A vector front-end (gymnasium or SB3): `reset()` starts it, `env.step(actions)` steps it."""
    actions = random_actions(rng, nvec, n_steps, (n,))
    first = timed(lambda: (reset(), env.step(actions[0])))

    def run():
        for a in actions:
            env.step(a)

    return first, run, n * n_steps


def kernel_path(env_id, overrides, n, n_steps, rng):
    """The adapters' jitted kernel alone: device arrays in and out, one block at the end (so dispatch
    overlaps computation, which a front-end that must hand back each observation cannot do)."""
    core = MemgymVectorEnv(env_id, num_envs=n, **overrides).core
    actions = [jax.device_put(a.astype(np.int32)) for a in random_actions(rng, core.nvec, n_steps, (n,))]
    state = {}

    def start():
        keys, states, _ = core.scenario.reset(keys_from_seeds(range(n)))
        state.update(keys=keys, states=states)
        jax.block_until_ready(core.scenario.step(keys, states, actions[0]))

    def run():
        k, s = state["keys"], state["states"]
        for a in actions:
            k, s, rows = core.scenario.step(k, s, a)
        jax.block_until_ready(rows)

    return timed(start), run, n * n_steps


def parse_overrides(items):
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env-id", default="KernelMapping-v0")
    ap.add_argument("--num-envs", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps-single", type=int, default=300, help="steps per repeat at batch 1")
    ap.add_argument("--steps-batched", type=int, default=20, help="steps per repeat at --num-envs")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="default_params overrides")
    args = ap.parse_args(argv)
    env_id, overrides, n = args.env_id, parse_overrides(args.set), args.num_envs
    rng = np.random.default_rng(0)
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"memgym env benchmark: {env_id} {overrides or '(default params)'}, jax {jax.__version__} on "
          f"{jax.devices()[0].platform} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load} before the run)")

    vec = MemgymVectorEnv(env_id, num_envs=n, **overrides)
    sb3 = MemgymSB3VecEnv(env_id, num_envs=n, seed=0, **overrides)
    paths = [
        ("gymnasium MemgymEnv", 1, gym_env_path(env_id, overrides, args.steps_single, rng)),
        ("jit(vmap(step)) loop, no transfer", 1, kernel_path(env_id, overrides, 1, args.steps_single, rng)),
        ("jit(vmap(step)) loop, no transfer", n, kernel_path(env_id, overrides, n, args.steps_batched, rng)),
        ("gymnasium MemgymVectorEnv", n,
         vector_path(vec, lambda: vec.reset(seed=0), vec.single_action_space.nvec, n, args.steps_batched, rng)),
        ("SB3 MemgymSB3VecEnv", n, vector_path(sb3, sb3.reset, sb3.action_space.nvec, n, args.steps_batched, rng)),
    ]
    times = [[] for _ in paths]
    for _ in range(args.repeats):
        for t, (_, _, (_, run, _)) in zip(times, paths):
            t.append(timed(run))

    header = f"{'path':<36} {'envs':>6} {'first call s':>13} {'steps/s':>10} {'min-max':>17}"
    print(header)
    print("-" * len(header))
    for t, (name, envs, (first, _, steps)) in zip(times, paths):
        print(f"{name:<36} {envs:>6} {first:>13.2f} {steps / statistics.median(t):>10.4g} "
              f"{f'{steps / max(t):.3g}-{steps / min(t):.3g}':>17}")
    print("first call s: the first reset + step (trace and XLA compile of the kernel for that batch size, once per "
          "process; later rows of the same size reuse it); steps/s: environment steps per second, median of "
          f"{args.repeats} interleaved repeats after compilation (min-max beside it), random actions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
