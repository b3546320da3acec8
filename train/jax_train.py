"""The host loop behind `memgym train` for `algorithm: ppo_jax` (`memgym.train.ppo_jax` is the fused program).

`train_experiment(exp, run_dir, ...)` runs the program in chunks of updates (compiled once: the chunk length is
a traced loop bound) and, between chunks, writes TensorBoard scalars under SB3's tag names plus `env/<metric>`
and `baseline/<heuristic>/ep_rew_mean`, moves a progress bar and saves checkpoints (`runs`: schedule, resume
and the heuristic's reference, shared with SB3); `resume=True` continues from the latest checkpoint with the
step count, optimiser state, PRNG key and environments intact.

Logged per chunk and per seed (`<run>/tb/ppo_jax/seed_<i>`, x axis: env steps of that seed):
`rollout/ep_rew_mean`, `rollout/ep_len_mean` over the episodes that ended in the chunk (SB3 uses its last 100);
`time/fps`, the chunk's env steps per second for one seed (× n_seeds for the machine's throughput); `train/*`
means over the chunk's updates; `env/<metric>` means of info["metrics"] over the chunk's steps.

Checkpoints: `<run>/checkpoints/ppo_jax_<step>.npz`, the whole seed-batched `RunnerState` (format in
`memgym.policies.learned`).
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np

from memgym.envs.distribution import make_env
from memgym.policies import heuristic_name
from memgym.policies.learned import arrays_to_tree, read_checkpoint, tree_to_arrays

from . import runs
from .ppo_jax import RunnerState, chunk_means, make_trainer
from .progress import bar as progress_bar, fmt
from .tblog import ScalarWriter

log = logging.getLogger(__name__)
EPISODE_TAGS = ("rollout/ep_rew_mean", "rollout/ep_len_mean")


def save_checkpoint(run_dir, state: RunnerState, global_step: int, n_seeds: int) -> pathlib.Path:
    """Write the whole (seed-batched) runner state, atomically."""
    arrays = tree_to_arrays(jax.device_get(state))
    meta = {"global_step": int(global_step), "updates": int(np.asarray(state.update).reshape(-1)[0]),
            "n_seeds": int(n_seeds), "format": "memgym.ppo_jax/1"}
    return runs.write_checkpoint(run_dir, "ppo_jax", global_step, ".npz",
                                 lambda f: np.savez(f, meta=np.array(json.dumps(meta)), **arrays))


def load_checkpoint(path, template: RunnerState) -> tuple[RunnerState, dict]:
    arrays, meta = read_checkpoint(path)
    return arrays_to_tree(arrays, template), meta


_PROGRAMS: dict = {}


def _program(exp):
    """(trainer, jitted init over seeds, compiled run over seeds) for an experiment, cached per process so
    that a resumed run or a sweep in one process compiles once. The chunk length and the LR horizon are
    traced arguments: one executable serves every call."""
    cache_key = (exp.env, json.dumps(exp.env_params, sort_keys=True), json.dumps(exp.distribution, sort_keys=True),
                 json.dumps(exp.hyperparameters, sort_keys=True), exp.num_envs, exp.n_seeds)
    if cache_key not in _PROGRAMS:
        env, params = make_env(exp.env, exp.env_params, exp.distribution)
        trainer = make_trainer(exp.hyperparameters, env, params, exp.num_envs)
        init = jax.jit(jax.vmap(trainer.init))
        template = jax.eval_shape(init, jax.random.split(jax.random.PRNGKey(0), exp.n_seeds))
        run = jax.jit(jax.vmap(trainer.run, in_axes=(0, None, None)), donate_argnums=0).lower(
            template, 1, 1).compile()
        _PROGRAMS[cache_key] = (trainer, init, run)
    return _PROGRAMS[cache_key]


def train_experiment(exp, run_dir, resume: bool = False, progress: bool = True, on_log=None) -> dict:
    """Train `exp` (a validated `memgym.train.experiment.Experiment`) into `run_dir`; returns a summary
    (global_step, last logged scalars per seed, heuristic reference, wall time, compile time).
    `on_log(step, scalars per seed, heuristic reference)`, if given, is called after each logged chunk
    (a sweep's trial reports to Ray Tune through it)."""
    t_start = time.perf_counter()
    run_dir = pathlib.Path(run_dir)
    ckpts = runs.checkpoints_to_resume(run_dir, resume, ".npz")  # before compiling anything
    keys = jax.random.split(jax.random.PRNGKey(exp.seed), exp.n_seeds)
    heuristic = heuristic_name(exp.env)
    with ThreadPoolExecutor(1) as pool:  # XLA compiles outside the GIL: the reference overlaps the compile
        reference = pool.submit(runs.heuristic_reference, exp.env, exp.env_params, exp.seed, exp.distribution)
        t0 = time.perf_counter()
        trainer, init, run = _program(exp)
        compile_s = time.perf_counter() - t0
        log.info("compiled the training program in %.1f s", compile_s)
        start_step = 0
        if resume:
            template = jax.eval_shape(init, keys)
            (state, _), start_step = runs.resume_from(run_dir, ckpts, lambda p: load_checkpoint(p, template),
                                                      lambda loaded: loaded[1]["global_step"])
        else:
            state = init(keys)
        baseline = reference.result()

    batch = trainer.batch_size
    start_updates = start_step // batch
    target_updates = start_updates + max(1, math.ceil(exp.total_timesteps / batch))
    chunk = max(1, exp.log_every // batch)
    baseline_tag = runs.baseline_tag(heuristic)
    writers = [ScalarWriter(runs.tb_dir(run_dir) / "ppo_jax" / f"seed_{i}") for i in range(exp.n_seeds)]
    bar = progress_bar(target_updates * batch, exp.name, enabled=progress, initial=start_updates * batch)
    schedule = runs.CheckpointSchedule(exp.checkpoint_every, start_step)
    updates = start_updates
    last = [{} for _ in range(exp.n_seeds)]
    try:
        while updates < target_updates:
            n = min(chunk, target_updates - updates)
            t0 = time.perf_counter()
            state, stats = run(state, n, target_updates)
            stats = jax.device_get(stats)
            dt = time.perf_counter() - t0
            updates += n
            step = updates * batch
            for i, w in enumerate(writers):
                scalars = chunk_means({k: v[i] for k, v in stats.items()})
                scalars["time/fps"] = n * batch / dt
                scalars[baseline_tag] = baseline
                w.add_scalars(scalars, step)
                w.flush()
                # a chunk where no episode ended (a short remainder) keeps the previous chunk's episode figures
                # for the summary and `on_log`
                last[i] = {**{k: last[i][k] for k in EPISODE_TAGS if k in last[i]},
                           **{k: v for k, v in scalars.items() if k not in EPISODE_TAGS or math.isfinite(v)}}
            log.info("step %d  ep_rew_mean %.3f  (%s %.3f)  %.0f steps/s", step,
                     last[0].get("rollout/ep_rew_mean", math.nan), heuristic, baseline, n * batch / dt)
            bar.update(n * batch)
            bar.set_postfix(ep_rew=fmt(last[0].get("rollout/ep_rew_mean")), ref=fmt(baseline))
            if on_log is not None:
                on_log(step, last, baseline)
            if schedule.due(step) or updates >= target_updates:
                save_checkpoint(run_dir, state, step, exp.n_seeds)
    finally:
        for w in writers:
            w.close()
        bar.close()
    return runs.summary(updates * batch, start_step, last, heuristic, baseline, time.perf_counter() - t_start,
                        compile_s=compile_s)
