"""SecureDisagg-v0: capacity, tenant masks, the baseline's reward, the static oracle, the offloading system it
extends, determinism, vmap parity, bad input and a short training run."""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import memgym
from memgym.envs import cache_ratio as cr
from memgym.envs import secure_disagg as sd
from memgym.envs.core import OBS_BOUND, rollout, split_mask
from memgym.policies import secure_disagg as ps
from memgym.sim import config, disagg, validate

ENV = sd.SecureDisagg()
SMALL = {"max_steps": 4, "gen_len": 32, "bins": 5, "remote_bins": 5, "batch_bins": 4}
HOST_LIMIT = 0.8 * (1 + 1e-4)  # mem_alpha × capacity, as the metric reports host use over the raw capacity


@functools.lru_cache(maxsize=None)
def small_params(**kw):
    return ENV.default_params(**dict(SMALL, **kw))


def scenarios(remote_gb=(16.0, 64.0, 512.0), tenants=(0, 2, 4)):
    """A batch of systems (remote capacity × tenant) with the same static shape: each built through the one
    compiled `derive`, then stacked."""
    rows = [(r, t) for r in remote_gb for t in tenants]
    built = [small_params(remote_memory_gb=r, tenant=t) for r, t in rows]
    return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *built), rows


NAMES = tuple(ps.POLICIES)


@functools.lru_cache(maxsize=None)
def _runner(n_steps):
    """jit(vmap over (params, key)) of a rollout of policy number `index` (not batched, so `lax.switch` stays
    a branch): one compile serves every policy."""
    def run(index, params, key):
        policy = lambda k, o, s, p: jax.lax.switch(index, [ps.POLICIES[n] for n in NAMES], k, o, s, p)  # noqa
        return rollout(ENV, policy, params, key, n_steps)
    return jax.jit(jax.vmap(run, in_axes=(None, 0, 0)))


def runner(policy_name, n_steps):
    return functools.partial(_runner(n_steps), NAMES.index(policy_name))


def run_all(policy_name, params, n, seed=0, n_steps=None):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    return runner(policy_name, n_steps or SMALL["max_steps"])(params, keys)


@pytest.fixture(scope="module")
def batch():
    params, rows = scenarios()
    return params, rows


def _check_capacity(met):
    assert float(met["host_used_frac"].max()) <= HOST_LIMIT
    assert float(met["remote_used_frac"].max()) <= 1 + 1e-4


# ---- random actions: capacity, tenant masks, determinism, vmap parity ----------------------------------------


def test_random_actions_fit_respect_tenants_and_vmap_equals_loop(batch):
    params, rows = batch
    tenants = np.asarray([t for _, t in rows], float)
    keys = jax.random.split(jax.random.PRNGKey(5), len(rows))
    r, _, _, met, acts = runner("random", SMALL["max_steps"])(params, keys)
    assert np.all(np.isfinite(np.asarray(r))) and np.all(np.asarray(r) > 0)
    _check_capacity(met)
    assert float(met["remote_used_frac"].max()) > 0.1  # systems do spill: host memory alone is not enough
    assert np.all(np.asarray(met["security_level"]) >= tenants[:, None])
    # the reset mask hides every mode below the requirement
    obs, _ = jax.jit(jax.vmap(ENV.reset, in_axes=(None, 0)))(jax.random.PRNGKey(0), params)
    mode_mask = np.asarray(split_mask(obs.action_mask, ENV.action_nvec(params))[2])
    assert np.all(mode_mask <= (np.asarray(disagg.LEVELS)[None, :] >= tenants[:, None]))
    # determinism, and the vmapped rollout equals one system at a time
    r2, _, _, _, acts2 = runner("random", SMALL["max_steps"])(params, keys)
    np.testing.assert_array_equal(np.asarray(acts), np.asarray(acts2))
    one = jax.jit(lambda p, k: rollout(ENV, ps.random, p, k, SMALL["max_steps"]))
    for i in (0, len(rows) - 1):
        p_i = jax.tree_util.tree_map(lambda x: x[i], params)
        ri, _, _, mi, ai = one(p_i, keys[i])
        np.testing.assert_array_equal(np.asarray(ai), np.asarray(acts[i]))
        np.testing.assert_allclose(np.asarray(ri), np.asarray(r[i]), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(mi["net_time_s"]), np.asarray(met["net_time_s"][i]), rtol=1e-5)


