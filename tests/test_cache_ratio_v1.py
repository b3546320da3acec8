"""CacheRatio-v1 and `sim.serving`: host capacity never exceeded over drawn request streams, a degenerate stream
(one batch at t = 0, fixed lengths, no arrivals) costing exactly CacheRatio-v0's step times, streams
determined by the key, finite observations and rewards for every policy, the length distributions, and the
scenario's errors. One small scenario; rollouts jitted once per module with params as an argument."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import memgym
from memgym.envs import cache_ratio as v0
from memgym.envs import cache_ratio_v1 as v1
from memgym.envs.core import rollout
from memgym.policies import cache_ratio_v1 as pv1
from memgym.sim import serving

ENV = v1.CacheRatioV1()
# OPT-66B with 100 GB of host memory: ~9 GB for the cache beside the host's share of the weights, so a few
# requests fill it and admission and the share mask bind
SMALL = {"host_memory_gb": 100.0, "n_slots": 32, "n_requests": 96, "max_steps": 24, "bins": 5,
         "max_prompt_len": 512, "max_output_len": 512, "load": 3.0, "n_initial": 8}


@functools.lru_cache(maxsize=None)
def small_params():
    return ENV.default_params(**SMALL)


def unmasked_random(key, obs, state, params):
    """Any bin, the masked ones included (the environment must project them)."""
    return jax.random.randint(key, (1,), 0, params.bins)


NAMES = ["unmasked"] + list(pv1.POLICIES)


@functools.lru_cache(maxsize=None)
def _rollout_all():
    """One compiled rollout for every policy (chosen by a traced index through `lax.switch`), so the
    environment's step is compiled once for the module."""
    pols = [unmasked_random] + list(pv1.POLICIES.values())

    def policy(idx):
        return lambda key, obs, state, params: jax.lax.switch(idx, pols, key, obs, state, params)
    steps = small_params().max_steps
    return jax.jit(lambda params, key, idx: rollout(ENV, policy(idx), params, key, steps))


def runner(name):
    return functools.partial(lambda params, key, i: _rollout_all()(params, key, i), i=jnp.int32(NAMES.index(name)))


STEP, RESET = jax.jit(ENV.step), jax.jit(ENV.reset)


def with_stream(params, load, prompt_sigma, output_sigma, n_initial):
    """The params with another stream (the traced fields only, so every draw reuses one compiled rollout)."""
    f = jnp.float32
    return dataclasses.replace(params, arrival_rate_per_s=f(load * params.ref_tokens_per_s / params.output_mean),
                               prompt_sigma=f(prompt_sigma), output_sigma=f(output_sigma), n_initial=f(n_initial))


# ---- capacity ----------------------------------------------------------------------------------------------


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), load=st.floats(0.0, 6.0), sig=st.floats(0.0, 2.0),
       n_initial=st.integers(0, 16), policy=st.sampled_from(["unmasked", "all_kv", "hybridserve"]))
def test_capacity_is_never_exceeded(seed, load, sig, n_initial, policy):
    params = with_stream(small_params(), load, sig, sig, n_initial)
    r, _, _, m, a = runner(policy)(params, jax.random.PRNGKey(seed))
    assert float(m["host_committed_frac"].max()) <= 1.0 + 1e-5
    assert float(m["host_used_frac"].max()) <= float(m["host_committed_frac"].max()) + 1e-6
    assert float(m["gpu_used_frac"].max()) <= 1.0 + 1e-5
    assert float(m["running"].max()) <= params.n_slots
    assert np.all(np.isfinite(np.asarray(r))) and float(r.min()) >= 0.0


def test_memory_binds_admission_in_the_small_scenario():
    """The scenario the capacity test draws from does exercise the limit: requests wait while slots are free
    because their commitment would not fit, and committed memory reaches capacity."""
    r, _, _, m, _ = runner("unmasked")(small_params(), jax.random.PRNGKey(1))
    blocked = (np.asarray(m["waiting"]) > 0) & (np.asarray(m["running"]) < small_params().n_slots)
    assert blocked.any()
    assert float(m["host_committed_frac"].max()) > 0.97


