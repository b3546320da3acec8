"""KernelMapping-v0: capacity, oracle optimality, migration, determinism, vmap parity, projection, masks."""

from __future__ import annotations

import dataclasses
import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memgym.envs.core import rollout
from memgym.envs.kernel_mapping import KernelMapping, KernelMappingState
from memgym.policies import kernel_mapping as km
from memgym.sim import asymmetric, config
from memgym.sim.specs import HBM, replace

ENV = KernelMapping()


@functools.lru_cache(maxsize=None)
def small_params(model="llama2-70b", batch=8, bins=8, workload="static", max_steps=6):
    return ENV.default_params(model=model, batch=batch, bins=bins, workload=workload, max_steps=max_steps)


def with_hbm(params, hbm_gb):
    return dataclasses.replace(params, hw=replace(params.hw, tier_capacity_bytes=params.hw.tier_capacity_bytes
                                                  .at[HBM].set(hbm_gb * 1e9)))


def make_state(contexts, mapping=(0.0, 0.0, 0.0), step=0, last_kv=0.0):
    return KernelMappingState(contexts=jnp.asarray(contexts, jnp.float32), mapping=jnp.asarray(mapping, jnp.float32),
                              step=jnp.int32(step), last_kv_tokens=jnp.float32(last_kv),
                              last_side_times=jnp.zeros(6, jnp.float32))


@jax.jit
def _h2m2_check(state, params):
    obs = ENV.observe(state, params)
    action = km.h2m2(jax.random.PRNGKey(0), obs, state, params)
    share = action / (params.bins - 1)
    kv = ENV.kv_tokens_next(state, params)
    return asymmetric.fits(params.model, params.hw, kv, share), ENV.project(action, state, params)[1]


@settings(max_examples=30, deadline=None)
@given(model=st.sampled_from(["gpt3-175b", "chinchilla-70b", "llama2-70b"]), batch=st.sampled_from([8, 32]),
       ctx=st.integers(64, 4096), hbm_gb=st.floats(48, 192), spread=st.floats(0, 1))
def test_h2m2_heuristic_never_exceeds_capacity(model, batch, ctx, hbm_gb, spread):
    params = with_hbm(small_params(model, batch, bins=16), hbm_gb)
    contexts = np.linspace(ctx * (1 - 0.5 * spread), ctx, batch).round()
    state = make_state(contexts)
    total = float(asymmetric.footprints(params.model, params.hw, contexts.sum() + batch).sum())
    if total > 0.98 * (hbm_gb * 1e9 + float(params.hw.tier_capacity_bytes[1])):
        return  # the model cannot fit at all; default_params refuses such scenarios
    ok, projected = _h2m2_check(state, params)
    assert bool(ok), "the H2M2 mapping overflows a side"
    assert not bool(projected)


def _step_reward(state, params, action):
    return ENV.step(jax.random.PRNGKey(3), state, action, params)[2]


@pytest.mark.parametrize("seed", range(4))
def test_oracle_is_never_beaten_at_its_iteration(seed):
    params = small_params("gpt3-175b", 8, bins=6)
    rng = np.random.default_rng(seed)
    mapping = rng.integers(0, params.bins, 3) / (params.bins - 1)
    state = make_state(rng.integers(200, 2000, params.n_slots), mapping, step=1)
    obs = ENV.observe(state, params)
    step = jax.jit(_step_reward)
    best = float(step(state, params, jax.jit(km.oracle)(jax.random.PRNGKey(0), obs, state, params)))
    others = [jax.jit(km.POLICIES[n])(jax.random.PRNGKey(i), obs, state, params) for i, n in enumerate(km.POLICIES)]
    grid = jnp.stack(jnp.meshgrid(*[jnp.arange(params.bins)] * 3, indexing="ij"), -1).reshape(-1, 3)
    rewards = jax.vmap(lambda a: step(state, params, a))(jnp.concatenate([jnp.stack(others), grid]))
    assert best >= float(rewards.max()) * (1 - 1e-5)


