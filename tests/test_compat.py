"""The gymnax and Jumanji views (memgym.compat) against the native environments.

One jitted program per environment runs the native environment, the gymnax view (six and five values) and
the Jumanji view in lockstep on the same keys and actions, for the paper heuristic and for random actions;
the other tests reuse small scenarios so that the file compiles few programs."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

gymnax = pytest.importorskip("gymnax")
jumanji = pytest.importorskip("jumanji")

import memgym  # noqa: E402
from memgym.compat import flat  # noqa: E402
from memgym.compat.gymnax import GymnaxEnv, GymnaxParams, register  # noqa: E402
from memgym.compat.jumanji import JumanjiEnv, JumanjiState  # noqa: E402
from memgym.policies import get_policy, heuristic_name  # noqa: E402

# the small scenarios of test_adapters.py, test_cache_ratio.py and test_secure_disagg.py
SMALL = {
    "KernelMapping-v0": {"model": "llama2-70b", "batch": 8, "bins": 4, "max_steps": 8,
                         "context_start": (1024, 4096), "hbm_capacity_gb": 24},
    "CacheRatio-v0": {"max_steps": 4, "gen_len": 32, "bins": 5, "batch_bins": 4},
    "SecureDisagg-v0": {"max_steps": 4, "gen_len": 32, "bins": 5, "remote_bins": 5, "batch_bins": 4},
}
KM = "KernelMapping-v0"


class TracedOnce:
    """The native env with `reset`, `step` and `step_env` behind `jax.jit`: the views call them with the same
    shapes as the native reference does, so each is traced once per program instead of once per caller."""

    def __init__(self, env):
        self._env = env
        self.reset, self.step, self.step_env = jax.jit(env.reset), jax.jit(env.step), jax.jit(env.step_env)

    def __getattr__(self, name):
        return getattr(self._env, name)


def views(env_id: str):
    """The native env, its params, the gymnax view (6 values, mask in obs), the gymnax view (5 values, features
    only; KernelMapping-v0 alone, as it is the 6-value view repackaged and each view costs compile time) and
    the Jumanji view."""
    env, params = memgym.make(env_id, **SMALL[env_id])
    native = TracedOnce(env)
    g5 = GymnaxEnv(native, params, step_values=5, include_mask=False) if env_id == KM else None
    return native, params, GymnaxEnv(native, params), g5, JumanjiEnv(native, params)


def gap(a, b):
    """The largest absolute difference between two pytrees of the same leaves (inf if shapes differ)."""
    pairs = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    return jnp.max(jnp.stack([jnp.max(jnp.abs(jnp.asarray(x, jnp.float32) - jnp.asarray(y, jnp.float32)))
                              if jnp.shape(x) == jnp.shape(y) else jnp.float32(jnp.inf) for x, y in pairs]))


def lockstep(envs, policy, key, n_steps):
    """The native env driven by `policy` for `n_steps` (across an autoreset); at every step each view is
    stepped from the native state with the same key and the flattened action, and its outputs are compared
    with the native step's. The views must also return the native next state, so, by induction, whole
    trajectories agree. Returns per-step outputs and the largest gap of the compared arrays."""
    native, params, g6, g5, jenv = envs
    nvec = native.action_nvec(params)
    k_reset, k_steps = jax.random.split(key)
    obs, state = native.reset(k_reset, params)
    o6, s6 = g6.reset(k_reset, g6.default_params)
    js, ts = jenv.reset(k_reset)
    obs_j, state_j = native.reset(jax.random.split(k_reset)[0], params)
    jumanji_obs = lambda o: (o.features, flat.flat_mask(o.action_mask, nvec))  # noqa: E731
    gaps = [gap(o6, g6.flat_obs(obs)), gap(s6, state), gap(ts.observation, jumanji_obs(obs_j)),
            gap(js.env_state, state_j)]
    if g5 is not None:
        gaps.append(gap(g5.reset(k_reset, params)[0], obs.features))  # native params are accepted too

    def body(carry, k):
        obs, state = carry
        k_act, k_env = jax.random.split(k)
        a = flat.flatten_action(policy(k_act, obs, state, params), nvec)
        obs2, state2, r, term, trunc, info = native.step(k_env, state, flat.unflatten_action(a, nvec), params)
        o6, s6, r6, term6, trunc6, info6 = g6.step(k_env, state, a, g6.default_params)
        js, ts = jenv.step(JumanjiState(state, k_env), a)
        final = info["final_observation"]  # the Jumanji view does not autoreset
        gaps = [gap(o6, g6.flat_obs(obs2)), gap(s6, state2), gap(info6["final_observation"], g6.flat_obs(final)),
                gap(ts.observation, jumanji_obs(final))]
        out = dict(r=r, term=term, trunc=trunc, r6=r6, term6=term6, trunc6=trunc6, jr=ts.reward, last=ts.last(),
                   discount=ts.discount,
                   mask_ok=jnp.array_equal(g6.action_mask(o6), flat.flat_mask(obs2.action_mask, nvec)))
        if g5 is not None:
            o5, s5, out["r5"], out["done5"], info5 = g5.step(k_env, state, a, params)
            out["trunc5"] = info5["truncated"]
            gaps += [gap(o5, obs2.features), gap(s5, state2)]
        out["gap"] = jnp.max(jnp.stack(gaps))
        return (obs2, state2), out

    return jax.lax.scan(body, (obs, state), jax.random.split(k_steps, n_steps))[1], jnp.max(jnp.stack(gaps))


@pytest.mark.parametrize("env_id", list(SMALL))
def test_views_match_native(env_id):
    """Rewards, ends, observations, masks and states of both views equal the native env's, for the paper
    heuristic and for random actions (one compiled program: the policy is chosen by a traced flag)."""
    envs = views(env_id)
    heuristic, random = get_policy(env_id, heuristic_name(env_id)), get_policy(env_id, "random")
    horizon = SMALL[env_id]["max_steps"]

    @jax.jit
    def run(key, use_random):
        def policy(k, obs, state, params):
            return jnp.where(use_random, random(k, obs, state, params), heuristic(k, obs, state, params))
        return lockstep(envs, policy, key, horizon + horizon // 2)

    for name, use_random in (("heuristic", False), ("random", True)):
        g, reset_gap = jax.device_get(run(jax.random.PRNGKey(3), use_random))
        done = g["term"] | g["trunc"]
        assert done.sum() == 1 and done[horizon - 1], name  # the episode ended once, then reset
        assert np.isfinite(g["r"]).all() and g["r"].std() > 0, name  # a trajectory, not a constant
        for view in ("r6", "jr") + (("r5",) if env_id == KM else ()):
            np.testing.assert_allclose(g[view], g["r"], rtol=1e-6, err_msg=f"{name} {view}")
        np.testing.assert_array_equal(g["term6"], g["term"])
        np.testing.assert_array_equal(g["trunc6"], g["trunc"])
        if env_id == KM:
            np.testing.assert_array_equal(g["done5"], done)
            np.testing.assert_array_equal(g["trunc5"], g["trunc"])
        np.testing.assert_array_equal(g["last"], done)
        np.testing.assert_array_equal(g["discount"], np.where(g["term"], 0.0, 1.0))
        assert g["mask_ok"].all(), name
        assert max(reset_gap, g["gap"].max()) < 1e-5, name  # observations, final observations and states


@pytest.fixture(scope="module")
def km():
    """KernelMapping-v0's small scenario behind the gymnax view."""
    native, params = memgym.make(KM, **SMALL[KM])
    return native, params, GymnaxEnv(native, params)


