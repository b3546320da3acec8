"""Stable-Baselines3 training behind `memgym train` for `algorithm: PPO | A2C | DQN | MaskablePPO`.

The environments are one `memgym.train.sb3_adapter.MemgymSB3VecEnv` (all `num_envs` stepped in one jitted
call). TensorBoard: SB3's own tags under `<run>/tb/<algorithm>_1` (`tb_log_name=algorithm`; a resumed run
passes `reset_num_timesteps=False`, so SB3 writes into the same folder and the curve continues), plus
`env/<metric>` (means of `info["metrics"]` over each rollout) and `baseline/<heuristic>/ep_rew_mean` (the
heuristic's mean episode return on the same scenario, measured once with a vmapped scan rollout) from
`MemgymCallback`. Checkpoints: `<run>/checkpoints/<algorithm>_<step>.zip` every `checkpoint_every` steps and at
the end, written atomically; `resume=True` loads the latest and trains `total_timesteps` more.

DQN needs a `Discrete` action space: `FlatActions` presents MultiDiscrete(nvec) as Discrete(prod(nvec)),
index = ravel_multi_index(action, nvec) in C order (the last dimension varies fastest;
`memgym.policies.learned.flat_to_multi` maps back). Infeasible flat actions are projected by the environment as
any other action. A resumed DQN starts with an empty replay buffer (the buffer is not checkpointed).

torch runs single-threaded while training: SB3's small MLPs gain nothing from more threads, and on a small
machine torch's OpenMP workers fight XLA's thread pool (the environments step in XLA): SB3 PPO measured
~140 env steps/s with torch's default 2 threads after a JAX program had run in the process, ~3,000 with 1.
"""

from __future__ import annotations

import math
import pathlib
import time

import numpy as np
import stable_baselines3
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnvWrapper

from memgym.policies import heuristic_name
from memgym.policies.learned import flat_to_multi, load_sb3_model

from . import runs
from .progress import bar as progress_bar
from .sb3_adapter import MemgymSB3VecEnv


def algorithm_class(name: str):
    return MaskablePPO if name == "MaskablePPO" else getattr(stable_baselines3, name)


class FlatActions(VecEnvWrapper):
    """MultiDiscrete(nvec) environments seen as Discrete(prod(nvec)) (for DQN); see the module docstring."""

    def __init__(self, venv):
        self.nvec = tuple(int(n) for n in venv.action_space.nvec)
        super().__init__(venv, action_space=spaces.Discrete(int(np.prod(self.nvec))))

    def step_async(self, actions) -> None:
        self.venv.step_async(flat_to_multi(np.asarray(actions).reshape(-1), self.nvec))

    def step_wait(self):
        return self.venv.step_wait()

    def reset(self):
        return self.venv.reset()


class MemgymCallback(BaseCallback):
    """Adds env/<metric> rollout means and the heuristic's reference line to SB3's logger."""

    def __init__(self, baseline_tag: str, baseline: float):
        super().__init__()
        self.baseline_tag, self.baseline = baseline_tag, baseline
        self._sums: dict[str, float] = {}
        self._count = 0

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            for k, v in info["metrics"].items():
                self._sums[k] = self._sums.get(k, 0.0) + float(v)
            self._count += 1
        return True

    def _on_rollout_end(self) -> None:
        if self._count:
            for k, v in self._sums.items():
                self.logger.record_mean(f"env/{k}", v / self._count)
        self.logger.record(self.baseline_tag, self.baseline)
        self._sums, self._count = {}, 0


class CheckpointEvery(BaseCallback):
    """Save `<run>/checkpoints/<algorithm>_<step>.zip` atomically every `every` steps (and at the end)."""

    def __init__(self, run_dir, prefix: str, every: int):
        super().__init__()
        self.run_dir, self.prefix, self.every = run_dir, prefix, every
        self.schedule = None

    def save(self) -> pathlib.Path:
        return runs.write_checkpoint(self.run_dir, self.prefix, self.model.num_timesteps, ".zip", self.model.save)

    def _on_training_start(self) -> None:
        self.schedule = runs.CheckpointSchedule(self.every, self.model.num_timesteps)

    def _on_step(self) -> bool:
        if self.schedule.due(self.model.num_timesteps):
            self.save()
        return True


class ProgressBar(BaseCallback):
    """A tqdm bar over this run's steps (SB3's own progress_bar needs `rich`, which memgym does not require)."""

    def __init__(self, desc: str):
        super().__init__()
        self.desc, self.bar = desc, None

    def _on_training_start(self) -> None:
        self.bar = progress_bar(self.locals["total_timesteps"], self.desc, initial=self.model.num_timesteps)

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def train_experiment(exp, run_dir, resume: bool = False, progress: bool = True) -> dict:
    """Train `exp` with SB3 into `run_dir`; returns a summary like `jax_train.train_experiment`'s."""
    run_dir = pathlib.Path(run_dir)
    ckpts = runs.checkpoints_to_resume(run_dir, resume, ".zip")
    cls = algorithm_class(exp.algorithm)
    venv = MemgymSB3VecEnv(exp.env, num_envs=exp.num_envs, seed=exp.seed, **exp.env_params)
    if exp.algorithm == "DQN" and isinstance(venv.action_space, spaces.MultiDiscrete):
        venv = FlatActions(venv)
    tb = str(runs.tb_dir(run_dir))
    start_step = 0
    if resume:
        model, start_step = runs.resume_from(
            run_dir, ckpts, lambda p: load_sb3_model(cls, p, env=venv, device="cpu", tensorboard_log=tb),
            lambda m: m.num_timesteps)
    else:
        model = cls("MlpPolicy", venv, seed=exp.seed, tensorboard_log=tb, verbose=0, device="cpu",
                    **exp.hyperparameters)

    heuristic = heuristic_name(exp.env)
    baseline = runs.heuristic_reference(exp.env, exp.env_params, exp.seed)
    saver = CheckpointEvery(run_dir, exp.algorithm, exp.checkpoint_every)
    callbacks = [MemgymCallback(runs.baseline_tag(heuristic), baseline), saver]
    if progress:
        callbacks.append(ProgressBar(exp.name))
    if exp.algorithm == "DQN":
        log_interval = 4  # episodes, SB3's default for off-policy algorithms
    else:
        log_interval = max(1, exp.log_every // (model.n_steps * exp.num_envs))
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see the module docstring
    try:
        model.learn(total_timesteps=exp.total_timesteps, callback=CallbackList(callbacks),
                    log_interval=log_interval, tb_log_name=exp.algorithm, reset_num_timesteps=not resume)
    finally:
        torch.set_num_threads(threads)
    saver.save()
    wall = time.perf_counter() - t0
    episodes = [e["r"] for e in model.ep_info_buffer]
    scalars = {"rollout/ep_rew_mean": float(np.mean(episodes)) if episodes else math.nan,
               "time/fps": (model.num_timesteps - start_step) / wall}
    return runs.summary(int(model.num_timesteps), start_step, [scalars], heuristic, baseline, wall)
