"""One Discrete action for a MultiDiscrete one: the index of the action tuple in row-major order (the last
dimension varies fastest, as `numpy.ravel_multi_index`), and the matching flat action mask.

The flat mask is the outer product of the per-dimension masks: a joint action is allowed when each of its
entries is. Memgym masks per dimension, so a joint action can still be infeasible; the environment then
projects it onto the nearest feasible one (`info["projected"]`), as it does for the native MultiDiscrete action.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from memgym.envs.core import JaxEnv, split_mask
from memgym.envs.registry import make


def native_env(env, params=None, **overrides) -> tuple[JaxEnv, object]:
    """(environment, params) behind a view: `env` an id (made with `overrides`) or a JaxEnv (its
    `default_params(**overrides)`); `params`, when given, replaces the defaults."""
    if isinstance(env, str):
        env, native = make(env, **overrides)
    else:
        native = env.default_params(**overrides)
    return env, native if params is None else params


def num_actions(nvec: Sequence[int]) -> int:
    """The number of joint actions, prod(nvec)."""
    return math.prod(int(n) for n in nvec)


def unflatten_action(action: jax.Array, nvec: Sequence[int]) -> jax.Array:
    """Flat index (int[...]) -> MultiDiscrete action (int32[..., len(nvec)])."""
    action = jnp.asarray(action, jnp.int32)
    return jnp.stack(jnp.unravel_index(action, tuple(nvec)), axis=-1).astype(jnp.int32)


def flatten_action(action: jax.Array, nvec: Sequence[int]) -> jax.Array:
    """MultiDiscrete action (int[..., len(nvec)]) -> flat index (int32[...]); the inverse of `unflatten_action`."""
    action = jnp.asarray(action, jnp.int32)
    flat = jnp.zeros(action.shape[:-1], jnp.int32)
    for i, n in enumerate(nvec):
        flat = flat * n + action[..., i]
    return flat


def flat_mask(mask: jax.Array, nvec: Sequence[int]) -> jax.Array:
    """Concatenated per-dimension mask (bool[..., sum(nvec)]) -> joint mask (bool[..., prod(nvec)])."""
    parts = split_mask(jnp.asarray(mask, bool), nvec)
    out = parts[0]
    for part in parts[1:]:
        out = (out[..., :, None] & part[..., None, :]).reshape(out.shape[:-1] + (-1,))
    return out