def test_tenant_never_gets_a_weaker_mode(batch):
    params, rows = batch
    tenants = np.asarray([t for _, t in rows], float)
    # a policy that always asks for plain RDMA slabs, whatever the tenant needs
    ask_rdma = lambda key, obs, state, p: jnp.asarray([2, 0, disagg.RDMA_SLAB, 1], jnp.int32)  # noqa: E731
    run = jax.jit(jax.vmap(lambda p, k: rollout(ENV, ask_rdma, p, k, 2 * SMALL["max_steps"])))
    r, _, _, met, _ = run(params, jax.random.split(jax.random.PRNGKey(1), len(rows)))
    level = np.asarray(met["security_level"])
    assert np.all(level >= tenants[:, None])
    first = np.asarray(met["projected"])[:, [0, SMALL["max_steps"]]]  # each episode's first step
    assert np.all(first[tenants > 0] == 1.0) and np.all(level[tenants == 0] == 0)
    _check_capacity(met)


# ---- the planned policies: the baseline, the heuristic, the bounds, the oracle ---------------------------------


def test_planned_policies_baseline_heuristic_and_oracle(batch):
    params, rows = batch
    runs = {name: run_all(name, params, len(rows)) for name in
            ("oracle", "tdmem", "rdma_slabs", "no_security", "always_oram")}
    for name, (r, _, _, met, _) in runs.items():
        _check_capacity(met)
        assert np.all(np.isfinite(np.asarray(r))), name
    mean = {name: np.asarray(out[0]).mean(axis=1) for name, out in runs.items()}
    for name in ("tdmem", "rdma_slabs", "no_security", "always_oram"):  # the oracle is the best static plan
        assert np.all(mean["oracle"] >= mean[name] - 1e-4), name
    for i, (remote, tenant) in enumerate(rows):
        if tenant == 0:
            np.testing.assert_allclose(np.asarray(runs["rdma_slabs"][0][i]), 1.0, rtol=1e-5)
            assert mean["no_security"][i] >= mean["tdmem"][i] - 1e-6  # security never helps the same plan
        if tenant == 0 and remote <= 64:
            assert mean["tdmem"][i] > 1.0  # slabs waste remote capacity: the secure tier fits a larger block
        if tenant < 4:  # Path ORAM's traffic costs what it says (the oblivious tenant's heuristic is ORAM)
            assert mean["always_oram"][i] < 0.5 * mean["tdmem"][i]


def test_projection_moves_block_and_mode_to_what_fits():
    params = small_params(remote_memory_gb=16.0, tenant="oblivious")
    obs, state = jax.jit(ENV.reset)(jax.random.PRNGKey(0), params)
    big = jnp.asarray([0, 0, disagg.PLAIN, params.batch_bins - 1], jnp.int32)
    act, projected = jax.jit(ENV.project)(big, state, params)
    assert bool(projected) and int(act[2]) == disagg.ORAM  # the only mode an oblivious tenant may use
    assert bool(sd.step_bounds(params, act[2], sd.batch_of(params, act[3]), state.tokens, True,
                               act[0] / (params.bins - 1))[0])
    _, state2, _, _, _, info = jax.jit(ENV.step)(jax.random.PRNGKey(1), state, big, params)
    assert float(info["metrics"]["security_level"]) == 4.0 and float(state2.batch) == float(sd.batch_of(params,
                                                                                                     act[3]))


def test_time_features_tell_slow_from_ruinous():
    """Path ORAM's steps take hundreds of baseline steps: the time features stay below the clip bound and keep
    their order there (a plain time / baseline ratio sat at the bound, where 50x and 500x looked the same)."""
    params = small_params(tenant="oblivious")
    _, state = jax.jit(ENV.reset)(jax.random.PRNGKey(0), params)
    names = ENV.feature_names(params)
    base = params.base_step_s[0]
    observe = jax.jit(jax.vmap(ENV.observe, in_axes=(0, None)))
    slow = jnp.asarray([1.0, 50.0, 500.0]) * base
    states = jax.vmap(lambda t: dataclasses.replace(state, step=jnp.ones_like(state.step), last_net_s=t))(slow)
    f = np.asarray(observe(states, params).features)
    net = f[:, names.index("last_net")]
    assert np.all(np.diff(net) > 0.5) and np.all(net < OBS_BOUND)
    assert np.all(np.abs(f) < OBS_BOUND)


