"""Stable-Baselines3 front-end: `MemgymSB3VecEnv`, num_envs memgym environments in one jitted call behind
SB3's `VecEnv` API (needs the `[sb3]` extra; importing stable-baselines3 imports torch).

SB3's same-step autoreset: a finished environment's row of `obs` is already its next episode's first
observation, and its info holds `terminal_observation`, `episode = {"r", "l", "t"}` (so `rollout/ep_rew_mean`
is logged without a `Monitor`). Every info holds `TimeLimit.truncated` (truncated and not terminated) and
the step's `metrics`. Seeds follow `memgym.envs.gym_adapter` (environment i gets seed + i, keys from
`seed_to_key`); `env_method("action_masks")` and `action_masks()` serve sb3-contrib's MaskablePPO.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from memgym.envs.gym_adapter import BatchedCore, check_actions, keys_from_seeds


class StepMetrics(Mapping):
    """One environment's metrics for one step, name -> float, read from the step's packed rows: a read-only
    dict view (1024 real dicts would add ~2 ms to every step of 1024 environments)."""

    __slots__ = ("_block", "_row", "_columns")

    def __init__(self, block: np.ndarray, row: int, columns: dict):
        self._block, self._row, self._columns = block, row, columns

    def __getitem__(self, name: str) -> float:
        return float(self._block[self._row, self._columns[name]])

    def __iter__(self):
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return repr(dict(self))


class MemgymSB3VecEnv(VecEnv):
    """`MemgymSB3VecEnv("KernelMapping-v0", num_envs=8, seed=0, **overrides)`; overrides go to
    `memgym.make`. `set_options({"params": {...}})` swaps the scenario at the next `reset()`."""

    def __init__(self, env_id: str = "KernelMapping-v0", num_envs: int = 8, seed: int | None = 0, **overrides):
        self.core = BatchedCore(env_id, num_envs, overrides)
        self.render_mode = None
        action_space, observation_space = self.core.single_spaces()
        super().__init__(self.core.num_envs, observation_space, action_space)
        self.seed(seed)
        self._actions = None
        self._mask = None
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, np.int64)
        self._t_start = time.time()
        self._metric_columns = {name: j for j, name in enumerate(self.core.metric_names)}

    @property
    def params(self):
        return self.core.params

    def reset(self) -> np.ndarray:
        options = self._options[0]
        if any(o != options for o in self._options):
            raise ValueError("MemgymSB3VecEnv runs one scenario for all environments; set the same options for all")
        self.core.apply_options(options)
        keys = None if self._seeds[0] is None else keys_from_seeds(self._seeds)
        rows = self.core.reset(keys)
        self._reset_seeds()
        self._reset_options()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        lay = self.core.layout
        self._mask = rows[:, lay.mask] > 0.5
        return rows[:, lay.features].copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = check_actions(actions, f"{self.num_envs} x {self.action_space}", self.core.nvec,
                                      (self.num_envs,))

    def step_wait(self):
        rows = self.core.step(self._actions)
        lay = self.core.layout
        rewards = rows[:, lay.reward].copy()
        terminated, truncated = rows[:, lay.terminated] > 0.5, rows[:, lay.truncated] > 0.5
        dones = terminated | truncated
        self._mask = rows[:, lay.mask] > 0.5
        self._returns += rewards
        self._lengths += 1
        metrics, columns = rows[:, lay.metrics], self._metric_columns
        infos = [{"metrics": StepMetrics(metrics, i, columns), "TimeLimit.truncated": t}
                 for i, t in enumerate((truncated & ~terminated).tolist())]
        if dones.any():
            elapsed = round(time.time() - self._t_start, 6)
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = rows[i, lay.final_features].copy()
                infos[i]["episode"] = {"r": float(self._returns[i]), "l": int(self._lengths[i]), "t": elapsed}
            self._returns[dones] = 0.0
            self._lengths[dones] = 0
        return rows[:, lay.features].copy(), rewards, dones, infos

    def action_masks(self) -> np.ndarray:
        """bool[num_envs, sum(nvec)] for the current observations."""
        if self._mask is None:
            raise RuntimeError("call reset() before action_masks()")
        return self._mask.copy()

    # -- the VecEnv plumbing: every environment shares one adapter, so attributes are the adapter's ----------
    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [int(indices)] if isinstance(indices, (int, np.integer)) else list(indices)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        idx = self._indices(indices)
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in idx]
        raise AttributeError(f"MemgymSB3VecEnv steps all environments in one JAX call; the only per-environment "
                             f"method is 'action_masks', not {method_name!r}")

    def get_attr(self, attr_name: str, indices=None) -> list:
        value = getattr(self, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        if sorted(self._indices(indices)) != list(range(self.num_envs)):
            raise ValueError("MemgymSB3VecEnv's environments share their attributes; set them for all at once")
        setattr(self, attr_name, value)

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def render(self, mode: str | None = None) -> None:
        return None

    def close(self) -> None:
        pass
