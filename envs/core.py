"""The functional environment contract shared by every memgym environment (gymnax's API, Jumanji's typing).

    env = KernelMapping()                          # stateless object
    params = env.default_params(model="gpt3-175b")  # a pytree; vmap over it for many systems
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

- `obs` is `Observation(features: f32[D], action_mask: bool[sum(nvec)])`. Actions are `int32[len(nvec)]`
  (a MultiDiscrete space; one entry per decision); the mask is the per-dimension masks concatenated, the
  layout sb3-contrib's MaskablePPO expects.
- Autoreset is built in (same step): when an episode ends, `obs` and `state` are already the next episode's
  and `info["final_observation"]` holds the last observation of the finished one.
- `info["metrics"]` is a dict of scalars describing the system (iteration time, bytes, capacity use...);
  `info["projected"]` says whether the action was infeasible and replaced by the nearest feasible one.
- Numerically safe: parameters are validated when built (`memgym.sim.validate`), features are clipped to
  ±OBS_BOUND (NaN → 0) and the reward is guarded likewise (NaN → 0, ±inf → ±REWARD_BOUND);
  `info["nonfinite"]` flags a step whose raw reward was not finite (never, for validated parameters). An
  action of the wrong shape is a ValueError when the step is traced.
- A policy is any `policy(key, obs, state, params) -> action`, jittable and vmappable.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Generic, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np


class Observation(NamedTuple):
    features: jax.Array  # f32[D]
    action_mask: jax.Array  # bool[sum(nvec)]


Policy = Callable[[jax.Array, Observation, Any, Any], jax.Array]
P = TypeVar("P")  # an environment's params pytree
S = TypeVar("S")  # its state pytree
Info = dict[str, Any]  # "metrics" (dict of scalars), "projected" (bool); `step` adds the autoreset keys


def split_mask(mask, nvec):
    """The concatenated mask as a list of per-dimension masks."""
    out, start = [], 0
    for n in nvec:
        out.append(mask[..., start:start + n])
        start += n
    return out


def segment_index(nvec) -> np.ndarray:
    """i64[len(nvec), max(nvec)]: the column of bin j of dimension i in the concatenated mask, -1 past nvec[i]
    (gathering a concatenated vector with it pads the dimensions to one width)."""
    nvec = np.asarray(nvec, np.int64).reshape(-1)
    starts = np.concatenate([[0], np.cumsum(nvec)[:-1]])
    j = np.arange(nvec.max())
    return np.where(j[None, :] < nvec[:, None], starts[:, None] + j[None, :], -1)


OBS_BOUND = 10.0  # features are fractions and ratios to a baseline, clipped to ±OBS_BOUND


REWARD_BOUND = 1e6  # rewards are ratios to a baseline; a non-finite one is replaced (see the module docstring)


def guard_reward(reward):
    """(reward as a finite float32, whether it was not finite)."""
    r = jnp.asarray(reward, jnp.float32)
    return jnp.nan_to_num(r, nan=0.0, posinf=REWARD_BOUND, neginf=-REWARD_BOUND), ~jnp.isfinite(r)


def clip_features(feats):
    """Features as float32 within ±OBS_BOUND (NaN → 0, ±inf → the bound)."""
    b = OBS_BOUND
    return jnp.clip(jnp.nan_to_num(feats.astype(jnp.float32), nan=0.0, posinf=b, neginf=-b), -b, b)


def masked_random(env):
    """The uniform random policy over each action dimension's unmasked bins, for `env`: one uniform draw for
    all dimensions, the largest draw among a dimension's unmasked bins wins (one PRNG call per step, not one
    per dimension)."""

    def policy(key, obs, state, params):
        idx = segment_index(env.action_nvec(params))
        scores = jnp.where(obs.action_mask, jax.random.uniform(key, jnp.shape(obs.action_mask)), -1.0)
        return jnp.argmax(jnp.where(idx >= 0, scores[..., idx], -2.0), axis=-1).astype(jnp.int32)
    return policy


class JaxEnv(Generic[P, S]):
    """Base class, generic in the params type P and the state type S: subclasses implement `reset_env`,
    `step_env`, `action_nvec`, `feature_names` (or `observation_size` alone, for unnamed features),
    `default_params` and list their `metric_names`; `reset` and `step` add autoreset."""

    id: ClassVar[str] = ""
    metric_names: ClassVar[tuple[str, ...]] = ()

    # -- to implement -----------------------------------------------------------------------------------
    def default_params(self, **overrides: Any) -> P:
        raise NotImplementedError

    def reset_env(self, key: jax.Array, params: P) -> tuple[Observation, S]:
        raise NotImplementedError

    def step_env(self, key: jax.Array, state: S, action: jax.Array, params: P
                 ) -> tuple[Observation, S, jax.Array, jax.Array, jax.Array, Info]:
        """-> (obs, state, reward, terminated, truncated, info) without autoreset; info has 'metrics' and
        'projected'."""
        raise NotImplementedError

    def action_nvec(self, params: P) -> tuple[int, ...]:
        raise NotImplementedError

    def observation_size(self, params: P) -> int:
        """The number of features: that of `feature_names` (a subclass implements one of the two)."""
        return len(self.feature_names(params))

    def observation_bounds(self, params: P) -> tuple[float, float]:
        """Bounds every feature lies in (the gymnasium Box uses them)."""
        return -float("inf"), float("inf")

    def feature_names(self, params: P) -> tuple[str, ...]:
        return tuple(f"f{i}" for i in range(self.observation_size(params)))

    # -- the contract -----------------------------------------------------------------------------------
    def reset(self, key: jax.Array, params: P) -> tuple[Observation, S]:
        return self.reset_env(key, params)

    def step(self, key: jax.Array, state: S, action: jax.Array, params: P
             ) -> tuple[Observation, S, jax.Array, jax.Array, jax.Array, Info]:
        return self._step(key, state, action, params, lazy_reset=False)

    def step_single(self, key: jax.Array, state: S, action: jax.Array, params: P
                    ) -> tuple[Observation, S, jax.Array, jax.Array, jax.Array, Info]:
        """`step` for one environment that is not vmapped: the same values, the autoreset's `reset_env` under
        `lax.cond`, so steps that end no episode skip its work (under vmap a cond runs both branches: there
        `step`'s select is as cheap)."""
        return self._step(key, state, action, params, lazy_reset=True)

    def step_many(self, key: jax.Array, state: S, action: jax.Array, params: P
                  ) -> tuple[Observation, S, jax.Array, jax.Array, jax.Array, Info]:
        """`vmap(step)` over a leading axis of keys, states and actions, with `params` shared: the same values
        (to float rounding: XLA may fuse the two programs differently), the autoreset's `reset_env` only when an
        episode ended somewhere in the batch (`lax.cond` on any of them), so a batch of episodes that end
        together pays for it once per episode, not every step. The gymnasium `VectorEnv` steps with it. Under
        an outer vmap (over seeds, say) the cond runs both branches again, as `step`'s select does."""
        parts = jax.vmap(self._step_no_reset, in_axes=(0, 0, 0, None))(key, state, action, params)
        key_reset, obs_st, state_st, reward, terminated, truncated, info = parts
        done = terminated | truncated
        strong = lambda x: jnp.asarray(x, jnp.result_type(x))  # noqa: E731  (both branches: one exact type)

        def with_reset():
            fresh = jax.vmap(self.reset_env, in_axes=(0, None))(key_reset, params)
            pick = lambda a, b: strong(jnp.where(done.reshape(done.shape + (1,) * (b.ndim - 1)), a, b))  # noqa
            return jax.tree_util.tree_map(pick, fresh, (obs_st, state_st))
        obs, state = jax.lax.cond(done.any(), with_reset,
                                  lambda: jax.tree_util.tree_map(strong, (obs_st, state_st)))
        return obs, state, reward, terminated, truncated, _autoreset_info(info, obs_st, terminated, truncated)

    def _step_no_reset(self, key, state, action, params):
        """The checked step before the autoreset: (reset key, obs, state, guarded reward, terminated,
        truncated, info with `nonfinite`)."""
        nvec = tuple(self.action_nvec(params))
        if jnp.shape(action) != (len(nvec),):
            raise ValueError(f"{self.id}: an action is int32[{len(nvec)}], one entry per dimension of "
                             f"MultiDiscrete({list(nvec)}); got shape {jnp.shape(action)} (vmap the step to "
                             f"act in many environments)")
        key_step, key_reset = jax.random.split(key)
        action = jnp.asarray(action, jnp.int32)
        obs_st, state_st, reward, terminated, truncated, info = self.step_env(key_step, state, action, params)
        reward, nonfinite = guard_reward(reward)
        return key_reset, obs_st, state_st, reward, terminated, truncated, dict(info, nonfinite=nonfinite)

    def _step(self, key, state, action, params, lazy_reset):
        key_reset, obs_st, state_st, reward, terminated, truncated, info = self._step_no_reset(key, state, action,
                                                                                               params)
        done = terminated | truncated
        if lazy_reset:
            like = lambda r, s: jnp.asarray(r, s.dtype)  # noqa: E731  (the branches' types must agree)
            obs, state = jax.lax.cond(
                done, lambda: jax.tree_util.tree_map(like, self.reset_env(key_reset, params), (obs_st, state_st)),
                lambda: (obs_st, state_st))
        else:
            obs_re, state_re = self.reset_env(key_reset, params)
            pick = lambda a, b: jax.lax.select(done, a, b)  # noqa: E731
            state = jax.tree_util.tree_map(pick, state_re, state_st)
            obs = jax.tree_util.tree_map(pick, obs_re, obs_st)
        return obs, state, reward, terminated, truncated, _autoreset_info(info, obs_st, terminated, truncated)

    @property
    def name(self) -> str:
        """The registered id (gymnax and Jumanji name environments by this attribute)."""
        return self.id

    def max_steps_in_episode(self, params: P) -> int:
        """Steps by which every episode has ended (terminated or truncated): gymnax's name for the cap."""
        return int(params.max_steps)

    def __repr__(self):
        return f"{type(self).__name__}(id={self.id!r})"


def _autoreset_info(info, final_observation, terminated, truncated):
    return dict(info, final_observation=final_observation, terminated=terminated, truncated=truncated)


def rollout(env: JaxEnv, policy: Policy, params, key, n_steps: int):
    """Run `n_steps` steps of `policy` inside `lax.scan` (jit it; vmap it over keys or params).
    Returns (rewards f[T], terminated, truncated, metrics dict of f[T], actions i[T, A])."""
    key, k0 = jax.random.split(key)
    obs, state = env.reset(k0, params)

    def body(carry, k):
        obs, state = carry
        ka, ks = jax.random.split(k)
        action = policy(ka, obs, state, params)
        obs, state, r, term, trunc, info = env.step(ks, state, action, params)
        return (obs, state), (r, term, trunc, info["metrics"], action)

    _, out = jax.lax.scan(body, (obs, state), jax.random.split(key, n_steps))
    return out