def test_flattened_action_layout():
    """Row-major flattening round-trips, matches numpy's, and the flat mask is the outer product."""
    nvec = (2, 3, 4)
    multi = np.stack(np.unravel_index(np.arange(24), nvec), -1)
    np.testing.assert_array_equal(flat.flatten_action(multi, nvec), np.arange(24))
    np.testing.assert_array_equal(flat.unflatten_action(np.arange(24), nvec), multi)
    masks = [np.array([True, False]), np.array([True, True, False]), np.array([False, True, True, True])]
    expected = np.einsum("i,j,k->ijk", *masks).reshape(-1)
    np.testing.assert_array_equal(flat.flat_mask(np.concatenate(masks), nvec), expected)
    assert flat.num_actions(nvec) == 24 and flat.num_actions((16, 16, 16)) == 4096


def test_gymnax_attributes_and_spaces(km):
    """The attributes gymnax code reads, real gymnax spaces that hold the observations, the native aliases."""
    native, params, env = km
    p = env.default_params  # a property
    assert isinstance(env, gymnax.environments.environment.Environment) and isinstance(p, GymnaxParams)
    assert env.name == native.name == KM
    assert p.max_steps_in_episode == native.max_steps_in_episode(params) == 8
    assert env.num_actions == env.action_space(p).n == 64
    assert isinstance(env.action_space(p), gymnax.environments.spaces.Discrete)
    space = env.observation_space(p)
    assert isinstance(space, gymnax.environments.spaces.Box)
    assert space.shape == (native.observation_size(params) + 12,)
    obs, _ = env.reset(jax.random.PRNGKey(0), p)
    assert obs.shape == space.shape and obs.dtype == jnp.float32 and bool(space.contains(obs))
    assert not bool(space.contains(obs.at[-1].set(2.0)))  # the mask part is 0/1
    with pytest.raises(ValueError):
        GymnaxEnv(native, params, step_values=4)


