"""Exact invariants of the model presets and the kernel table (parameter counts, KV bytes per token, FLOP identities).

Counting identities run in float64 (`jax.enable_x64` inside the test, spec leaves cast to float64), so they
hold to rtol 1e-12; the hot path stays float32.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from memgym.sim import config, kernels, specs

MODELS = ("gpt3-175b", "opt-30b", "opt-66b", "opt-175b", "chinchilla-70b", "llama2-7b", "llama2-70b",
          "yi-34b")
EXACT = 1e-12
MM = kernels.MATMUL
ATTN = [kernels.K["attn_score"], kernels.K["attn_context"]]


def reference(name, key):
    # float(): PyYAML reads `69.0e9` (no exponent sign, YAML 1.1) as a string
    return float(yaml.safe_load((config.CONFIG_DIR / "models" / f"{name}.yaml").read_text())[key])


def spec64(name, **changes):
    """The preset with float64 leaves; call inside `jax.enable_x64(True)`."""
    m = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), config.load_model(name))
    return dataclasses.replace(m, **{k: jnp.asarray(v, jnp.float64) for k, v in changes.items()})


def f64(x):
    return np.asarray(x, np.float64)


def test_all_model_presets_are_covered():
    assert sorted(MODELS) == config.presets("models")


def test_specs_are_float32_by_default():
    m = config.load_model("llama2-70b")
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(m))
    assert kernels.decode_kernels(m, 4, 4096).flops.dtype == jnp.float32
    with jax.enable_x64(True):
        assert kernels.decode_kernels(spec64("llama2-70b"), 4, 4096).flops.dtype == jnp.float64


@pytest.mark.parametrize("name", MODELS)
def test_param_count_and_kv_bytes_match_reference(name):
    # Chinchilla-70B: the published dims (80 layers, d 8192, 64 heads, FFN 4d, tied embedding) give ~64.7 B
    # parameters, not the 70 B label; the preset's reference holds 64.7e9.
    m = config.load_model(name)
    assert float(specs.param_count(m)) == pytest.approx(reference(name, "param_count_reference"), rel=0.01)
    assert float(specs.kv_bytes_per_token(m)) == pytest.approx(
        reference(name, "kv_bytes_per_token_fp16_reference"), rel=0.01)


def test_gqa_kv_is_eight_times_smaller_than_mha_at_same_width():
    llama, chinchilla = config.load_model("llama2-70b"), config.load_model("chinchilla-70b")
    assert float(specs.kv_bytes_per_token(chinchilla)) / float(specs.kv_bytes_per_token(llama)) == 8.0


@pytest.mark.parametrize("name", ["llama2-70b", "opt-30b", "gpt3-175b", "chinchilla-70b", "llama2-7b"])
@pytest.mark.parametrize("context", [1, 2048, 123457])
def test_decode_flops_per_token_identity(name, context):
    """Σ matrix-multiply FLOPs × layers = 2·N_nonembed + 4·n_layers·d·L for one token at context L."""
    with jax.enable_x64(True):
        m = spec64(name)
        table = kernels.decode_kernels(m, batch=1, context_sum=context)
        got = f64(table.flops)[MM].sum() * f64(m.n_layers)
        want = 2 * f64(specs.nonembed_matrix_params(m)) + 4 * f64(m.n_layers * m.d_model) * context
    np.testing.assert_allclose(got, want, rtol=EXACT)


@pytest.mark.parametrize("name,g", [("gpt3-175b", 1), ("chinchilla-70b", 1), ("llama2-70b", 8)])
@pytest.mark.parametrize("dtype", ["fp16", "int8"])
def test_decode_attention_arithmetic_intensity(name, g, dtype):
    """Decode attention does 2·g/b_kv FLOPs per KV byte, whatever the batch and context."""
    with jax.enable_x64(True):
        m = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), config.load_model(name, dtype=dtype))
        for batch, ctx_sum in [(1, 100.0), (64, 64 * 3000.0)]:
            t = kernels.decode_kernels(m, batch, ctx_sum, kv_reads_per_query_head=0.0)
            ai = f64(t.flops)[ATTN].sum() / f64(t.bytes)[ATTN, specs.KV].sum()
            np.testing.assert_allclose(ai, 2 * g / config.DTYPE_BYTES[dtype], rtol=EXACT)
            # a kernel that re-reads K/V for every query head loses the GQA reuse
            t1 = kernels.decode_kernels(m, batch, ctx_sum, kv_reads_per_query_head=1.0)
            ai1 = f64(t1.flops)[ATTN].sum() / f64(t1.bytes)[ATTN, specs.KV].sum()
            np.testing.assert_allclose(ai1, 2 / config.DTYPE_BYTES[dtype], rtol=EXACT)


@pytest.mark.parametrize("name", ["llama2-70b", "opt-66b", "llama2-7b"])
@pytest.mark.parametrize("batch,chunk,prefix,causal", [(1, 1, 0, True), (8, 2048, 0, True), (3, 512, 1536, True),
                                                       (4, 1000, 0, False), (2, 256, 4096, False)])
def test_prefill_flops_identity(name, batch, chunk, prefix, causal):
    """GEMM + attention FLOPs = 2·N·T + 4·n_layers·d·Σ pairs; causal pairs per sequence s·P + s(s+1)/2."""
    with jax.enable_x64(True):
        m = spec64(name)
        t = kernels.prefill_kernels(m, batch, chunk, prefix=prefix, causal=causal)
        got = f64(t.flops)[MM].sum() * f64(m.n_layers)
        pairs = batch * (chunk * prefix + (chunk * (chunk + 1) / 2 if causal else chunk * chunk))
        tokens = batch * chunk
        want = 2 * f64(specs.nonembed_matrix_params(m)) * tokens + 4 * f64(m.n_layers * m.d_model) * pairs
    np.testing.assert_allclose(got, want, rtol=EXACT)


def test_prefill_of_one_token_after_a_prefix_equals_decode():
    with jax.enable_x64(True):
        m = spec64("llama2-70b")
        pre = kernels.prefill_kernels(m, 1, 1, prefix=999)
        dec = kernels.decode_kernels(m, 1, 1000)
    np.testing.assert_allclose(f64(pre.flops)[MM], f64(dec.flops)[MM], rtol=EXACT)
    np.testing.assert_allclose(f64(pre.bytes)[:, specs.KV], f64(dec.bytes)[:, specs.KV], rtol=EXACT)


@pytest.mark.parametrize("name", ["llama2-70b", "opt-30b", "chinchilla-70b"])
@pytest.mark.parametrize("tp", [2, 4, 8])
@pytest.mark.parametrize("phase", ["decode", "prefill"])
def test_tensor_parallelism_divides_work_and_adds_two_allreduces(name, tp, phase):
    with jax.enable_x64(True):
        m = spec64(name)
        if phase == "decode":
            one, par = (kernels.decode_kernels(m, 16, 16 * 1024.0, tp=t) for t in (1, tp))
            tokens = 16
        else:
            one, par = (kernels.prefill_kernels(m, 2, 512, tp=t) for t in (1, tp))
            tokens = 2 * 512
        flops1, flops_t = f64(one.flops), f64(par.flops)
        w1, wt = f64(one.bytes)[:, specs.WEIGHTS], f64(par.bytes)[:, specs.WEIGHTS]
        bias = f64(m.has_bias)
        d, ba = f64(m.d_model), f64(m.bytes_per_activation)
        bw = f64(m.bytes_per_weight)
    np.testing.assert_allclose(flops_t[MM] * tp, flops1[MM], rtol=EXACT)
    # weights split exactly; only the row-parallel biases (O and FFN-down outputs, d each) are replicated
    np.testing.assert_allclose(wt[MM].sum() * tp, w1[MM].sum() + (tp - 1) * bias * 2 * d * bw, rtol=EXACT)
    assert not f64(one.comm_bytes).any()
    comm = f64(par.comm_bytes)
    assert np.flatnonzero(comm).tolist() == [kernels.K["allreduce_attn"], kernels.K["allreduce_ffn"]]
    np.testing.assert_allclose(comm[comm > 0], 2 * (tp - 1) / tp * tokens * d * ba, rtol=EXACT)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dtype", ["fp16", "int8", "fp32"])
def test_weight_bytes_per_layer(name, dtype):
    """Matrix kernels read b_w·W per layer (plus biases); the whole table reads the layer's weights once."""
    with jax.enable_x64(True):
        m = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), config.load_model(name, dtype=dtype))
        t = kernels.decode_kernels(m, 8, 8 * 512.0)
        w = f64(t.bytes)[:, specs.WEIGHTS]
        b_w = config.DTYPE_BYTES[dtype]
        d, qkv = f64(m.d_model), f64((m.n_heads + 2 * m.n_kv_heads) * m.d_head)
        biases = f64(m.has_bias) * (qkv + d + f64((m.n_ffn_matrices - 1) * m.d_ff) + d)
        np.testing.assert_allclose(w[MM].sum(), b_w * (f64(specs.matrix_params_per_layer(m)) + biases), rtol=EXACT)
        np.testing.assert_allclose(w.sum(), f64(specs.weight_bytes(m)) / f64(m.n_layers), rtol=EXACT)


