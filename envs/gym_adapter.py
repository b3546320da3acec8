"""Gymnasium front-ends over the functional JAX core: `MemgymEnv` (one environment) and `MemgymVectorEnv`
(num_envs environments in one `jit(vmap(step))` call, same-step autoreset).

Seeds and keys. A gymnasium seed `s` becomes the JAX key `seed_to_key(s)`: `jax.random.PRNGKey` of the first
uint32 drawn from `gymnasium.utils.seeding.np_random(s)` (the generator `Env.reset(seed=s)` installs as
`np_random`). From that key every front-end runs the same chain as this plain core loop:

    key = seed_to_key(s)
    key, k = jax.random.split(key); obs, state = env.reset(k, params)
    every step: key, k = jax.random.split(key); obs, state, ... = env.step(k, state, action, params)

Sub-environment i of a vector environment reset with seed s uses seed s + i (gymnasium's `SyncVectorEnv`
and SB3's `DummyVecEnv` do the same). `MemgymEnv.reset()` without a seed continues the chain; right after
an episode end it starts the episode the core's autoreset already drew, so one `MemgymEnv` follows
sub-environment 0 of a vector environment step for step.

Each step is one jitted call and one device-to-host copy: the call packs everything the host needs into one
float32 row per environment (see `Layout`). The jitted functions close over the scenario's parameters and
are cached per (environment, overrides) (`scenario`), so instances of one scenario share a compilation and
`reset(options={"params": ...})` compiles once per new scenario.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from memgym.envs import registry, render
from memgym.envs.core import JaxEnv, segment_index


# ---- seeds -> keys --------------------------------------------------------------------------------------


def key_from_rng(rng: np.random.Generator) -> jax.Array:
    """A JAX key from the next uint32 of a numpy Generator."""
    return jax.random.PRNGKey(rng.integers(0, 2**32, dtype=np.uint32))


def seed_to_key(seed: int) -> jax.Array:
    """The JAX key behind gymnasium seed `seed` (see the module docstring)."""
    return key_from_rng(seeding.np_random(seed)[0])


_keys_of_draws = jax.jit(jax.vmap(jax.random.PRNGKey))


def keys_from_seeds(seeds) -> jax.Array:
    """Stacked `seed_to_key(s)` for each seed, u32[len(seeds), 2]."""
    draws = [seeding.np_random(int(s))[0].integers(0, 2**32, dtype=np.uint32) for s in seeds]
    return _keys_of_draws(np.asarray(draws, np.uint32))


# ---- random masked actions on the host -------------------------------------------------------------------


_segments = functools.lru_cache(maxsize=64)(segment_index)


def random_masked_action(rng: np.random.Generator, mask, nvec) -> np.ndarray:
    """Uniformly random int64 actions [..., len(nvec)] over each dimension's allowed bins, from a concatenated
    mask bool[..., sum(nvec)] (an environment's `action_masks()` or `info["action_mask"]`): one uniform draw for
    all dimensions, the largest draw among a dimension's allowed bins wins. A dimension with no allowed bin (never
    the case for memgym's masks) gets bin 0."""
    mask = np.asarray(mask, bool)
    nvec = tuple(int(x) for x in np.asarray(nvec).reshape(-1))
    if mask.shape[-1:] != (sum(nvec),):
        raise ValueError(f"mask must have sum(nvec) = {sum(nvec)} entries in its last axis, got shape {mask.shape}")
    scores = np.where(mask, rng.random(mask.shape), -1.0)
    if len(set(nvec)) == 1:
        return scores.reshape(*mask.shape[:-1], len(nvec), nvec[0]).argmax(-1)
    idx = _segments(nvec)
    return np.where(idx >= 0, scores[..., idx], -2.0).argmax(-1)


# ---- the jitted core and its packed host row ------------------------------------------------------------


class Layout:
    """Column slices of the packed float32 row one step sends to the host: the observation (features, mask),
    the pre-reset observation `final_observation` (features, mask), reward, terminated, truncated,
    projected, then the metrics in `env.metric_names` order. Reset rows hold the first two only."""

    def __init__(self, obs_size: int, mask_size: int, n_metrics: int):
        d, a = obs_size, mask_size
        self.features = slice(0, d)
        self.mask = slice(d, d + a)
        self.final_features = slice(d + a, 2 * d + a)
        self.final_mask = slice(2 * d + a, 2 * d + 2 * a)
        self.reward, self.terminated, self.truncated, self.projected = range(2 * d + 2 * a, 2 * d + 2 * a + 4)
        self.metrics = slice(2 * d + 2 * a + 4, 2 * d + 2 * a + 4 + n_metrics)


def _pack_obs(obs):
    return jnp.concatenate([obs.features.astype(jnp.float32), obs.action_mask.astype(jnp.float32)])


def _freeze(value):
    return tuple(_freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


class Built(NamedTuple):
    """One environment with its params and its jitted kernels: vmapped over environments, and unbatched for
    one environment (`MemgymEnv`), compiled ahead of time at its first use (`single`)."""

    env: JaxEnv
    params: Any
    reset: Callable  # keys u32[n, 2] -> (keys, states, rows f32[n, W])
    step: Callable  # (keys, states, actions i32[n, A]) -> (keys, states, rows f32[n, W])
    reset_single: Callable  # key u32[2] -> (key, state, row f32[W])
    step_single: Callable  # (key, state, action i32[A]) -> (key, state, row f32[W])
    compiled: dict  # "reset" / "step" -> the AOT-compiled unbatched kernels (`single`)

    def single(self, name: str, *args):
        """The unbatched kernel `name` ("reset" or "step") compiled ahead of time for `args`' shapes, once per
        scenario: a compiled call skips jit's dispatch (signature check, cache lookup) on every step."""
        fn = self.compiled.get(name)
        if fn is None:
            fn = self.compiled[name] = jax.jit(getattr(self, name + "_single")).lower(*args).compile()
        return fn


def scenario(env_id: str, overrides: dict) -> Built:
    """`memgym.make(env_id, **overrides)` and its kernels, cached: instances and `reset` options with equal
    overrides (plain values: numbers, strings, tuples) share one compilation per batch size."""
    return _scenario(registry.canonical_id(env_id), tuple(sorted((k, _freeze(v)) for k, v in overrides.items())))


@functools.lru_cache(maxsize=32)
def _scenario(env_id: str, frozen: tuple) -> Built:
    env, params = registry.make(env_id, **dict(frozen))

    # params are closed over, not passed: XLA folds them, ~30 % faster steps and faster compiles
    def reset(key):
        key, k = jax.random.split(key)
        obs, state = env.reset(k, params)
        return key, state, _pack_obs(obs)

    def row(obs, reward, terminated, truncated, info):
        scalars = [reward, terminated, truncated, info["projected"]]
        scalars += [info["metrics"][name] for name in env.metric_names]
        scalars = jnp.stack([jnp.asarray(x, jnp.float32) for x in scalars])
        return jnp.concatenate([_pack_obs(obs), _pack_obs(info["final_observation"]), scalars])

    def step(keys, states, actions):  # vmap(step)'s values; the autoreset's reset only when an episode ended
        keys, ks = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
        obs, states, reward, terminated, truncated, info = env.step_many(ks, states, actions, params)
        return keys, states, jax.vmap(row)(obs, reward, terminated, truncated, info)

    def step_single(key, state, action):  # the same values; the autoreset's reset only where an episode ends
        key, k = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = env.step_single(k, state, action, params)
        return key, state, row(obs, reward, terminated, truncated, info)

    return Built(env, params, jax.jit(jax.vmap(reset)), jax.jit(step), reset, step_single, {})


def check_actions(actions, space, nvec: np.ndarray, batch_shape: tuple) -> np.ndarray:
    """int32 actions, or a ValueError naming the action space (wrong shape, non-integers, out of range)."""
    a = np.asarray(actions)
    shape = (*batch_shape, len(nvec))
    if a.shape != shape or a.dtype.kind not in "iu" or (a < 0).any() or (a >= nvec).any():
        raise ValueError(f"invalid action for action space {space}: expected integers of shape {shape} with "
                         f"0 <= action[..., i] < {nvec.tolist()}[i]; got dtype {a.dtype}, shape {a.shape}: "
                         f"{np.array2string(a, threshold=12)}")
    return a.astype(np.int32)


class BatchedCore:
    """num_envs copies of one JAX environment (one params), stepped by one jitted call; numpy out."""

    def __init__(self, env_id: str, num_envs: int, overrides: dict):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.env_id = registry.canonical_id(env_id)
        self.overrides = dict(overrides)
        self.scenario = scenario(self.env_id, self.overrides)
        self.num_envs = int(num_envs)
        self.nvec = np.asarray(self.env.action_nvec(self.params), np.int64)
        self.obs_size = int(self.env.observation_size(self.params))
        self.metric_names = tuple(self.env.metric_names)
        self.layout = Layout(self.obs_size, int(self.nvec.sum()), len(self.metric_names))
        self.keys = self.states = None

    @property
    def env(self):
        return self.scenario.env

    @property
    def params(self):
        return self.scenario.params

    def single_spaces(self):
        low, high = self.env.observation_bounds(self.params)
        return (spaces.MultiDiscrete(self.nvec), spaces.Box(low, high, (self.obs_size,), np.float32))

    def apply_options(self, options) -> bool:
        """Swap scenario parameters from `options={"params": {...}}` (merged into the constructor's
        overrides and kept for later resets); True when they changed."""
        if not options:
            return False
        unknown = set(options) - {"params"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; supported: 'params' (a dict of "
                             f"{self.env_id} default_params overrides)")
        merged = {**self.overrides, **options["params"]}
        new = scenario(self.env_id, merged)
        if (tuple(new.env.action_nvec(new.params)) != tuple(self.nvec.tolist())
                or new.env.observation_size(new.params) != self.obs_size):
            raise ValueError(f"options['params'] {options['params']} change the action or observation space "
                             f"of {self.env_id}; make a new environment instead")
        self.scenario, self.overrides = new, merged
        return True

    def reset(self, keys=None) -> np.ndarray:
        """Start new episodes from `keys` (u32[n, 2]) or, if None, from the next keys of each chain."""
        if keys is not None:
            self.keys = keys
        self.keys, self.states, rows = self.scenario.reset(self.keys)
        return jax.device_get(rows)

    def step(self, actions: np.ndarray) -> np.ndarray:
        """One step of every environment from already checked int32 actions [n, len(nvec)]."""
        if self.states is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        self.keys, self.states, rows = self.scenario.step(self.keys, self.states, actions)
        return jax.device_get(rows)  # the one device-to-host copy of the step


class SingleCore(BatchedCore):
    """One environment: the unbatched kernels, compiled ahead of time; rows f32[W] out."""

    def __init__(self, env_id: str, overrides: dict):
        super().__init__(env_id, 1, overrides)

    def reset(self, key=None) -> np.ndarray:
        """Start a new episode from `key` (u32[2]) or, if None, from the next key of the chain."""
        if key is not None:
            self.keys = jnp.asarray(key)
        self.keys, self.states, row = self.scenario.single("reset", self.keys)(self.keys)
        return jax.device_get(row)

    def step(self, action: np.ndarray) -> np.ndarray:
        """One step from an already checked int32 action [len(nvec)]."""
        if self.states is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        fn = self.scenario.single("step", self.keys, self.states, action)
        self.keys, self.states, row = fn(self.keys, self.states, action)
        return jax.device_get(row)  # the one device-to-host copy of the step


# ---- gymnasium.Env ---------------------------------------------------------------------------------------


class MemgymEnv(gymnasium.Env):
    """One memgym environment behind gymnasium's API: numpy in and out, `action_masks()` for MaskablePPO.

    `MemgymEnv("KernelMapping-v0", **overrides)` uses `memgym.make(env_id, **overrides)`. It does not reset
    itself: a terminal step returns the episode's last observation and the next `reset()` starts the new
    episode. info: `metrics` (floats), `action_mask` (of the returned observation), `projected`.

    `render_mode`: None, "ansi" (`render()` returns a text view of the last step: memory use per tier, the
    chosen shares, times, the other metrics and the observation's named features) or "rgb_array" (the same
    as a uint8[H, W, 3] image; `memgym.envs.render`). Behind gymnasium's wrappers, reach the masks with
    `env.get_wrapper_attr("action_masks")()`."""

    metadata = {"render_modes": list(render.RENDER_MODES), "render_fps": render.RENDER_FPS}

    def __init__(self, env_id: str = "KernelMapping-v0", render_mode: str | None = None, **overrides):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        self.render_mode = render_mode
        self.core = SingleCore(env_id, overrides)
        self.action_space, self.observation_space = self.core.single_spaces()
        self._mask = None  # mask of the current observation; None before the first reset
        self._next_row = None  # the autoreset row of a finished episode, started by the next reset()
        self._view = None  # what render() draws: the last reset's or step's observation and metrics

    @property
    def params(self):
        return self.core.params

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        swapped = self.core.apply_options(options)
        if seed is not None or self.core.keys is None:
            row = self.core.reset(key_from_rng(self.np_random))
        elif self._next_row is not None and not swapped:
            row = self._next_row
        else:
            row = self.core.reset()
        self._next_row = None
        lay = self.core.layout
        self._mask = row[lay.mask] > 0.5
        self._view = self._new_view(row[lay.features], step=0, reward=None, metrics=None)
        return row[lay.features].copy(), {"action_mask": self._mask.copy()}

    def _new_view(self, features, step, reward, metrics) -> render.View:
        env, params = self.core.env, self.core.params
        max_steps = getattr(params, "max_steps", None)
        return render.View(env_id=self.core.env_id, step=step, max_steps=max_steps, reward=reward,
                           feature_names=tuple(env.feature_names(params)), features=np.array(features),
                           metric_names=self.core.metric_names, metrics=None if metrics is None else np.array(metrics))

    def step(self, action):
        if self._mask is None or self._next_row is not None:
            raise gymnasium.error.ResetNeeded("call reset() before step() and after an episode ends")
        action = check_actions(action, self.action_space, self.core.nvec, ())
        row = self.core.step(action)
        lay = self.core.layout
        terminated, truncated = bool(row[lay.terminated]), bool(row[lay.truncated])
        if terminated or truncated:
            self._next_row = row
        self._mask = row[lay.final_mask] > 0.5
        info = {"metrics": dict(zip(self.core.metric_names, row[lay.metrics].tolist())),
                "action_mask": self._mask.copy(), "projected": bool(row[lay.projected])}
        self._view = self._new_view(row[lay.final_features], step=self._view.step + 1,
                                    reward=float(row[lay.reward]), metrics=row[lay.metrics])
        return row[lay.final_features].copy(), float(row[lay.reward]), terminated, truncated, info

    def render(self):
        """The last reset's or step's frame in `render_mode`: a str ("ansi"), uint8[H, W, 3] ("rgb_array"),
        or None (no render_mode; gymnasium warns)."""
        if self.render_mode is None:
            gymnasium.logger.warn(f"{type(self).__name__}.render() without a render_mode: make the environment "
                                  f"with render_mode in {self.metadata['render_modes']}")
            return None
        if self._view is None:
            raise gymnasium.error.ResetNeeded("call reset() before render()")
        return render.ansi(self._view) if self.render_mode == "ansi" else render.rgb_array(self._view)

    def action_masks(self) -> np.ndarray:
        """bool[sum(nvec)]: the allowed bins of each action dimension for the current observation."""
        if self._mask is None:
            raise gymnasium.error.ResetNeeded("call reset() before action_masks()")
        return self._mask.copy()


# ---- gymnasium.vector.VectorEnv --------------------------------------------------------------------------


def _masked_metrics(names, values: np.ndarray, present: np.ndarray) -> dict:
    """Metrics laid out as gymnasium's `VectorEnv._add_info` lays out per-env float infos (one masked float64
    copy of all metrics, each name a contiguous column of it)."""
    columns = np.where(present[:, None], values, 0.0).astype(np.float64).T.copy()
    out = {}
    for name, column in zip(names, columns):
        out[name] = column
        out[f"_{name}"] = present.copy()
    return out


class MemgymVectorEnv(gymnasium.vector.VectorEnv):
    """num_envs memgym environments in one jitted call, with gymnasium's SAME_STEP autoreset: a finished
    sub-environment's row already holds its next episode's first observation, and `info["final_obs"]` /
    `info["final_info"]` (masked by `_final_obs` / `_final_info`) hold the finished episode's last ones, laid
    out exactly as `SyncVectorEnv(..., autoreset_mode=SAME_STEP)` over `MemgymEnv` lays them out."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env_id: str = "KernelMapping-v0", num_envs: int = 1, max_episode_steps: int | None = None,
                 **overrides):
        self.core = BatchedCore(env_id, num_envs, overrides)
        # gymnasium's make_vec passes the spec's max_episode_steps (the default episode length); episodes end
        # where the environment ends them (params.max_steps), so any other value is an error, not a silent cut
        steps = getattr(self.core.params, "max_steps", None)
        if max_episode_steps not in (None, -1, steps, registry.default_max_steps(env_id)):
            raise ValueError(f"max_episode_steps={max_episode_steps}: {self.core.env_id}'s episodes last "
                             f"max_steps={steps} steps; pass max_steps={max_episode_steps} instead")
        self.num_envs = self.core.num_envs
        self.render_mode = None
        self.single_action_space, self.single_observation_space = self.core.single_spaces()
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._mask = None

    @property
    def params(self):
        return self.core.params

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        n = self.num_envs
        if isinstance(seed, (list, tuple, np.ndarray)):
            if len(seed) != n or any(s is None for s in seed):
                raise ValueError(f"seed must be an int or a list of {n} ints, got {seed!r}")
            seeds = list(seed)
        else:
            seeds = None if seed is None else [seed + i for i in range(n)]
        super().reset(seed=None if seeds is None else seeds[0])
        self.core.apply_options(options)
        if seeds is None and self.core.keys is None:
            seeds = self.np_random.integers(0, 2**31, n).tolist()
        rows = self.core.reset(None if seeds is None else keys_from_seeds(seeds))
        lay = self.core.layout
        self._mask = rows[:, lay.mask] > 0.5
        return rows[:, lay.features].copy(), {"action_mask": self._mask.copy(), "_action_mask": np.ones(n, bool)}

    def step(self, actions):
        actions = check_actions(actions, f"{self.action_space} ({self.num_envs} x {self.single_action_space})",
                                self.core.nvec, (self.num_envs,))
        rows = self.core.step(actions)
        lay, names = self.core.layout, self.core.metric_names
        terminated, truncated = rows[:, lay.terminated] > 0.5, rows[:, lay.truncated] > 0.5
        done = terminated | truncated
        running = ~done
        self._mask = rows[:, lay.mask] > 0.5
        metrics, projected = rows[:, lay.metrics], rows[:, lay.projected] > 0.5
        info = {"action_mask": self._mask.copy(), "_action_mask": np.ones(self.num_envs, bool)}
        if running.any():  # a finished sub-environment's step info moves to final_info
            info.update(metrics=_masked_metrics(names, metrics, running), _metrics=running,
                        projected=projected & running, _projected=running.copy())
        if done.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i, features in zip(np.flatnonzero(done), rows[done][:, lay.final_features]):  # one fresh copy
                final_obs[i] = features
            final_mask = (rows[:, lay.final_mask] > 0.5) & done[:, None]
            info["final_obs"], info["_final_obs"] = final_obs, done
            info["final_info"] = {"metrics": _masked_metrics(names, metrics, done), "_metrics": done.copy(),
                                  "action_mask": final_mask, "_action_mask": done.copy(),
                                  "projected": projected & done, "_projected": done.copy()}
            info["_final_info"] = done.copy()
        obs = rows[:, lay.features].copy()
        return obs, rows[:, lay.reward].astype(np.float64), terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """bool[num_envs, sum(nvec)] for the current observations."""
        if self._mask is None:
            raise gymnasium.error.ResetNeeded("call reset() before action_masks()")
        return self._mask.copy()
