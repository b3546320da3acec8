"""No NaN or inf reaches an observation or a reward: hypothesis over every numeric params field of every
environment inside its validated range (memgym.sim.validate), a guard for what validation cannot see, and a
clear trace-time error for a wrongly shaped action. One jitted rollout per environment (params are an
argument, so every draw reuses it)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import memgym
from memgym.envs.core import OBS_BOUND, masked_random
from memgym.sim import validate

# fields drawn per environment (static fields fixed below, so that every draw shares one compiled program)
FIELDS = {
    "KernelMapping-v0": ["hbm_capacity_gb", "lpddr_bw_gbps", "finish_prob", "batch", "context_max"],
    "CacheRatio-v0": ["host_memory_gb", "gpu_memory_gb", "pcie_gbps", "ctog_overlap", "prompt_len", "gen_len", "gbs"],
    "CacheRatio-v1": ["host_memory_gb", "pcie_gbps", "ctog_overlap", "gbs", "load", "n_initial", "prompt_mean",
                      "prompt_sigma", "output_mean", "output_sigma"],
}  # SecureDisagg-v0: tests/test_secure_disagg.py (it reuses that module's compiled rollout)
FIXED = {
    "KernelMapping-v0": {"model": "llama2-70b", "workload": "dynamic", "n_slots": 16, "batch": 8, "bins": 4,
                         "max_steps": 8, "context_start": (64, 128)},
    "CacheRatio-v0": {"model": "opt-30b", "max_steps": 4, "bins": 5, "batch_bins": 3},
    "CacheRatio-v1": {"model": "opt-30b", "max_steps": 8, "bins": 5, "n_slots": 8, "n_requests": 32,
                      "max_prompt_len": 4096, "max_output_len": 4096},
}
LIMITS = {"batch": 16, "context_max": 1 << 16, "prompt_len": 4096, "gen_len": 4096, "gbs": 64,  # array sizes
          "n_initial": 32, "prompt_mean": 4096, "output_mean": 4096}  # within CacheRatio-v1's FIXED stream
STEPS = 10


def value(field, name):
    lo, hi = field.lo, min(field.hi, LIMITS.get(name, field.hi))
    if field.integer:
        return st.one_of(st.sampled_from([int(lo), int(hi)]), st.integers(int(lo), int(hi)))
    edges = st.sampled_from([lo, hi])
    if lo > 0:
        return st.one_of(edges, st.floats(math.log(lo), math.log(hi)).map(math.exp))
    return st.one_of(edges, st.floats(lo, hi, width=32, allow_subnormal=False))


@pytest.fixture(scope="module", params=list(FIELDS))
def compiled(request):
    env_id = request.param
    env, params = memgym.make(env_id, **FIXED[env_id])
    policy = masked_random(env)

    def run(p, key):
        obs, state = env.reset(key, p)

        def body(carry, k):
            obs, state = carry
            a = policy(k, obs, state, p)
            obs, state, r, _, _, info = env.step(k, state, a, p)
            return (obs, state), (r, obs.features, info["nonfinite"])
        _, out = jax.lax.scan(body, (obs, state), jax.random.split(key, STEPS))
        return (obs.features,) + out

    return env_id, env, params, jax.jit(run)


def _check(env, p, out):
    feats0, rewards, feats, nonfinite = map(np.asarray, out)
    assert not nonfinite.any(), "a raw reward was NaN or inf (the guard fired) for validated parameters"
    assert np.isfinite(rewards).all() and np.isfinite(feats).all() and np.isfinite(feats0).all()
    lo, hi = env.observation_bounds(p)
    assert (feats >= lo).all() and (feats <= hi).all()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.filter_too_much])
@given(data=st.data())
def test_validated_params_never_give_nan(compiled, data):
    env_id, env, _, run = compiled
    draw = {n: data.draw(value(validate.SCENARIO[n], n), label=n) for n in FIELDS[env_id]}
    if env_id == "KernelMapping-v0":
        draw["context_max"] = max(draw["context_max"], 128)
    try:
        _, p = memgym.make(env_id, **{**FIXED[env_id], **draw})
    except ValueError:  # the model does not fit, a value not representable in float32...: clear errors, tested
        assume(False)  # in test_validate.py and the environments' own tests
    _check(env, p, run(p, jax.random.PRNGKey(0)))


def _poison(tree, value):
    """Every float leaf of a params pytree replaced by `value` (what validation refuses; the guard's case)."""
    return jax.tree_util.tree_map(lambda x: jnp.full_like(x, value) if jnp.issubdtype(x.dtype, jnp.floating)
                                  else x, tree)


@pytest.mark.parametrize("bad", [math.nan, 0.0, 1e38])
def test_guard_keeps_rewards_and_observations_finite_and_flags_it(compiled, bad):
    env_id, env, params, run = compiled
    p = _poison(params, bad)
    if env_id == "KernelMapping-v0":  # keep the slots' batch and dynamic flag sane: the rest is poisoned
        p = dataclasses.replace(p, batch=params.batch, dynamic=params.dynamic)
    feats0, rewards, feats, nonfinite = map(np.asarray, run(p, jax.random.PRNGKey(0)))
    assert np.isfinite(rewards).all() and np.isfinite(feats).all()
    assert (np.abs(feats) <= OBS_BOUND).all()
    if bad != bad:  # NaN parameters give NaN raw rewards: flagged
        assert nonfinite.all()


def test_wrongly_shaped_action_is_a_trace_time_error(compiled):
    env_id, env, params, _ = compiled
    _, state = jax.eval_shape(env.reset, jax.random.PRNGKey(0), params)
    n = len(env.action_nvec(params))
    for shape in [s for s in [(1,), (n + 1,), (2, n), ()] if s != (n,)]:
        with pytest.raises(ValueError, match=rf"int32\[{n}\]"):
            jax.eval_shape(env.step, jax.random.PRNGKey(0), state, jnp.zeros(shape, jnp.int32), params)