def test_weights_per_layer_is_12_d_squared_for_mha_with_4d_ffn():
    with jax.enable_x64(True):
        m = spec64("gpt3-175b")
        assert f64(specs.matrix_params_per_layer(m)) == 12 * f64(m.d_model) ** 2


@pytest.mark.parametrize("name", ["llama2-70b", "gpt3-175b"])
def test_kv_append_writes_one_token_of_kv_per_sequence(name):
    with jax.enable_x64(True):
        m = spec64(name)
        t = kernels.decode_kernels(m, 8, 8 * 100.0)
        got = f64(t.bytes)[kernels.K["kv_append"], specs.KV] * f64(m.n_layers)
        np.testing.assert_allclose(got, 8 * f64(specs.kv_bytes_per_token(m)), rtol=EXACT)


@pytest.mark.parametrize("name", ["llama2-70b", "gpt3-175b"])
def test_lm_head_is_vocabulary_parallel(name):
    """Under TP t each rank computes V/t logits per token (FLOPs and weight bytes fall as 1/t) and a ring
    all-gather brings (t-1)/t of the T·V logits to every rank (Megatron / vLLM)."""
    with jax.enable_x64(True):
        m = spec64(name)
        f1, b1, c1 = (f64(x) for x in kernels.lm_head(m, 16, tp=1))
        for tp in (2, 4, 8):
            ft, bt, ct = (f64(x) for x in kernels.lm_head(m, 16, tp=tp))
            np.testing.assert_allclose(ft * tp, f1, rtol=EXACT)
            np.testing.assert_allclose(bt[specs.WEIGHTS] * tp, b1[specs.WEIGHTS], rtol=EXACT)
            np.testing.assert_allclose(ct, (tp - 1) / tp * 16 * f64(m.vocab_size * m.bytes_per_activation),
                                       rtol=EXACT)
    assert c1 == 0.0