def test_migration_is_zero_when_the_mapping_does_not_change():
    params = small_params()
    obs, state = ENV.reset(jax.random.PRNGKey(0), params)
    a = jnp.array([5, 3, 2], jnp.int32)
    _, state, _, _, _, info1 = ENV.step(jax.random.PRNGKey(1), state, a, params)
    _, state, _, _, _, info2 = ENV.step(jax.random.PRNGKey(2), state, a, params)
    assert float(info1["metrics"]["migration_bytes"]) == 0.0  # first placement is free
    assert float(info2["metrics"]["migration_bytes"]) == 0.0
    _, _, r3, _, _, info3 = ENV.step(jax.random.PRNGKey(3), state, jnp.array([2, 3, 2], jnp.int32), params)
    foot = asymmetric.footprints(params.model, params.hw, ENV.kv_tokens_next(state, params))
    assert float(info3["metrics"]["migration_bytes"]) == pytest.approx(float(foot[0]) * 3 / 7, rel=1e-5)


def test_jit_vmap_step_equals_python_loop():
    params = small_params(workload="dynamic")
    keys = jax.random.split(jax.random.PRNGKey(7), 4)
    obs, states = jax.jit(jax.vmap(ENV.reset, in_axes=(0, None)))(keys, params)
    actions = jnp.array([[7, 7, 7], [0, 0, 0], [3, 5, 1], [7, 0, 4]], jnp.int32)
    vm = jax.jit(jax.vmap(ENV.step, in_axes=(0, 0, 0, None)))(keys, states, actions, params)
    step = jax.jit(ENV.step)
    for i in range(4):
        state_i = jax.tree_util.tree_map(lambda x: x[i], states)
        one = step(keys[i], state_i, actions[i], params)
        for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(vm)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b)[i], rtol=1e-5, atol=1e-6)


def test_same_key_same_trajectory_and_other_keys_differ():
    params = small_params(workload="dynamic", max_steps=12)
    run = jax.jit(lambda k: rollout(ENV, km.random, params, k, 20))
    a, b, c = run(jax.random.PRNGKey(1)), run(jax.random.PRNGKey(1)), run(jax.random.PRNGKey(2))
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(c[0]))


def test_episode_ends_with_autoreset_and_final_observation():
    params = small_params(max_steps=3)
    obs, state = ENV.reset(jax.random.PRNGKey(0), params)
    a = jnp.zeros(3, jnp.int32)
    for t in range(3):
        obs, state, r, term, trunc, info = ENV.step(jax.random.PRNGKey(t), state, a, params)
    assert bool(term) and not bool(trunc)
    assert int(state.step) == 0  # already the next episode
    assert float(info["final_observation"].features[18]) == pytest.approx(1.0)  # step fraction of the last obs
    dyn = small_params(workload="dynamic", max_steps=2)
    _, s = ENV.reset(jax.random.PRNGKey(0), dyn)
    for t in range(2):
        _, s, _, term, trunc, _ = ENV.step(jax.random.PRNGKey(t), s, a, dyn)
    assert bool(trunc) and not bool(term)


def test_infeasible_action_is_projected_in_the_documented_order():
    params = small_params("gpt3-175b", 32, bins=16)
    state = make_state(np.full(32, 1024.0))
    full = jnp.array([15, 15, 15], jnp.int32)
    action, projected = ENV.project(full, state, params)
    assert bool(projected)
    share = action / 15
    assert bool(asymmetric.fits(params.model, params.hw, ENV.kv_tokens_next(state, params), share))
    # fc is lowered first, then qkv, then attention: the result is the largest attention share that fits
    kv = ENV.kv_tokens_next(state, params)
    feasible_attention = [a for a in range(16) if bool(asymmetric.fits(params.model, params.hw, kv,
                                                                         jnp.array([a, 0, 0]) / 15))]
    assert action.tolist() == [max(feasible_attention), 0, 0]
    _, _, _, _, _, info = ENV.step(jax.random.PRNGKey(0), state, full, params)
    assert bool(info["projected"]) and float(info["metrics"]["hbm_used_frac"]) <= 1.0


