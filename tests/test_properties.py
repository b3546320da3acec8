"""Regime and monotonicity properties of the roofline core (compute- vs memory-bound regimes, monotone in batch and context), with
hypothesis.

One jitted function of (model spec, hardware spec, placement, batch, context, site) serves every example, so
the whole module compiles a handful of times.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memgym.sim import config, kernels, roofline, specs

SETTINGS = settings(max_examples=30, deadline=None)
RTOL = 1e-6  # float32 slack; the roofline uses only monotone operations, so this is rarely needed


def _placement(tier_of):
    """f[C, M]: every tensor class in one tier, or `tier_of` maps class -> tier."""
    p = np.zeros((len(specs.TENSORS), len(specs.TIERS)), np.float32)
    for c in range(len(specs.TENSORS)):
        p[c, tier_of.get(c, tier_of.get("default")) if isinstance(tier_of, dict) else tier_of] = 1.0
    return jnp.asarray(p)


ALL_HBM = _placement(specs.HBM)
# (model, hardware, site, placement): H2M2's HBM-side chip, once with everything in HBM and once with the
# KV cache in LPDDR (reached over the 960 GB/s link)
SCENARIOS = [
    ("gpt3-175b", "a100-80gb", specs.MAIN, ALL_HBM),
    ("llama2-70b", "h100-sxm", specs.MAIN, ALL_HBM),
    ("opt-30b", "a100-80gb", specs.MAIN, ALL_HBM),
    ("chinchilla-70b", "h2m2-hbm3-lpddr5x", specs.MAIN, ALL_HBM),
    ("llama2-70b", "h2m2-hbm3-lpddr5x", specs.MAIN, _placement({specs.KV: specs.LPDDR, "default": specs.HBM})),
]


@functools.cache
def scenario(i):
    name, hw_name, site, placement = SCENARIOS[i]
    return config.load_model(name), config.load_hardware(hw_name), site, placement


@functools.partial(jax.jit, static_argnums=(5,))
def iteration_times(m, hw, placement, batch, context, site):
    """Per-layer (decode, prefill) time: `batch` sequences at `context` tokens / a prompt of `context`."""
    dec = kernels.decode_kernels(m, batch, batch * context, kv_reads_per_query_head=hw.kv_reads_per_query_head)
    pre = kernels.prefill_kernels(m, batch, context)
    return jnp.stack([roofline.kernel_times(t, hw, site, placement)["time_s"].sum() for t in (dec, pre)])


def times(m, hw, site, placement, batch, context):
    f = jnp.float32
    return np.asarray(iteration_times(m, hw, placement, f(batch), f(context), site), np.float64)


scenarios = st.integers(0, len(SCENARIOS) - 1)
batches = st.integers(1, 512)
contexts = st.integers(1, 32768)
factors = st.floats(1.0, 16.0)


@SETTINGS
@given(i=scenarios, batch=batches, context=contexts)
def test_times_are_finite_and_positive(i, batch, context):
    t = times(*scenario(i), batch, context)
    assert np.isfinite(t).all() and (t > 0).all()


@SETTINGS
@given(i=scenarios, batch=batches, context=contexts, tier=st.integers(0, len(specs.TIERS) - 1), k=factors)
def test_more_bandwidth_is_never_slower(i, batch, context, tier, k):
    m, hw, site, placement = scenario(i)
    # the roofline reads each site's view of a tier (access_bw); scale the tier and every path to it
    scale = jnp.ones(len(specs.TIERS)).at[tier].set(k)
    faster = specs.replace(hw, tier_bw_bytes_per_s=hw.tier_bw_bytes_per_s * scale,
                           access_bw_bytes_per_s=hw.access_bw_bytes_per_s * scale[:, None])
    base, new = times(m, hw, site, placement, batch, context), times(m, faster, site, placement, batch, context)
    assert (new <= base * (1 + RTOL)).all()


@SETTINGS
@given(i=scenarios, batch=batches, context=contexts, site=st.integers(0, len(specs.SITES) - 1),
       unit=st.integers(0, len(specs.UNITS) - 1), k=factors)
def test_more_compute_is_never_slower(i, batch, context, site, unit, k):
    m, hw, run_site, placement = scenario(i)
    faster = specs.replace(hw, peak_flops_per_s=hw.peak_flops_per_s.at[site, unit].multiply(k))
    base, new = (times(m, h, run_site, placement, batch, context) for h in (hw, faster))
    assert (new <= base * (1 + RTOL)).all()


@SETTINGS
@given(i=scenarios, batch=batches, context=contexts, more_batch=st.integers(0, 512),
       more_context=st.integers(0, 32768))
def test_more_work_is_never_faster(i, batch, context, more_batch, more_context):
    args = scenario(i)
    base = times(*args, batch, context)
    assert (times(*args, batch + more_batch, context) >= base * (1 - RTOL)).all()
    assert (times(*args, batch, context + more_context) >= base * (1 - RTOL)).all()


@SETTINGS
@given(i=scenarios, batch=batches, context=contexts,
       field=st.sampled_from(["bytes_per_weight", "bytes_per_activation", "bytes_per_kv"]),
       k=st.sampled_from([1.0, 2.0, 4.0]))
def test_wider_elements_are_never_faster(i, batch, context, field, k):
    m, hw, site, placement = scenario(i)
    narrow = specs.replace(m, **{field: getattr(m, field) * 0.5})
    wide = specs.replace(m, **{field: getattr(m, field) * k})
    t_narrow, t_wide = (times(x, hw, site, placement, batch, context) for x in (narrow, wide))
    assert (t_wide >= t_narrow * (1 - RTOL)).all()


def test_scaling_bandwidth_and_peaks_changes_the_time():
    """Guard against a vacuous monotonicity test: a memory-bound decode gets faster with bandwidth, a
    compute-bound prefill with peak FLOPs."""
    m, hw, site, placement = scenario(0)
    base = times(m, hw, site, placement, 8, 2048)
    bw = times(m, specs.replace(hw, access_bw_bytes_per_s=hw.access_bw_bytes_per_s * 2), site, placement, 8, 2048)
    pk = times(m, specs.replace(hw, peak_flops_per_s=hw.peak_flops_per_s * 2), site, placement, 8, 2048)
    assert bw[0] < 0.6 * base[0] and pk[1] < 0.6 * base[1]


# ---- GQA and the GEMM ridge (ideal roofline, no overheads) -----------------------------------------------

ATTN = [kernels.K["attn_score"], kernels.K["attn_context"]]


@jax.jit
def decode_attention(m, hw, batch, context_sum, kv_reads):
    """(time, compute, memory) of decode QKᵀ + AV on the main site, everything in HBM."""
    table = kernels.decode_kernels(m, batch, context_sum, kv_reads_per_query_head=kv_reads)
    t = roofline.kernel_times(table, hw, specs.MAIN, ALL_HBM)
    return jnp.stack([t[k][jnp.asarray(ATTN)].sum() for k in ("time_s", "compute_s", "memory_s")])


@pytest.mark.parametrize("hw_name", ["a100-80gb", "h100-sxm"])
@pytest.mark.parametrize("batch,context", [(1, 4096), (32, 2048), (128, 8192)])
def test_gqa_cuts_decode_attention_time_by_about_g(hw_name, batch, context):
    gqa = config.load_model("llama2-70b")
    mha = specs.replace(gqa, n_kv_heads=gqa.n_heads)
    g = float(gqa.kv_group)
    hw = config.load_hardware(hw_name, ideal=True)
    hw = specs.replace(hw, tier_latency_s=hw.tier_latency_s * 0)  # `ideal` keeps the 0.5 us HBM latency
    b, ctx = jnp.float32(batch), jnp.float32(batch * context)
    t_mha, c_mha, m_mha = np.asarray(decode_attention(mha, hw, b, ctx, jnp.float32(0)), np.float64)
    t_gqa, c_gqa, m_gqa = np.asarray(decode_attention(gqa, hw, b, ctx, jnp.float32(0)), np.float64)
    assert m_mha > c_mha and m_gqa > c_gqa  # memory-bound
    # ~g: the KV reads shrink by g; the unfused score traffic (h·L elements) does not
    assert 0.9 * g <= t_mha / t_gqa <= g
    # a kernel that re-reads K/V once per query head gets no benefit
    t_gqa1 = float(decode_attention(gqa, hw, b, ctx, jnp.float32(1))[0])
    assert t_gqa1 == pytest.approx(t_mha, rel=1e-5)


def test_gqa_leaves_prefill_attention_flops_unchanged():
    gqa = config.load_model("llama2-70b")
    mha = specs.replace(gqa, n_kv_heads=gqa.n_heads)
    t_gqa, t_mha = (kernels.prefill_kernels(m, 4, 1024) for m in (gqa, mha))
    attn = ATTN + [kernels.K["softmax"]]
    np.testing.assert_array_equal(np.asarray(t_gqa.flops)[attn], np.asarray(t_mha.flops)[attn])
    # only the K and V projections (and RoPE on K) get cheaper
    qkv = kernels.K["qkv_proj"]
    d, dh, h, hkv = (float(x) for x in (gqa.d_model, gqa.d_head, gqa.n_heads, gqa.n_kv_heads))
    assert float(t_mha.flops[qkv] - t_gqa.flops[qkv]) == pytest.approx(2 * 4096 * d * 2 * (h - hkv) * dh, rel=1e-6)
    assert np.asarray(t_gqa.bytes)[:, specs.KV].sum() * 8 == pytest.approx(
        np.asarray(t_mha.bytes)[:, specs.KV].sum(), rel=1e-6)


GEMMS = [kernels.K[k] for k in ("qkv_proj", "o_proj", "ffn_up", "ffn_down")]


@jax.jit
@functools.partial(jax.vmap, in_axes=(None, None, 0))
def gemm_compute_bound(m, hw, tokens):
    t = roofline.kernel_times(kernels.decode_kernels(m, tokens, 0.0), hw, specs.MAIN, ALL_HBM)
    return t["compute_s"][jnp.asarray(GEMMS)] > t["memory_s"][jnp.asarray(GEMMS)]


@pytest.mark.parametrize("hw_name", ["a100-80gb", "h100-sxm", "t4"])
def test_gemm_turns_compute_bound_near_the_ridge(hw_name):
    """On the ideal roofline a T-token GEMM is memory-bound below T* ≈ P/BW (FLOP/B at fp16) and
    compute-bound above it (the exact crossing is a little above P/BW: activations add bytes)."""
    m = config.load_model("llama2-70b")
    hw = config.load_hardware(hw_name, ideal=True)
    ridge = float(hw.peak_flops_per_s[specs.MAIN, specs.MATRIX] / hw.access_bw_bytes_per_s[specs.HBM, specs.MAIN])
    tokens = jnp.arange(1.0, 1201.0)  # ridges: A100 153, T4 203, H100 295
    compute_bound = np.asarray(gemm_compute_bound(m, hw, tokens))  # [T, GEMM]
    for g in range(len(GEMMS)):
        cb = compute_bound[:, g]
        assert not cb[0] and cb[-1]
        assert (np.diff(cb.astype(int)) >= 0).all()  # switches once
        crossing = float(tokens[np.argmax(cb)])
        assert ridge <= crossing <= 1.15 * ridge