def test_local_blocks_counts_the_blocks_whose_run_never_spills():
    """The `local_blocks` feature: the largest block it counts runs all-local in the smaller form to the end;
    the next block spills to remote memory (an oblivious tenant, Path ORAM, plenty of remote memory)."""
    params = small_params(model="opt-30b", tenant="oblivious", host_memory_gb=128.0, remote_memory_gb=512.0)
    n = int(round(float(sd.local_blocks(params)) * params.batch_bins))
    assert 0 < n < params.batch_bins  # the scenario has both kinds of block
    share = int(sd.min_form(params)) * (params.bins - 1)

    @jax.jit  # one compile for both blocks
    def run(block):
        act = jnp.stack([share, 0, disagg.ORAM, block]).astype(jnp.int32)
        return rollout(ENV, lambda k, o, s, q: act, params, jax.random.PRNGKey(0), SMALL["max_steps"])[3]
    fits, spills = run(n - 1), run(n)
    # all-local: remote memory holds next to nothing (4e-5 of it, measured) and the network carries about 10^4
    # times fewer bytes than in the spilling block's run
    assert float(fits["remote_used_frac"].max()) < 1e-3 and float(fits["projected"].max()) == 0.0
    assert float(spills["remote_used_frac"].max()) > 0.1
    assert float(spills["net_bytes"].sum()) > 1e3 * float(fits["net_bytes"].sum())
    assert float(fits["batch"][0]) < float(spills["batch"][0])


def test_all_local_step_equals_the_offloading_system():
    """With nothing remote, a step costs what CacheRatio-v0's offloading model says (network time 0)."""
    params = small_params(remote_memory_gb=64.0)
    crp = cr.CacheRatio().default_params(model="opt-66b", hardware="a100-80gb-pcie4", host_memory_gb=128.0,
                                         prompt_len=512, gen_len=SMALL["gen_len"], max_steps=SMALL["max_steps"],
                                         bins=5, batch_bins=4)
    crp = dataclasses.replace(crp, wg=params.wg)
    tokens = jnp.asarray([300.0, 220.0, 0.0, 0.0])
    for share, first in ((0.0, True), (0.5, False), (1.0, False)):
        total, pcie, gpu, net, net_bytes = sd.step_time(params, jnp.int32(disagg.SECURE), 40.0, tokens, share, 0.0,
                                                        first)
        ref = cr.step_time(crp, 40.0, tokens[0], tokens[1], share, first)
        np.testing.assert_allclose([float(total), float(pcie), float(gpu)], [float(ref[0]), float(ref[1]),
                                                                            float(ref[2])], rtol=1e-5)
        assert float(net) == 0.0 and float(net_bytes) == 0.0


def test_remote_bytes_cross_the_network_with_their_mode_overhead():
    params = small_params()
    tokens = jnp.asarray([100.0, 100.0, 200.0, 300.0])
    m, k = params.model, float(sd.tokens_per_step(params))
    for mode in range(sd.N_MODES):
        total, pcie, gpu, net, net_bytes = sd.step_time(params, jnp.int32(mode), 40.0, tokens, 1.0, 0.5, False)
        half = (k - 1) / 2 + 1
        read = 40.0 * float(disagg.cache_bytes(m, 200.0, 300.0 + 0.5 * half))
        write = 40.0 * float(disagg.cache_bytes(m, 0.0, 1.0)) * 0.5
        expect = float(m.n_layers) * k * (read + write) * float(disagg.traffic(params.remote, mode))
        np.testing.assert_allclose(float(net_bytes), expect, rtol=1e-4)
        assert float(total) >= max(float(pcie), float(gpu), float(net)) * (1 - 1e-6)


# ---- bad input ----------------------------------------------------------------------