def test_mask_matches_single_sublayer_capacity():
    params = with_hbm(small_params("gpt3-175b", 32, bins=16), 48.0)
    state = make_state(np.full(32, 2048.0))
    mask = np.asarray(ENV.action_mask(state, params)).reshape(3, 16)
    foot = np.asarray(asymmetric.footprints(params.model, params.hw, ENV.kv_tokens_next(state, params)))
    grid = np.linspace(0, 1, 16)
    for s in range(3):
        too_big = foot[s] * grid > 48e9 * 1.001
        assert not mask[s][too_big].any()
        assert mask[s][foot[s] * grid < 48e9 * 0.99].all()
    assert mask.any(axis=1).all()


def test_reward_is_the_speedup_over_lpddr_only():
    params = small_params("llama2-70b", 8)
    obs, state = ENV.reset(jax.random.PRNGKey(0), params)
    _, _, r, _, _, info = ENV.step(jax.random.PRNGKey(1), state, jnp.array([7, 7, 7], jnp.int32), params)
    m = info["metrics"]
    assert float(r) == pytest.approx(float(m["baseline_time_s"] / m["iteration_time_s"]), rel=1e-5)
    assert np.isfinite(float(r)) and float(r) > 0


def test_heuristic_vmaps_over_hbm_sizes_and_more_hbm_helps():
    base = small_params("gpt3-175b", 32, bins=16, max_steps=4)
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *[with_hbm(base, g) for g in (48, 96, 192)])
    run = jax.jit(jax.vmap(lambda p: rollout(ENV, km.h2m2, p, jax.random.PRNGKey(0), 4)[0].mean()))
    speedups = np.asarray(run(stacked))
    assert np.all(np.diff(speedups) > 0), speedups


def test_baseline_shares_the_global_calibration():
    hw, base = config.load_hardware("h2m2-hbm3-lpddr5x"), config.load_hardware("h2m2-lpddr-only")
    for field in ("eff_memory", "matrix_fill_rows", "overlap", "kv_reads_per_query_head", "eff_compute",
                  "overhead_s", "tlb_miss_s", "tlb_walkers", "page_bytes"):
        np.testing.assert_array_equal(np.asarray(getattr(hw, field)), np.asarray(getattr(base, field)), field)


def test_mdp_card_and_bad_arguments():
    doc = sys.modules[KernelMapping.__module__].__doc__  # the MDP card: the environment module's docstring
    for word in ("State", "Action", "Reward", "Observation", "Termination", "Heuristic"):
        assert word in doc
    with pytest.raises(ValueError, match="workload"):
        ENV.default_params(workload="bursty")
    with pytest.raises(ValueError, match="bins"):
        ENV.default_params(bins=1)
    with pytest.raises(config.ConfigError, match="unknown models preset"):
        ENV.default_params(model="gpt5")


def test_transfer_features_are_shares_and_the_hint_is_h2m2s_action():
    """The scale-free features a generalist reads: balanced shares and mask limits in [0, 1], and the hint
    equal to what the h2m2 policy plays at that state."""
    params = with_hbm(small_params(), 48)
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    obs, state = jax.jit(jax.vmap(ENV.reset, in_axes=(0, None)))(keys, params)
    names = ENV.feature_names(params)
    assert len(names) == obs.features.shape[-1] == 29
    f = dict(zip(names, np.asarray(obs.features).T))
    for k in ("balanced_attention", "balanced_qkv", "balanced_fc", "max_share_attention", "max_share_fc"):
        assert ((f[k] >= 0) & (f[k] <= 1)).all(), k
    actions = jax.jit(jax.vmap(km.h2m2, in_axes=(0, 0, 0, None)))(keys, obs, state, params)
    hint = np.stack([f["h2m2_attention"], f["h2m2_qkv"], f["h2m2_fc"]], axis=1)
    np.testing.assert_allclose(hint, np.asarray(actions) / (params.bins - 1), atol=1e-6)
    assert f["max_share_fc"].max() < 1.0  # 48 GB cannot hold the FC weights: the mask says so