@pytest.mark.parametrize("name", ["llama2-70b", "gpt3-175b"])
@pytest.mark.parametrize("kv_reads", [0.0, 1.0])
def test_fused_decode_attention_reads_exactly_the_kv(name, kv_reads):
    """Fused decode attention moves the KV it reads plus Q in and O out, nothing else; unfused adds the
    scores written and read back (4·h·ΣL activation elements) and launches softmax and AV on their own."""
    with jax.enable_x64(True):
        m = spec64(name)
        batch, ctx = 8, 8 * 3000.0
        fused = kernels.decode_kernels(m, batch, ctx, kv_reads_per_query_head=kv_reads)
        unfused = kernels.decode_kernels(m, batch, ctx, kv_reads_per_query_head=kv_reads, fused_attention=0.0)
        attn = [kernels.K["attn_score"], kernels.K["softmax"], kernels.K["attn_context"]]
        reads = 1 + kv_reads * (f64(m.kv_group) - 1)
        kv = 2 * ctx * reads * f64(m.n_kv_heads * m.d_head * m.bytes_per_kv)
        qo = 2 * batch * f64(m.n_heads * m.d_head * m.bytes_per_activation)
        fb, ub = f64(fused.bytes)[attn], f64(unfused.bytes)[attn]
        np.testing.assert_allclose(fb[:, specs.KV].sum(), kv, rtol=EXACT)
        np.testing.assert_allclose(fb.sum(), kv + qo, rtol=EXACT)
        np.testing.assert_allclose(ub.sum() - fb.sum(), 4 * f64(m.n_heads) * ctx * f64(m.bytes_per_activation),
                                   rtol=EXACT)
        np.testing.assert_allclose(f64(fused.flops), f64(unfused.flops), rtol=EXACT)
    assert f64(fused.launches)[attn].tolist() == [1.0, 0.0, 0.0]
    assert f64(unfused.launches)[attn].tolist() == [1.0, 1.0, 1.0]