def test_registered_and_bad_input(tmp_path):
    assert "memgym/SecureDisagg-v0" in memgym.registered()
    env, params = memgym.make("SecureDisagg-v0", **SMALL)
    assert env.action_nvec(params) == (5, 5, len(disagg.MODES), 4)
    assert env.observation_size(params) == len(env.feature_names(params))
    with pytest.raises(ValueError, match="tenant"):
        ENV.default_params(tenant="paranoid")
    with pytest.raises(ValueError, match="remote_bins"):
        ENV.default_params(remote_bins=1)
    with pytest.raises(config.ConfigError, match="tiers.remote"):
        ENV.default_params(hardware="a100-80gb-pcie4")
    bad = tmp_path / "hw.yaml"
    bad.write_text("extends: a100-80gb-pcie4-tdmem\nname: bad\nsecure_remote: {oram_utilisation: 1.5}\n")
    with pytest.raises(config.ConfigError, match="oram_utilisation"):
        ENV.default_params(hardware=str(bad))
    with pytest.raises(ValueError, match="does not fit"):
        ENV.default_params(host_memory_gb=40.0, remote_memory_gb=1.0)


def test_flexgen_policy_search_runs_on_the_remote_tier():
    """An existing policy on the tier: FlexGen's LP + batch search with remote memory as its third tier."""
    from memgym.sim import offload
    from memgym.train.reproduce.tdmem import flexgen_on_remote

    params = small_params()
    out = flexgen_on_remote(params, modes=("rdma_slab", "secure", "oram"))
    assert out["secure"]["tokens_per_s"] >= out["rdma_slab"]["tokens_per_s"] > out["no_remote"]["tokens_per_s"]
    assert out["secure"]["remote_share_of_cache"] > 0 and out["oram"]["tokens_per_s"] <= out["secure"]["tokens_per_s"]
    # the solution's remote peak (FlexGen's disk term) fits what the mode can use
    for name in ("rdma_slab", "secure"):
        v = out[name]
        p = offload.from_percent(v["percent"], cpu_attention=0.0)
        bls, gbs, end = v["gbs"] * v["num_gpu_batches"], v["gbs"], float(params.prompt_len + params.gen_len)
        remote = float(offload.peak_terms(params.model, p, bls, gbs, params.prompt_len, end, 0.0)[4])
        assert remote <= float(disagg.usable_bytes(params.remote, disagg.MODES.index(name))) * (1 + 1e-3)


# ---- no NaN or inf from validated parameters (memgym.sim.validate's ranges; tests/test_nan_guard.py for the others)


def _field(name, field):
    lo, hi = field.lo, min(field.hi, {"prompt_len": 4096, "gen_len": 4096, "gbs": 64}.get(name, field.hi))
    if field.integer:
        return st.one_of(st.sampled_from([int(lo), int(hi)]), st.integers(int(lo), int(hi)))
    inner = (st.floats(math.log(lo), math.log(hi)).map(math.exp) if lo > 0
             else st.floats(lo, hi, width=32, allow_subnormal=False))
    return st.one_of(st.sampled_from([lo, hi]), inner)


DRAWN = ("host_memory_gb", "remote_memory_gb", "link_gbps", "rtt_us", "gpu_memory_gb", "pcie_gbps", "ctog_overlap",
         "prompt_len", "gen_len", "gbs", "tenant")
SCENARIO_DRAW = st.fixed_dictionaries({n: _field(n, validate.SCENARIO[n]) for n in DRAWN})


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(draws=st.lists(SCENARIO_DRAW, min_size=9, max_size=9))
def test_validated_extremes_never_give_nan(batch, draws):
    """Nine drawn systems per example, stacked like `batch` (so the module's compiled rollout is reused)."""
    built = []
    for d in draws:
        try:
            built.append(small_params(**d))
        except ValueError:  # does not fit, not representable in float32...: a clear error, not a NaN
            built.append(small_params())
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *built)
    r, _, _, met, _ = runner("random", SMALL["max_steps"])(stacked, jax.random.split(jax.random.PRNGKey(0), 9))
    r = np.asarray(r)
    assert np.isfinite(r).all() and (r > 0).all() and (r < 1e6).all()  # the guard (NaN -> 0) never fired
    for k in ("step_time_s", "tokens_per_s", "host_used_frac"):
        assert np.isfinite(np.asarray(met[k])).all(), k
