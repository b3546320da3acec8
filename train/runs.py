"""What both trainers do around the learning itself (`jax_train` for `algorithm: ppo_jax`, `sb3_train` for SB3),
in a run folder `runs/<name>/`:

- checkpoints in `checkpoints/`, written atomically every `checkpoint_every` env steps and at the end, named
  `<prefix>_<zero-padded global step><suffix>` (`write_checkpoint`, `CheckpointSchedule`; the formats are
  `memgym.policies.learned`'s);
- resume: the newest checkpoint that reads (damaged ones are renamed `*.corrupt`), after which the TensorBoard
  events under `tb/` logged past its step are dropped, since they are logged again (`resume_from`);
- the heuristic's mean episode return on the training scenario or distribution, measured once per process
  with vmapped scan rollouts (`heuristic_reference`), logged as `baseline/<heuristic>/ep_rew_mean`;
- the summary both return (`summary`), which `experiment.format_summary` prints.
"""

from __future__ import annotations

import json
import logging
import pathlib
import time

import jax
import jax.numpy as jnp

from memgym.envs.core import rollout
from memgym.envs.distribution import lift, make_env
from memgym.policies import get_policy, heuristic_name
from memgym.policies.learned import checkpoint_paths, load_newest

from .files import atomic_open
from .tblog import drop_after

log = logging.getLogger(__name__)


def tb_dir(run_dir) -> pathlib.Path:
    """The run's TensorBoard folder."""
    return pathlib.Path(run_dir) / "tb"


def checkpoints_to_resume(run_dir, resume: bool, suffix: str) -> list[pathlib.Path]:
    """The run's checkpoints (`*<suffix>`), oldest first; with `resume`, an error when there is none (call it
    before compiling or building anything)."""
    ckpts = checkpoint_paths(run_dir, suffix)
    if resume and not ckpts:
        raise FileNotFoundError(f"--resume: no checkpoint in {pathlib.Path(run_dir) / 'checkpoints'}")
    return ckpts


def resume_from(run_dir, ckpts, load, step_of):
    """(loaded, step): the newest of `ckpts` that `load(path)` reads, and its global step `step_of(loaded)`;
    TensorBoard events after that step are dropped (the steps after it are logged again)."""
    path, loaded = load_newest(ckpts, load)
    step = step_of(loaded)
    drop_after(tb_dir(run_dir), step)
    log.info("resumed from %s at step %d", path, step)
    return loaded, step


def write_checkpoint(run_dir, prefix: str, global_step: int, suffix: str, write) -> pathlib.Path:
    """`write(file)` into `<run>/checkpoints/<prefix>_<step, 12 digits><suffix>`, atomically; returns the path."""
    folder = pathlib.Path(run_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{prefix}_{global_step:012d}{suffix}"
    with atomic_open(path) as f:
        write(f)
    return path


class CheckpointSchedule:
    """A checkpoint every `every` env steps: `due(step)` is true once each time `step` passes a multiple of
    `every` (counting from the run's start step, so a resumed run keeps the schedule)."""

    def __init__(self, every: int, start_step: int = 0):
        self.every = every
        self.next = (start_step // every + 1) * every

    def due(self, step: int) -> bool:
        if step < self.next:
            return False
        self.next = (step // self.every + 1) * self.every
        return True


def baseline_tag(heuristic: str) -> str:
    """The TensorBoard tag of the heuristic's reference return."""
    return f"baseline/{heuristic}/ep_rew_mean"


def summary(global_step: int, start_step: int, scalars: list, heuristic: str, baseline: float, wall_s: float,
            **extra) -> dict:
    """What a trainer returns: the global step, the step it started from, the last logged scalars per seed,
    the heuristic's reference return, the wall time, and trainer-specific extras (e.g. compile_s)."""
    return {"global_step": global_step, "start_step": start_step, "scalars": scalars,
            "baseline": {heuristic: baseline}, "wall_s": wall_s, **extra}


_REFERENCES: dict = {}


def heuristic_reference(env_id: str, env_params: dict, seed: int = 0, dist=None) -> float:
    """The heuristic's mean episode return on a scenario or over a distribution (`episode_returns`), cached
    per process."""
    cache_key = (env_id, json.dumps(env_params, sort_keys=True), json.dumps(dist, sort_keys=True), seed)
    if cache_key not in _REFERENCES:
        env, params = make_env(env_id, env_params, dist)
        name = heuristic_name(env_id)
        policy = get_policy(env_id, name)
        if dist is not None:
            policy = lift(policy)
        t0 = time.perf_counter()
        _REFERENCES[cache_key] = episode_returns(env, policy, params, jax.random.PRNGKey(seed),
                                                 n_envs=16 if dist is None else 64)
        log.info("%s: mean episode return %.4f (%.1f s)", name, _REFERENCES[cache_key], time.perf_counter() - t0)
    return _REFERENCES[cache_key]


def episode_returns(env, policy, params, key, n_envs: int = 16, n_episodes_per_env: int = 1):
    """Mean return of the episodes `policy` completes in `n_envs` vmapped scan rollouts of
    n_episodes_per_env × max_steps steps (the reference a learned policy is measured against)."""
    n_steps = int(getattr(params, "max_steps")) * n_episodes_per_env

    def one(k):
        rewards, term, trunc, _, _ = rollout(env, policy, params, k, n_steps)

        def acc(running, x):
            r, done = x
            running = running + r
            return jnp.where(done, 0.0, running), jnp.where(done, running, 0.0)

        _, finished = jax.lax.scan(acc, jnp.float32(0.0), (rewards, term | trunc))
        return finished.sum(), (term | trunc).sum()

    total, count = jax.jit(jax.vmap(one))(jax.random.split(key, n_envs))
    return float(total.sum() / jnp.maximum(count.sum(), 1))