def test_gymnax_wrappers_compose(km):
    """gymnax's LogWrapper over its FlattenObservationWrapper over the view: the logged return of the finished
    episode equals the sum of the view's rewards."""
    from gymnax.wrappers import FlattenObservationWrapper, LogWrapper

    _, _, env = km
    wrapped = LogWrapper(FlattenObservationWrapper(env))
    p = env.default_params
    assert wrapped.observation_space(p).shape == env.observation_space(p).shape

    def body(state, k):
        k_act, k_env = jax.random.split(k)
        obs, state, r, term, trunc, info = wrapped.step(k_env, state, env.action_space(p).sample(k_act), p)
        return state, (r, term | trunc, info["returned_episode"], info["returned_episode_returns"], obs)

    @jax.jit
    def run(key):
        obs, state = wrapped.reset(key, p)
        return jax.lax.scan(body, state, jax.random.split(key, 10))[1]

    r, done, returned, logged, obs = jax.device_get(run(jax.random.PRNGKey(1)))
    np.testing.assert_array_equal(returned, done)
    assert done[7] and done.sum() == 1 and obs.shape == (10,) + env.observation_space(p).shape
    np.testing.assert_allclose(logged[7], r[:8].sum(), rtol=1e-5)


def test_jumanji_smoke_and_specs():
    """Jumanji's own smoke test (a jitted episode, actions and observations validated against the specs) and
    every spec validating the value it describes; extras keep one structure from reset to step."""
    from jumanji.testing.env_not_smoke import check_env_does_not_smoke

    env = JumanjiEnv(KM, **SMALL[KM])
    assert isinstance(env, jumanji.env.Environment) and env.name == KM
    check_env_does_not_smoke(env)
    state, ts = env.reset(jax.random.PRNGKey(0))
    action = jnp.argmax(ts.observation.action_mask).astype(jnp.int32)  # a masked-in action
    env.action_spec.validate(action)
    state, ts2 = env.step(state, action)
    for t in (ts, ts2):
        env.observation_spec.validate(t.observation)
        env.reward_spec.validate(t.reward)
        env.discount_spec.validate(t.discount)
    assert env.action_spec.num_values == ts.observation.action_mask.shape[0] == 64
    assert 0 < int(ts.observation.action_mask.sum()) < 64  # 24 GB of HBM: some actions are masked
    assert jax.tree_util.tree_structure(ts.extras) == jax.tree_util.tree_structure(ts2.extras)
    with pytest.raises(ValueError):
        env.observation_spec.validate(ts.observation._replace(action_mask=ts.observation.action_mask[:-1]))


def test_register_with_gymnax():
    """`register()` makes the ids known to `gymnax.make` (rejax's string ids), idempotently."""
    register()
    register()
    env, params = gymnax.make(KM, step_values=5, **SMALL[KM])
    assert isinstance(env, GymnaxEnv) and env.step_values == 5 and params.max_steps_in_episode == 8


def test_import_memgym_does_not_import_the_optional_libraries():
    code = ("import sys, memgym, memgym.compat, memgym.compat.flat; "
            "assert not {'gymnax', 'jumanji', 'flax'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