def test_mask_and_projection_keep_kv_writes_within_capacity():
    """Running requests whose commitment nearly fills host memory: K,V writes (share 0) are masked, the smaller
    form (share 1) is not, and an all-K,V action is projected to a feasible share."""
    params = small_params()
    n = 8
    cap = float(serving.host_capacity(params))

    def slots_at(x):
        f = jnp.full((params.n_slots,), 0.0)
        on = jnp.arange(params.n_slots) < n
        return serving.Slots(kv_tokens=f, act_tokens=jnp.where(on, x, 0.0), left=jnp.where(on, 64.0, 0.0),
                             active=on)
    used = jax.jit(lambda x: serving.committed_after_writes(params, slots_at(x), 1.0))
    lo, hi = 1.0, 1e6  # bisection: the largest per-request activation cache whose commitment fits
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(used(mid)) <= cap else (lo, mid)
    slots = slots_at(lo)
    ok = np.asarray(serving.share_feasible(params, slots, v1.shares(params)))
    assert ok[-1] and not ok[0]
    _, state = RESET(jax.random.PRNGKey(0), params)
    state = dataclasses.replace(state, serving=dataclasses.replace(state.serving, slots=slots))
    b, projected = jax.jit(ENV.project)(jnp.asarray([0], jnp.int32), state, params)
    assert bool(projected) and ok[int(b)] and not ok[:int(b)].any()
    _, new, *_ = STEP(jax.random.PRNGKey(0), state, jnp.asarray([0], jnp.int32), params)
    assert float(serving.committed_bytes(params, new.serving.slots)) <= cap * (1 + 1e-5)


# ---- the degenerate stream is CacheRatio-v0 ------------------------------------------------------------------

P, G, S, B = 256, 64, 8, 6  # prompt, output, steps, batch


@pytest.fixture(scope="module")
def degenerate():
    common = {"model": "opt-30b", "host_memory_gb": 128.0, "gbs": 4}
    p1 = ENV.default_params(**common, n_slots=B, n_requests=B, n_initial=B, load=0.0, max_steps=S,
                            iterations_per_step=G // S, prompt_mean=float(P), prompt_sigma=0.0,
                            output_mean=float(G), output_sigma=0.0, max_prompt_len=P, max_output_len=G, bins=5)
    p0 = v0.CacheRatio().default_params(**common, prompt_len=P, gen_len=G, max_steps=S, bins=5)
    return p0, p1


def test_degenerate_stream_matches_v0_step_times(degenerate):
    """One batch of B requests at t = 0 with fixed lengths and no further arrivals: every step's time, PCIe
    time, GPU time and tokens equal CacheRatio-v0's `step_time` for the same shares (relative 1e-5)."""
    p0, p1 = degenerate
    assert float(p0.wg) == pytest.approx(float(p1.wg), rel=1e-6)
    shares = [0.0, 0.5, 1.0, 0.25, 0.75, 0.0, 1.0, 0.5]
    obs, state = RESET(jax.random.PRNGKey(0), p1)
    step = STEP
    k = float(v0.tokens_per_step(p0))
    kv = act = 0.0
    for t, a in enumerate(shares):
        action = jnp.asarray([round(a * (p1.bins - 1))], jnp.int32)
        obs, state, r, term, trunc, info = step(jax.random.PRNGKey(t), state, action, p1)
        m = info["metrics"]
        assert not bool(info["projected"])
        total, pcie, gpu, _ = v0.step_time(p0, jnp.float32(B), kv, act, a, t == 0)
        assert float(m["step_time_s"]) == pytest.approx(float(total), rel=1e-5)
        assert float(m["pcie_time_s"]) == pytest.approx(float(pcie), rel=1e-5)
        assert float(m["gpu_time_s"]) == pytest.approx(float(gpu), rel=1e-5)
        assert float(m["tokens"]) == B * k
        now = (P + k) if t == 0 else k  # v0's state update
        kv, act = kv + (1 - a) * now, act + a * now
    assert bool(term) and float(m["finished"]) == B


# ---- streams -----------------------------------------------------------------------------------------------


def test_same_key_same_stream_other_key_other_stream():
    params = small_params()
    a = v1.stream_of(jax.random.PRNGKey(3), params)
    b = v1.stream_of(jax.random.PRNGKey(3), params)
    c = v1.stream_of(jax.random.PRNGKey(4), params)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a.prompt_len), np.asarray(c.prompt_len))
    assert not np.array_equal(np.asarray(a.arrival_s), np.asarray(c.arrival_s))
    # same key, same trajectory through the environment
    r1 = runner("random")(params, jax.random.PRNGKey(5))[0]
    r2 = runner("random")(params, jax.random.PRNGKey(5))[0]
    np.testing.assert_array_equal(np.asarray(r1), np.asarray(r2))


