"""CacheRatio-v0 and `sim.offload`: bytes conservation, capacity, the balance heuristic, FlexGen's LP
constraints, the released cost model's structure, GQA cache sizes, determinism and vmap parity."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import memgym
from memgym.envs import cache_ratio as cr
from memgym.envs.core import rollout
from memgym.policies import cache_ratio as pc
from memgym.sim import config, offload

ENV = cr.CacheRatio()
SMALL = {"max_steps": 4, "gen_len": 32, "bins": 5, "batch_bins": 4}


@functools.lru_cache(maxsize=None)
def small_params(**kw):
    return ENV.default_params(**dict(SMALL, **kw))


@functools.lru_cache(maxsize=None)
def runner(policy_name, max_steps):
    return jax.jit(lambda params, key: rollout(ENV, pc.POLICIES[policy_name], params, key, max_steps))


def run(policy_name, params, seed=0):
    return runner(policy_name, params.max_steps)(params, jax.random.PRNGKey(seed))


# ---- sim.offload -------------------------------------------------------------------------------------------


def test_cache_bytes_per_token_mha_and_gqa():
    opt = config.load_model("opt-30b")
    assert float(offload.kv_bytes_per_token_layer(opt)) == 4 * 7168  # 4h bytes at fp16
    assert float(offload.act_bytes_per_token_layer(opt)) == 2 * 7168  # half of K,V for MHA
    assert float(offload.recompute_flops_per_token_layer(opt)) == 4 * 7168**2  # two h×h projections
    llama = config.load_model("llama2-70b")  # GQA: 8 KV heads of 128 → K,V 4 KB, activation 16 KB
    assert float(offload.act_bytes_per_token_layer(llama)) / float(offload.kv_bytes_per_token_layer(llama)) == 4.0


def test_released_cost_model_structure():
    """T_gen = ctog + max(gtoc, dtoc, ctod, comp) with overlap 0; max of all with overlap 1."""
    m = config.load_model("opt-30b")
    p = offload.from_percent((20, 80, 0, 100, 0, 100))
    r0 = offload.fitted_rates("t4-flexgen", ctog_overlap=0.0)
    r1 = dataclasses.replace(r0, ctog_overlap=jnp.float32(1.0))
    d0 = offload.decode_layer(m, r0, p, 144.0, 48.0, 528.0, 0.0)
    d1 = offload.decode_layer(m, r1, p, 144.0, 48.0, 528.0, 0.0)
    rest = max(float(d0[k]) for k in ("gtoc_s", "dtoc_s", "ctod_s", "comp_s"))
    assert float(d0["layer_s"]) == pytest.approx(float(d0["ctog_s"]) + rest, rel=1e-6)
    assert float(d1["layer_s"]) == pytest.approx(max(float(d1["ctog_s"]), rest), rel=1e-6)
    # FlexGen's fitted T4: the CPU-attention term at the fitted CPU rate (4·bls·(s+n/2)·h1 / cpu_flops_real)
    expect = 4 * 144 * 528 * 7168 / float(offload.cpu_flops_real(r0, 48.0, m))
    assert float(d0["attn_cpu_s"]) == pytest.approx(expect, rel=1e-5)


def test_flexgen_lp_solution_satisfies_its_constraints():
    m = config.load_model("opt-30b")
    r = offload.fitted_rates("t4-flexgen")
    sol = offload.flexgen_lp(m, r, 160.0, 32.0, 512.0, 32.0, act_share=0.0, cpu_attention=1.0)
    assert sol.ok
    c, A, b, Aeq, beq, bounds = offload.lp_matrices(m, r, 160.0, 32.0, 512.0, 32.0, 0.0, 1.0)
    p = sol.placement()
    z = np.array([sol.wg, sol.wc, sol.cg, sol.cc, sol.hg, sol.hc, 0.0, 0.0])
    # every fraction in [0, 1], triples within 1, hidden never on disk
    assert np.all(z[:6] >= -1e-7) and np.all(z[:6] <= 1 + 1e-7)
    assert sol.wg + sol.wc <= 1 + 1e-7 and sol.cg + sol.cc <= 1 + 1e-7 and sol.hg + sol.hc == pytest.approx(1.0)
    # the peak-memory terms (recomputed by the JAX model, not read from the LP) fit mem_alpha × capacity
    peaks = np.asarray(offload.peak_terms(m, p, 160.0, 32.0, 512.0, 544.0, 0.0))
    caps = np.asarray(offload.capacities(r))
    assert np.all(peaks <= caps[[0, 0, 1, 1, 2]] * (1 + 1e-4))
    # the LP's objective is the model's own run time
    tps, pre, dec = offload.run_time(m, r, p, 160.0, 32.0, 512.0, 32.0)
    assert sol.total_s == pytest.approx(float(pre + dec), rel=1e-3)
    assert sol.tokens_per_s == pytest.approx(float(tps), rel=1e-3)
    # a policy that cannot fit is reported infeasible
    assert not offload.flexgen_lp(m, r, 160.0, 32.0, 512.0, 32.0, fixed=(100, 0, 100, 0, 100, 0)).ok


def test_balance_share_equalises_pcie_and_gpu_time():
    m = config.load_model("opt-30b")
    hw = config.load_hardware("a100-80gb-pcie4")
    for pcie_gbps, expect_interior in ((25.0, False), (3.0, False), (60.0, True)):
        r = offload.with_capacity(offload.roofline_rates(hw), pcie_gbps=pcie_gbps)
        p = offload.placement(0.9, 0.1, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0)
        bls = 64.0
        ctx = 1024.0
        a = float(offload.balance_share(m, r, p, bls, 16.0, ctx))
        d = offload.decode_layer(m, r, dataclasses.replace(p, act_share=jnp.float32(a)), bls, 16.0,
                                 (1 - a) * ctx, a * ctx, a)
        io, gpu = float(d["ctog_s"]), float(d["comp_s"])
        if 0.0 < a < 1.0:
            assert io == pytest.approx(gpu, rel=1e-3)
        elif a == 1.0:
            assert io >= gpu * (1 - 1e-4)
        else:
            assert io <= gpu * (1 + 1e-4)
        if expect_interior:
            assert 0.0 < a < 1.0, a


def test_hybridserve_plan_fits():
    m = config.load_model("opt-66b")
    r = offload.with_capacity(offload.roofline_rates(config.load_hardware("a100-80gb-pcie4")), cpu_gb=128.0)
    for gbs in (2.0, 8.0):
        p, bls = offload.hybridserve_plan(m, r, gbs, 512.0, 128.0)
        a = float(p.act_share)
        assert float(bls) > gbs
        assert bool(offload.fits(m, r, p, float(bls), gbs, 512.0, (1 - a) * 640, a * 640))
        assert not bool(offload.fits(m, r, p, float(bls) * 1.05, gbs, 512.0, (1 - a) * 640, a * 640))


# ---- the environment ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def params():
    return small_params()


@pytest.mark.parametrize("name", ["hybridserve", "random"])
def test_bytes_conservation_and_capacity(params, name):
    _, _, _, met, _ = run(name, params)
    met = jax.device_get(met)
    total = met["pcie_bytes"]
    parts = met["weights_bytes"] + met["cache_bytes"]
    # PCIe carries weights streamed + cache read + hidden states (a small, known remainder)
    hidden = total - parts
    m = params.model
    hid_per_step = float(m.n_layers * m.d_model * m.bytes_per_activation) * met["batch"] * float(
        cr.tokens_per_step(params))
    np.testing.assert_allclose(hidden[1:], hid_per_step[1:], rtol=1e-4)
    assert np.all(parts > 0)
    assert np.all(met["host_used_frac"] <= float(params.rates.mem_alpha) * (1 + 1e-5))
    assert np.all(met["gpu_used_frac"] <= float(params.rates.mem_alpha) * (1 + 1e-5))


def test_cache_bytes_follow_the_forms(params):
    """Cache bytes over PCIe per step = Σ layers · iterations · bls · (kv tokens · 4h + act tokens · 2h)."""
    _, _, _, met, acts = jax.device_get(run("random", params, seed=3))
    m = params.model
    kv_b, act_b = float(offload.kv_bytes_per_token_layer(m)), float(offload.act_bytes_per_token_layer(m))
    k = float(cr.tokens_per_step(params))
    kv = act = 0.0
    for t in range(params.max_steps):
        a = met["activation_share"][t]
        now = (float(params.prompt_len) if t == 0 else 0.0) + k
        half = (k - 1) / 2 + 1
        kv_mid = kv + (float(params.prompt_len) if t == 0 else 0.0) * (1 - a) + (1 - a) * half
        act_mid = act + (float(params.prompt_len) if t == 0 else 0.0) * a + a * half
        expect = float(m.n_layers) * k * met["batch"][t] * (kv_mid * kv_b + act_mid * act_b)
        assert met["cache_bytes"][t] == pytest.approx(expect, rel=1e-4)
        kv, act = kv + (1 - a) * now, act + a * now


def test_all_kv_reward_is_one_and_heuristic_beats_it(params):
    r_kv = np.asarray(run("all_kv", params)[0])
    np.testing.assert_allclose(r_kv, 1.0, rtol=1e-5)
    r_hs = np.asarray(run("hybridserve", params)[0])
    assert r_hs.mean() > 1.5  # OPT-66B over PCIe 4: I/O-bound, activations double the block


def test_oracle_is_the_best_static_policy(params):
    grid = np.asarray(jax.jit(pc.static_grid_rewards)(params))
    r = np.asarray(run("oracle", params)[0])
    assert r.mean() == pytest.approx(grid.max(), rel=1e-4)
    # every static policy is a grid point: the heuristic and all-KV cannot beat the oracle
    for name in ("hybridserve", "all_kv"):
        assert np.asarray(run(name, params)[0]).mean() <= r.mean() * (1 + 1e-5)


def test_interior_balance_when_pcie_is_fast():
    p = small_params(model="opt-30b", gpu_memory_gb=40.0)
    _, _, _, met, _ = run("hybridserve", p)
    shares = np.asarray(met["activation_share"])
    assert 0.0 < shares.mean() < 1.0


def test_projection_and_mask(params):
    obs, state = jax.jit(ENV.reset)(jax.random.PRNGKey(0), params)
    project = jax.jit(ENV.project)
    # first step, all-KV at the largest block: the block falls to one that fits all-KV
    act, projected = project(jnp.array([0, params.batch_bins - 1]), state, params)
    assert bool(projected) and int(act[0]) == 0 and int(act[1]) == 0
    mask = np.asarray(obs.action_mask)
    assert mask.shape == (params.bins + params.batch_bins,) and mask[:params.bins].any()
    # an out-of-range action is clipped and flagged
    _, projected = project(jnp.array([params.bins + 3, 0]), state, params)
    assert bool(projected)
    # a feasible action passes unchanged
    act, projected = project(jnp.array([params.bins - 1, params.batch_bins - 1]), state, params)
    assert not bool(projected) and act.tolist() == [params.bins - 1, params.batch_bins - 1]


def test_determinism_and_vmap_equals_loop():
    base = small_params()
    hosts = [96.0, 128.0, 160.0]
    derive = jax.jit(cr.derive_capacity)
    plist = [derive(dataclasses.replace(base, rates=offload.with_capacity(base.rates, cpu_gb=h)))
             for h in hosts]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *plist)
    keys = jax.random.split(jax.random.PRNGKey(5), len(hosts))
    fn = jax.jit(jax.vmap(lambda p, k: rollout(ENV, pc.random, p, k, base.max_steps)[0]))
    batched = np.asarray(fn(stacked, keys))
    loop = np.stack([np.asarray(runner("random", base.max_steps)(p, k)[0]) for p, k in zip(plist, keys)])
    np.testing.assert_allclose(batched, loop, rtol=1e-5)
    again = np.asarray(runner("random", base.max_steps)(plist[0], keys[0])[0])
    np.testing.assert_array_equal(again, loop[0])
    assert loop[2].mean() >= loop[0].mean() * 0.5  # finite, sane rewards across host sizes
    assert np.isfinite(batched).all()


def test_registered_and_bad_input():
    env, p = memgym.make("CacheRatio-v0", **SMALL)
    assert env.id == "CacheRatio-v0" and p.max_steps == 4
    with pytest.raises(ValueError):
        ENV.default_params(gen_len=2, max_steps=4)
    with pytest.raises(ValueError):
        ENV.default_params(model="opt-175b", host_memory_gb=16.0)


# ---- the convert action (opt-in: convert_bins >= 2) ----------------------------------------------------------

_step = jax.jit(ENV.step)
_project = jax.jit(ENV.project)
_step_time = jax.jit(cr.step_time)


@pytest.fixture(scope="module")
def cparams():
    return small_params(convert_bins=3)


def _all_activation_first_step(p, batch_bin):
    """State after a first step that stores every entry (prompt included) as an activation."""
    _, state = ENV.reset(jax.random.PRNGKey(0), p)
    obs, state, _, _, _, info = _step(jax.random.PRNGKey(1), state, jnp.array([p.bins - 1, batch_bin, 0]), p)
    assert not bool(info["projected"]) and float(state.act_tokens) > 0 and float(state.kv_tokens) == 0
    return obs, state


def test_convert_off_by_default_and_bin_zero_changes_nothing(params, cparams):
    p0 = small_params(convert_bins=0)
    assert ENV.action_nvec(p0) == (p0.bins, p0.batch_bins) and ENV.action_nvec(cparams) == (5, 4, 3)
    r_default = np.asarray(run("hybridserve", params)[0])
    np.testing.assert_array_equal(np.asarray(run("hybridserve", p0)[0]), r_default)
    # with the convert action the heuristic converts nothing, and the rollout is the same one
    r, _, _, met, acts = jax.device_get(run("hybridserve", cparams))
    assert acts.shape == (cparams.max_steps, 3) and np.all(acts[:, 2] == 0)
    np.testing.assert_array_equal(met["converted_tokens"], 0.0)
    np.testing.assert_allclose(r, r_default, rtol=1e-6)
    assert set(met) == set(ENV.metric_names)
    obs, _ = ENV.reset(jax.random.PRNGKey(0), cparams)
    assert obs.action_mask.shape == (5 + 4 + 3,) and obs.features.shape == (12,)
    for bad in (1, -1, 2.5, True):
        with pytest.raises(ValueError, match="convert_bins"):
            ENV.default_params(**SMALL, convert_bins=bad)


def test_convert_conserves_tokens(cparams):
    _, s1 = _all_activation_first_step(cparams, 0)  # the all-KV block: converting everything fits
    out = []
    for c in range(3):
        _, s2, _, _, _, info = _step(jax.random.PRNGKey(2), s1, jnp.array([cparams.bins - 1, 0, c]), cparams)
        assert not bool(info["projected"])
        home = offload.peak_terms(cparams.model, cr.system_placement(cparams, 0.0), s2.batch, cparams.gbs,
                                  cparams.prompt_len, s2.kv_tokens, s2.act_tokens)[2]  # host, decode peak
        out.append((float(s2.kv_tokens), float(s2.act_tokens), float(info["metrics"]["converted_tokens"]),
                    float(home), float(info["metrics"]["host_used_frac"])))
    act1 = float(s1.act_tokens)
    m = cparams.model
    grow = float(m.n_layers * (offload.kv_bytes_per_token_layer(m) - offload.act_bytes_per_token_layer(m)))
    for c, (kv, act, conv, home, _) in enumerate(out):
        assert conv == pytest.approx(act1 * c / 2)
        assert kv + act == pytest.approx(out[0][0] + out[0][1])  # tokens are conserved
        assert act == pytest.approx(out[0][1] - conv) and kv == pytest.approx(out[0][0] + conv)
        # host memory grows by (K,V - activation) bytes per converted token, layer and sequence
        assert home - out[0][3] == pytest.approx(float(s1.batch) * conv * grow, rel=1e-3, abs=1e4)
    assert out[2][2] > 0 and out[0][4] < out[1][4] < out[2][4]


def test_convert_writes_back_and_later_reads_kv(cparams):
    _, s1 = _all_activation_first_step(cparams, 0)
    m = cparams.model
    args = (cparams, s1.batch, s1.kv_tokens, s1.act_tokens, jnp.float32(1.0), jnp.bool_(False))
    t0, _, _, b0 = _step_time(*args, jnp.float32(0.0))
    t1, _, _, b1 = _step_time(*args, s1.act_tokens)
    expect = float(m.n_layers * s1.batch * s1.act_tokens * offload.kv_bytes_per_token_layer(m))
    assert float(b1["d2h_bytes"] - b0["d2h_bytes"]) == pytest.approx(expect, rel=1e-4)
    assert float(t1) >= float(t0)
    assert float(b1["pcie_bytes"]) == float(b0["pcie_bytes"])  # this step still reads them as activations
    # a slow write-back link exposes the write: the step takes longer
    slow = dataclasses.replace(cparams, rates=dataclasses.replace(
        cparams.rates, gtoc_cache_bytes_per_s=cparams.rates.gtoc_cache_bytes_per_s / 100))
    times, states = [], []
    for c in (0, 2):
        _, s2, _, _, _, info = _step(jax.random.PRNGKey(2), s1, jnp.array([cparams.bins - 1, 0, c]), slow)
        times.append(float(info["metrics"]["step_time_s"]))
        states.append(s2)
    assert times[1] > times[0] * 1.01
    # the next step reads the converted entries as K,V: more cache bytes over PCIe
    cache = [float(_step(jax.random.PRNGKey(3), s, jnp.array([cparams.bins - 1, 0, 0]), cparams)[5]["metrics"]
                   ["cache_bytes"]) for s in states]
    assert cache[1] > cache[0] * 1.05


def test_convert_mask_and_projection(cparams):
    obs, s1 = _all_activation_first_step(cparams, cparams.batch_bins - 1)  # the all-activation block: tight
    conv_mask = np.asarray(obs.action_mask)[-3:]
    assert conv_mask[0] and not conv_mask[2]
    act, projected = _project(jnp.array([cparams.bins - 1, cparams.batch_bins - 1, 2]), s1, cparams)
    assert bool(projected) and int(act[2]) < 2 and conv_mask[int(act[2])]
    _, _, _, _, _, info = _step(jax.random.PRNGKey(2), s1, jnp.array([cparams.bins - 1, 0, 2]), cparams)
    assert bool(info["projected"])
    assert float(info["metrics"]["converted_tokens"]) == pytest.approx(float(s1.act_tokens) * int(act[2]) / 2)
    assert float(info["metrics"]["host_used_frac"]) <= float(cparams.rates.mem_alpha) * (1 + 1e-5)
    act, projected = _project(jnp.array([cparams.bins - 1, cparams.batch_bins - 1, 0]), s1, cparams)
    assert not bool(projected) and act.tolist() == [cparams.bins - 1, cparams.batch_bins - 1, 0]


def test_convert_random_rollouts_stay_within_memory(cparams):
    keys = jax.random.split(jax.random.PRNGKey(7), 8)
    fn = jax.jit(jax.vmap(lambda k: rollout(ENV, pc.random, cparams, k, 2 * cparams.max_steps)))
    r, _, _, met, acts = jax.device_get(fn(keys))
    assert acts.shape == (8, 2 * cparams.max_steps, 3) and np.isfinite(r).all()
    assert met["converted_tokens"].max() > 0  # random does convert
    alpha = float(cparams.rates.mem_alpha)
    assert np.all(met["host_used_frac"] <= alpha * (1 + 1e-5))
    assert np.all(met["gpu_used_frac"] <= alpha * (1 + 1e-5))
