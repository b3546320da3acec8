"""A memgym environment as a Jumanji `Environment`, so Jumanji's agents and Stoix (through its Jumanji
wrapper, `observation_attribute="features"`) read the action mask instead of ignoring it.

    from memgym.compat.jumanji import JumanjiEnv
    env = JumanjiEnv("KernelMapping-v0", bins=4)       # one scenario: Jumanji envs take no params argument
    state, timestep = env.reset(key)
    state, timestep = env.step(state, action)          # action: int32 in [0, prod(nvec))

- Observation: `JumanjiObservation(features f32[D], action_mask bool[prod(nvec)])`.
- Action: one `DiscreteArray(prod(nvec))`, the MultiDiscrete action flattened row-major, and the mask the outer
  product of the per-dimension masks (`memgym.compat.flat`; the same choice as the gymnax view, because
  Jumanji's and Stoix's discrete heads mask a single categorical).
- Episodes as Jumanji's: no autoreset in `step` (wrap it in `jumanji.wrappers.AutoResetWrapper` to train);
  the last step has `step_type` LAST with discount 0 if the episode terminated, 1 if it was truncated.
- Randomness: `reset(key)` resets the native environment with `split(key)[0]` and keeps `split(key)[1]` as
  `state.key`; each step splits `state.key` the same way, `(the native step's key, next state.key)`, which is
  how the native `step(key, ...)` splits its key: from one state and key, both make the same transition.
- `extras`: the native `info["metrics"]` and `info["projected"]` (zeros at reset, so every timestep has the
  same structure, which Jumanji's auto-reset wrappers need).
"""

from __future__ import annotations

from functools import cached_property, partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jumanji import specs
from jumanji.env import Environment
from jumanji.types import StepType, TimeStep

from memgym.compat import flat
from memgym.envs.core import JaxEnv, Observation, guard_reward
from memgym.sim.specs import pytree_dataclass


class JumanjiObservation(NamedTuple):
    features: jax.Array  # f32[D]
    action_mask: jax.Array  # bool[prod(nvec)]


@pytree_dataclass
class JumanjiState:
    env_state: Any  # the native state
    key: jax.Array  # Jumanji's `StateProtocol`: the state carries the key


class JumanjiEnv(Environment):
    """Any memgym environment, one scenario, behind Jumanji's `Environment` API (see the module docstring)."""

    def __init__(self, env: str | JaxEnv, params: Any = None, **overrides: Any):
        self.env, self.params = flat.native_env(env, params, **overrides)
        self.nvec = tuple(int(n) for n in self.env.action_nvec(self.params))
        super().__init__()

    @property
    def name(self) -> str:
        return self.env.name

    # jitted, as gymnax's methods are: Jumanji's tools call `reset` eagerly, and op by op a memgym reset is slow
    @partial(jax.jit, static_argnums=0)
    def reset(self, key: jax.Array) -> tuple[JumanjiState, TimeStep]:
        k_env, key = jax.random.split(key)
        obs, env_state = self.env.reset(k_env, self.params)
        extras = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), self._extras_shape)
        ts = TimeStep(step_type=StepType.FIRST, reward=jnp.float32(0.0), discount=jnp.float32(1.0),
                      observation=self._observation(obs), extras=extras)
        return JumanjiState(env_state, key), ts

    @partial(jax.jit, static_argnums=0)
    def step(self, state: JumanjiState, action: jax.Array) -> tuple[JumanjiState, TimeStep]:
        k_env, key = jax.random.split(state.key)
        obs, env_state, reward, terminated, truncated, info = self.env.step_env(
            k_env, state.env_state, flat.unflatten_action(action, self.nvec), self.params)
        ts = TimeStep(step_type=jnp.where(terminated | truncated, StepType.LAST, StepType.MID),
                      reward=guard_reward(reward)[0],
                      discount=jnp.where(terminated, 0.0, 1.0).astype(jnp.float32),
                      observation=self._observation(obs), extras=self._extras(info))
        return JumanjiState(env_state, key), ts

    # -- specs ------------------------------------------------------------------------------------------
    @cached_property
    def observation_spec(self) -> specs.Spec:
        low, high = self.env.observation_bounds(self.params)
        n_feat = self.env.observation_size(self.params)
        return specs.Spec(
            JumanjiObservation, "ObservationSpec",
            features=specs.BoundedArray((n_feat,), jnp.float32, low, high, "features"),
            action_mask=specs.BoundedArray((flat.num_actions(self.nvec),), bool, False, True, "action_mask"))

    @cached_property
    def action_spec(self) -> specs.DiscreteArray:
        return specs.DiscreteArray(flat.num_actions(self.nvec), jnp.int32, "action")

    @cached_property
    def reward_spec(self) -> specs.Array:
        return specs.Array((), jnp.float32, "reward")

    @cached_property
    def discount_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray((), jnp.float32, 0.0, 1.0, "discount")

    # -- helpers ----------------------------------------------------------------------------------------
    def _observation(self, obs: Observation) -> JumanjiObservation:
        return JumanjiObservation(obs.features.astype(jnp.float32), flat.flat_mask(obs.action_mask, self.nvec))

    @staticmethod
    def _extras(info: dict) -> dict:
        return {"metrics": info["metrics"], "projected": info["projected"]}

    @cached_property
    def _extras_shape(self) -> dict:
        """The structure of `extras`, from tracing one step (no computation)."""
        def one_step(key):
            _, env_state = self.env.reset(key, self.params)
            action = jnp.zeros(len(self.nvec), jnp.int32)
            return self._extras(self.env.step_env(key, env_state, action, self.params)[5])

        return jax.eval_shape(one_step, jax.random.PRNGKey(0))

    def __repr__(self) -> str:
        return f"JumanjiEnv({self.env.id!r})"


def make(env_id: str, **overrides: Any) -> JumanjiEnv:
    """`jumanji.make`'s form: the view of `env_id` with `default_params(**overrides)`."""
    return JumanjiEnv(env_id, **overrides)


__all__ = ["JumanjiEnv", "JumanjiObservation", "JumanjiState", "make"]