def test_stream_shape_initial_requests_and_sorted_arrivals():
    params = small_params()
    s = v1.stream_of(jax.random.PRNGKey(0), params)
    arr = np.asarray(s.arrival_s)
    n0 = int(params.n_initial)
    assert np.all(arr[:n0] == 0.0) and np.all(arr[n0:] > 0.0) and np.all(np.diff(arr) >= 0)
    assert np.all(np.asarray(s.prompt_len) >= 1) and np.all(np.asarray(s.prompt_len) <= float(params.prompt_len))
    assert np.all(np.asarray(s.output_len) <= float(params.gen_len))
    none = v1.stream_of(jax.random.PRNGKey(0), dataclasses.replace(params, arrival_rate_per_s=jnp.float32(0.0)))
    assert np.all(np.asarray(none.arrival_s)[n0:] == serving.NO_ARRIVAL_S)


def test_lognormal_lengths_have_the_stated_mean():
    """Unclipped, the sampled lengths average the ShareGPT means (vLLM paper: 161 and 338 tokens)."""
    key_in, key_out = jax.random.split(jax.random.PRNGKey(0))
    x = serving.sample_lengths(key_in, 200_000, v1.SHAREGPT_PROMPT_MEAN, 1.0, 1e7)
    y = serving.sample_lengths(key_out, 200_000, v1.SHAREGPT_OUTPUT_MEAN, 1.0, 1e7)
    assert float(x.mean()) == pytest.approx(161.0, rel=0.03)
    assert float(y.mean()) == pytest.approx(338.0, rel=0.03)
    assert float(serving.sample_lengths(key_in, 8, 338.0, 0.0, 1e7).std()) == 0.0  # σ = 0: fixed lengths


# ---- every policy: finite, masked, registered ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(pv1.POLICIES))
def test_policies_give_finite_rewards_within_the_mask(name):
    r, term, trunc, m, a = runner(name)(small_params(), jax.random.PRNGKey(2))
    assert np.all(np.isfinite(np.asarray(r))) and float(r.max()) > 0
    assert float(m["projected"].sum()) == 0  # policies act inside the mask
    assert bool(term[-1]) and not bool(trunc.any())
    for v in m.values():
        assert np.all(np.isfinite(np.asarray(v)))


def test_observation_is_finite_and_scale_free():
    params = small_params()
    obs, state = RESET(jax.random.PRNGKey(0), params)
    assert obs.features.shape == (len(ENV.feature_names(params)),) and obs.action_mask.shape == (params.bins,)
    for t in range(6):
        obs, state, r, *_ = STEP(jax.random.PRNGKey(t), state, jnp.asarray([0], jnp.int32), params)
        f = np.asarray(obs.features)
        assert np.all(np.isfinite(f)) and np.all(np.abs(f) <= 10.0) and bool(obs.action_mask.any())
    names = ENV.feature_names(params)
    assert 0.0 < f[names.index("host_committed")] <= 1.0 + 1e-6


def test_registered_and_v0_keeps_the_reproduction():
    from memgym.train.reproduce import by_paper

    assert "memgym/CacheRatio-v1" in memgym.registered()
    assert by_paper("hybridserve").id == "CacheRatio-v0"
    env, params = memgym.make("CacheRatio-v1", **SMALL)
    assert isinstance(env, v1.CacheRatioV1) and env.action_nvec(params) == (5,)


def test_scenario_errors_name_the_field():
    with pytest.raises(ValueError, match="n_initial"):
        v1.CacheRatioV1Scenario(n_initial=100, n_requests=10)
    with pytest.raises(ValueError, match="prompt_mean"):
        v1.CacheRatioV1Scenario(prompt_mean=2000.0)
    with pytest.raises(ValueError, match="host memory"):
        v1.CacheRatioV1Scenario(host_memory_gb=60.0).build()
    with pytest.raises(ValueError, match="load"):
        v1.CacheRatioV1Scenario(load=-1.0)


# ---- headroom ----------------------------------------------------------------------------------------------


def test_the_per_step_balance_leaves_headroom_under_load():
    """With 384 GB of host memory a full batch of 96 requests loads the GPU with K,V regeneration, and the
    share chosen now changes later steps: the clairvoyant lookahead beats HybridServe's per-step balance by
    more than 1 % (2.4 % when this test was written), with the same streams."""
    env, params = memgym.make("CacheRatio-v1", host_memory_gb=384.0, n_slots=96, n_requests=192, max_steps=24,
                              load=3.0, n_initial=96, bins=6)

    def mean_reward(name):
        f = jax.jit(jax.vmap(lambda k: rollout(env, pv1.POLICIES[name], params, k, params.max_steps)[0]))
        return float(f(jax.random.split(jax.random.PRNGKey(0), 2)).mean())
    assert mean_reward("oracle") > 1.01 * mean_reward("hybridserve")
