"""A memgym environment as a gymnax `Environment`, for PureJaxRL-style scripts, rejax, Stoix and gymnax's
own wrappers (`LogWrapper`, `FlattenObservationWrapper`, `GymnaxToGymWrapper`...).

    from memgym.compat.gymnax import GymnaxEnv
    env = GymnaxEnv("KernelMapping-v0", bins=4)        # overrides go to `default_params`
    params = env.default_params                         # a property, as in gymnax
    obs, state = env.reset(key, params)                 # obs: f32[features + sum(nvec)]
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

What it changes, and why:
- Action: one `Discrete(prod(nvec))` (`memgym.compat.flat`: row-major index of the MultiDiscrete tuple), since
  the trainers built on gymnax handle `Discrete` and `Box` only (gymnax has no MultiDiscrete space).
  KernelMapping-v0's default is 16³ = 4096 actions. `env.action_mask(obs)` gives the flat mask (the outer
  product of the per-dimension masks) for agents that mask logits.
- Observation: one float32 vector, the features and then (with `include_mask`, the default) the
  per-dimension action mask as 0/1, because gymnax trainers feed a flat array to their networks and drop
  anything else; the mask tells the network which bins are infeasible.
- Step arity: gymnax 1.0.1's `Environment.step` returns six values, `obs, state, reward, terminated,
  truncated, info`, and its wrappers unpack six: that is the default (`step_values=6`). PureJaxRL, rejax 0.1.3
  and Stoix unpack the five values of gymnax < 1.0, `obs, state, reward, done, info`: pass `step_values=5`
  (done = terminated | truncated; `info["terminated"]` and `info["truncated"]` say which).
- Autoreset as gymnax does it: when an episode ends, `obs` and `state` already belong to the next episode and
  `info["final_observation"]` holds the flat last observation of the finished one. The native step does
  exactly this on the same keys, so rewards and ends are the native environment's.
- Params: `GymnaxParams(env_params, max_steps_in_episode)`, because gymnax code reads
  `params.max_steps_in_episode` (rejax's evaluation loop does); `reset` and `step` also take the native
  params that `memgym.make` returns.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import environment, spaces

from memgym.compat import flat
from memgym.envs.core import JaxEnv, Observation
from memgym.envs.registry import ENVIRONMENTS
from memgym.sim.specs import pytree_dataclass


@pytree_dataclass(static=("max_steps_in_episode",))
class GymnaxParams:
    """The native parameters and the episode cap under gymnax's name (static, like the native `max_steps`)."""

    env_params: Any
    max_steps_in_episode: int


class GymnaxEnv(environment.Environment):
    """Any memgym environment behind gymnax's `Environment` API (see the module docstring)."""

    def __init__(self, env: str | JaxEnv, params: Any = None, *, step_values: Literal[5, 6] = 6,
                 include_mask: bool = True, **overrides: Any):
        if step_values not in (5, 6):
            raise ValueError(f"step_values must be 5 or 6, got {step_values!r}")
        self.env, self._params = flat.native_env(env, params, **overrides)
        self.step_values = step_values
        self.include_mask = include_mask

    # -- gymnax attributes ------------------------------------------------------------------------------
    @property
    def default_params(self) -> GymnaxParams:
        return self.wrap_params(self._params)

    def wrap_params(self, env_params: Any) -> GymnaxParams:
        """Native parameters (e.g. from `memgym.make`) as gymnax parameters."""
        return GymnaxParams(env_params, self.env.max_steps_in_episode(env_params))

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def num_actions(self) -> int:
        return flat.num_actions(self.env.action_nvec(self._params))

    def action_space(self, params: GymnaxParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(flat.num_actions(self._nvec(params)))

    def observation_space(self, params: GymnaxParams | None = None) -> spaces.Box:
        native = self._native(params)
        low, high = self.env.observation_bounds(native)
        n_feat = self.env.observation_size(native)
        n_mask = sum(self._nvec(params)) if self.include_mask else 0
        lows = np.concatenate([np.full(n_feat, low, np.float32), np.zeros(n_mask, np.float32)])
        highs = np.concatenate([np.full(n_feat, high, np.float32), np.ones(n_mask, np.float32)])
        return spaces.Box(lows, highs, (n_feat + n_mask,), jnp.float32)

    # -- the API ----------------------------------------------------------------------------------------
    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, Any]:
        obs, state = self.env.reset(key, self._native(params))
        return self.flat_obs(obs), state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: Any, action: jax.Array | int, params: Any = None) -> tuple:
        native = self._native(params)
        action = flat.unflatten_action(action, self.env.action_nvec(native))
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, native)
        info = dict(info, final_observation=self.flat_obs(info["final_observation"]))
        if self.step_values == 5:
            return self.flat_obs(obs), state, reward, terminated | truncated, info
        return self.flat_obs(obs), state, reward, terminated, truncated, info

    # -- observation and mask ---------------------------------------------------------------------------
    def flat_obs(self, obs: Observation) -> jax.Array:
        """The native observation as one float32 vector: the features, then the 0/1 mask if included."""
        if not self.include_mask:
            return obs.features.astype(jnp.float32)
        return jnp.concatenate([obs.features.astype(jnp.float32), obs.action_mask.astype(jnp.float32)], axis=-1)

    def action_mask(self, obs: jax.Array, params: Any = None) -> jax.Array:
        """The flat action mask, bool[..., num_actions], read from a flat observation (needs `include_mask`)."""
        if not self.include_mask:
            raise ValueError("action_mask needs the mask in the observation: build the view with include_mask=True")
        nvec = self._nvec(params)
        return flat.flat_mask(obs[..., obs.shape[-1] - sum(nvec):] > 0.5, nvec)

    # -- helpers ----------------------------------------------------------------------------------------
    def _native(self, params: Any) -> Any:
        if params is None:
            return self._params
        return params.env_params if isinstance(params, GymnaxParams) else params

    def _nvec(self, params: Any) -> tuple[int, ...]:
        return tuple(int(n) for n in self.env.action_nvec(self._native(params)))

    def __repr__(self) -> str:
        return f"GymnaxEnv({self.env.id!r}, step_values={self.step_values}, include_mask={self.include_mask})"


def make(env_id: str, *, step_values: Literal[5, 6] = 6, include_mask: bool = True,
         **overrides: Any) -> tuple[GymnaxEnv, GymnaxParams]:
    """`gymnax.make`'s form: the view of `env_id` and its default parameters."""
    env = GymnaxEnv(env_id, step_values=step_values, include_mask=include_mask, **overrides)
    return env, env.default_params


def register() -> None:
    """Register every memgym id with gymnax (idempotent), so `gymnax.make("KernelMapping-v0", bins=4)` and
    string ids in rejax (`PPO.create(env="KernelMapping-v0", env_params={"step_values": 5})`) work. The ids
    carry no `memgym/` namespace because rejax reads a `prefix/` as another library's name."""
    import gymnax

    for env_id in ENVIRONMENTS:
        if env_id not in gymnax.registered_envs:
            gymnax.register(env_id, partial(GymnaxEnv, env_id))


__all__ = ["GymnaxEnv", "GymnaxParams", "make", "register"]
