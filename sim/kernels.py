"""The per-kernel FLOPs and bytes of one decoder layer, for decode and prefill.

Formulas count the minimum DRAM bytes of unfused kernels; a multiply-add is 2 FLOPs. Choices left open:

- Causal prefill attention counts the pairs a causal mask keeps exactly: a chunk of s tokens after P cached
  tokens attends to s·P + s(s+1)/2 keys (`causal=True`, the default); `causal=False` counts s·(P+s).
- Prefill attention is FlashAttention-style: K and V are read once per sequence, scores stay on chip.
  Decode attention is fused by default (`fused_attention=1`, what FlashDecoding/PagedAttention-class kernels
  do): QKᵀ, softmax and AV are one kernel that reads Q, K and V and writes O, so its DRAM bytes are exactly
  the KV read plus Q and O, and softmax and AV pay no launch of their own. `fused_attention=0` is the unfused
  variant (three kernels; the scores, h·ΣL elements, are written and read back as activations); hardware
  presets choose with `calibration.decode_attention: fused | unfused`.
- Bias adds and norm gains are vector work: the matrix kernels count 2·K·N FLOPs per token exactly, so the
  identity FLOPs/token = 2·N_matrix + 4·L·d·ctx holds; bias FLOPs (one per output element) sit in the
  residual kernels, their bytes in the matrix kernels' weights.
- GQA: the QKᵀ and AV kernels read each KV head once (`kv_reads_per_query_head = 0`), or once per query head
  (`= 1`, a per-head GEMV kernel with no reuse across the group); the hardware spec chooses.
- Tensor parallelism t divides h, h_kv (never below one KV head) and d_ff, and adds two ring all-reduces.
- Norms run on their own by default (`fused_norm=0`: eager PyTorch). `fused_norm=1` is what serving engines
  run (vLLM's `fused_add_rms_norm`, TensorRT-LLM, TurboMind): each norm runs inside the residual add before
  it (the attention norm inside the previous layer's FFN residual), so it pays no launch of its own and does
  not read the sum back: its activation bytes drop from 2·T·d to T·d (written once).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .specs import ACTIVATIONS, KV, MATRIX, MATVEC, TENSORS, VECTOR, WEIGHTS, ModelSpec

KERNELS = (
    "norm_attn", "qkv_proj", "rope", "kv_append", "attn_score", "softmax", "attn_context", "o_proj",
    "allreduce_attn", "residual_attn", "norm_ffn", "ffn_up", "ffn_act", "ffn_down", "allreduce_ffn",
    "residual_ffn",
)
N_KERNELS = len(KERNELS)
K = {name: i for i, name in enumerate(KERNELS)}

SUBLAYERS = ("attention", "qkv", "fc")  # H2M2's three sublayers, in its priority order
ATTENTION, QKV, FC = range(3)
# Which H2M2 sublayer each kernel belongs to. The KV append belongs to attention (KV lives where its heads do).
SUBLAYER_OF = np.array([QKV, QKV, QKV, ATTENTION, ATTENTION, ATTENTION, ATTENTION, FC,
                        FC, FC, FC, FC, FC, FC, FC, FC])
MATMUL = np.array([name in ("qkv_proj", "attn_score", "attn_context", "o_proj", "ffn_up", "ffn_down")
                   for name in KERNELS])
_UNIT_DECODE = (VECTOR, MATRIX, VECTOR, VECTOR, MATVEC, VECTOR, MATVEC, MATRIX,
                VECTOR, VECTOR, VECTOR, MATRIX, VECTOR, MATRIX, VECTOR, VECTOR)
_UNIT_PREFILL = tuple(MATRIX if k in (K["attn_score"], K["attn_context"]) else u
                      for k, u in enumerate(_UNIT_DECODE))


@dataclasses.dataclass(frozen=True)
class KernelTable:
    """One decoder layer's kernels. flops f[K]; bytes f[K, len(TENSORS)]; comm_bytes f[K] (all-reduce);
    rows: tokens fed to the matrix units (for systolic utilisation); unit: static unit class per kernel;
    launches f[K] or None (= 1 each): 1 where the kernel is launched on its own, 0 where it runs inside
    another kernel (fused decode attention) and pays no fixed overhead."""

    flops: jax.Array
    bytes: jax.Array
    comm_bytes: jax.Array
    rows: jax.Array
    unit: tuple = dataclasses.field(default=_UNIT_DECODE)
    launches: jax.Array | None = None

    def scale(self, share):
        """The part of the table a site runs when it takes `share` of the heads/columns."""
        return dataclasses.replace(self, flops=self.flops * share, bytes=self.bytes * share,
                                   comm_bytes=self.comm_bytes * share)


jax.tree_util.register_dataclass(KernelTable, data_fields=["flops", "bytes", "comm_bytes", "rows", "launches"],
                                 meta_fields=["unit"])


def _dtype(m: ModelSpec):
    """The spec's float type: float32 in the hot path, float64 when a test builds the spec in x64."""
    return jnp.result_type(m.d_model, jnp.float32)


def _dims(m: ModelSpec, t):
    """Per-device widths at tensor parallelism t: (query heads, K/V heads, FFN width, up matrices, Q width,
    QKV width)."""
    h = m.n_heads / t
    hkv = jnp.maximum(m.n_kv_heads / t, 1.0)
    return h, hkv, m.d_ff / t, m.n_ffn_matrices - 1.0, h * m.d_head, (h + 2 * hkv) * m.d_head


def _weights(m: ModelSpec, t) -> dict:
    """Weight bytes per kernel (kernels that read weights only) at tensor parallelism t: `_table`'s weights
    column, and `weight_bytes`' entries."""
    d = m.d_model
    _, _, dff, nup, q_width, qkv_width = _dims(m, t)
    bw, bias = m.bytes_per_weight, m.has_bias
    return {"norm_attn": m.norm_params * d * bw, "norm_ffn": m.norm_params * d * bw,
            "qkv_proj": (d * qkv_width + bias * qkv_width) * bw, "o_proj": (q_width * d + bias * d) * bw,
            "ffn_up": (nup * d * dff + bias * nup * dff) * bw, "ffn_down": (dff * d + bias * d) * bw}


def weight_bytes(m: ModelSpec, tp=1) -> jax.Array:
    """f[K]: weight bytes of each kernel of one layer, the same values as a table's weights column
    (`decode_kernels(m, ...).bytes[:, WEIGHTS]`) without building the table (footprints need only these)."""
    f32 = _dtype(m)
    w = _weights(m, jnp.asarray(tp, f32))
    zero = jnp.zeros((), f32)
    return jnp.stack([jnp.broadcast_to(jnp.asarray(w.get(name, zero), f32), ()) for name in KERNELS], axis=-1)


def _table(m: ModelSpec, tokens, attn_pairs, kv_tokens_read, tp, unit, attention_activations, fused=1.0,
           fused_norm=0.0):
    """Assemble the table. tokens T; attn_pairs Σ(query × key) pairs; kv_tokens_read K/V rows read;
    `attention_activations(h)` gives the activation bytes of (attn_score, softmax, attn_context); `fused`:
    softmax and AV run inside the QKᵀ kernel (1) or as kernels of their own (0); `fused_norm`: each norm
    runs inside the residual add before it (1) or on its own (0).
    Built from per-kernel scalars stacked once (no scatter chains: this runs inside every env step)."""
    f32 = _dtype(m)
    tokens, attn_pairs, kv_tokens_read = (jnp.asarray(x, f32) for x in (tokens, attn_pairs, kv_tokens_read))
    t = jnp.asarray(tp, f32)
    d, dh = m.d_model, m.d_head
    h, hkv, dff, nup, q_width, qkv_width = _dims(m, t)
    ba, bkv = m.bytes_per_activation, m.bytes_per_kv
    bias = m.has_bias
    T = tokens

    flops, a, kv, comm = {}, {}, {}, {}
    w = _weights(m, t)

    def put(arr, name, value):
        arr[name] = value
        return arr

    # norms: read and write T·d activations, read the gains (and biases); fused into the residual add, the
    # read of the sum is gone (the add kernel holds it on chip) and only the normed output is written
    fused_norm = jnp.asarray(fused_norm, f32)
    for name in ("norm_attn", "norm_ffn"):
        flops = put(flops, name, 7.0 * T * d)
        a = put(a, name, (2.0 - fused_norm) * T * d * ba)
    # QKV projection
    flops = put(flops, "qkv_proj", 2.0 * T * d * qkv_width)
    a = put(a, "qkv_proj", T * (d + qkv_width) * ba)
    # RoPE on Q and K
    flops = put(flops, "rope", m.uses_rope * 3.0 * T * (h + hkv) * dh)
    a = put(a, "rope", m.uses_rope * 2.0 * T * (h + hkv) * dh * ba)
    # KV append: write this step's K and V
    kv = put(kv, "kv_append", 2.0 * T * hkv * dh * bkv)
    # attention: QKᵀ and AV, 2·h·d_h FLOPs per (query, key) pair each
    flops = put(flops, "attn_score", 2.0 * h * dh * attn_pairs)
    flops = put(flops, "attn_context", 2.0 * h * dh * attn_pairs)
    kv = put(kv, "attn_score", kv_tokens_read * hkv * dh * bkv)
    kv = put(kv, "attn_context", kv_tokens_read * hkv * dh * bkv)
    flops = put(flops, "softmax", 5.0 * h * attn_pairs)
    # O projection
    flops = put(flops, "o_proj", 2.0 * T * q_width * d)
    a = put(a, "o_proj", T * (q_width + d) * ba)
    # FFN
    flops = put(flops, "ffn_up", 2.0 * nup * T * d * dff)
    a = put(a, "ffn_up", T * (d + nup * dff) * ba)
    flops = put(flops, "ffn_act", m.act_flops_per_elem * T * dff)
    a = put(a, "ffn_act", m.n_ffn_matrices * T * dff * ba)
    flops = put(flops, "ffn_down", 2.0 * T * dff * d)
    a = put(a, "ffn_down", T * (dff + d) * ba)
    # residual adds (and the bias adds of the preceding matrices)
    flops = put(flops, "residual_attn", T * d + bias * T * (qkv_width + d))
    flops = put(flops, "residual_ffn", T * d + bias * T * (nup * dff + d))
    a = put(a, "residual_attn", 3.0 * T * d * ba)
    a = put(a, "residual_ffn", 3.0 * T * d * ba)
    # tensor-parallel ring all-reduce, 2(t-1)/t of the layer output per device
    ar = 2.0 * (t - 1.0) / t * T * d * ba
    comm = {"allreduce_attn": ar, "allreduce_ffn": ar}
    a["attn_score"], a["softmax"], a["attn_context"] = attention_activations(h)

    zero = jnp.zeros_like(tokens)

    def vec(parts):
        return jnp.stack([jnp.broadcast_to(jnp.asarray(parts.get(name, zero), f32), zero.shape)
                          for name in KERNELS], axis=-1)

    classes = {WEIGHTS: w, ACTIVATIONS: a, KV: kv}
    nbytes = jnp.stack([vec(classes.get(c, {})) for c in range(len(TENSORS))], axis=-1)
    fused = jnp.asarray(fused, f32)
    own = ("softmax", "attn_context", "norm_attn", "norm_ffn")
    launches = vec({"softmax": 1.0 - fused + zero, "attn_context": 1.0 - fused + zero,
                    "norm_attn": 1.0 - fused_norm + zero, "norm_ffn": 1.0 - fused_norm + zero,
                    **{k: 1.0 + zero for k in KERNELS if k not in own}})
    return KernelTable(flops=vec(flops), bytes=nbytes, comm_bytes=vec(comm), rows=tokens, unit=unit,
                       launches=launches)


def decode_kernels(m: ModelSpec, batch, context_sum, tp=1, kv_reads_per_query_head=0.0,
                   fused_attention=1.0, fused_norm=0.0) -> KernelTable:
    """One decode iteration of one layer: `batch` sequences, one new token each, ΣL = `context_sum` cached
    tokens attended (per layer). Fused attention (1, the default) keeps the scores on chip; unfused (0)
    writes and reads them once each (QKᵀ writes, softmax reads and writes, AV reads). `fused_norm` (0 by
    default, 1 for serving engines) runs each norm inside the residual add before it."""
    f = _dtype(m)
    batch = jnp.asarray(batch, f)
    context_sum = jnp.asarray(context_sum, f)
    reads = 1.0 + jnp.asarray(kv_reads_per_query_head, f) * (m.kv_group - 1.0)
    unfused = 1.0 - jnp.asarray(fused_attention, f)
    ba = m.bytes_per_activation

    def attention_activations(h):
        scores = unfused * h * context_sum * ba
        q_bytes = batch * h * m.d_head * ba
        return q_bytes + scores, 2.0 * scores, scores + q_bytes

    return _table(m, batch, context_sum, context_sum * reads, tp, _UNIT_DECODE, attention_activations,
                  fused=fused_attention, fused_norm=fused_norm)


def prefill_kernels(m: ModelSpec, batch, chunk, prefix=0.0, tp=1, causal=True, fused_norm=0.0) -> KernelTable:
    """A prefill chunk of `chunk` tokens for each of `batch` sequences after `prefix` cached tokens
    (`fused_norm` as in `decode_kernels`)."""
    f = _dtype(m)
    batch, chunk, prefix = (jnp.asarray(x, f) for x in (batch, chunk, prefix))
    pairs_per_seq = chunk * prefix + (chunk * (chunk + 1.0) / 2.0 if causal else chunk * chunk)
    ba = m.bytes_per_activation

    def attention_activations(h):
        qo = batch * chunk * h * m.d_head * ba  # fused attention: Q in, O out, scores stay on chip
        return qo, jnp.zeros_like(qo), qo

    return _table(m, batch * chunk, batch * pairs_per_seq, batch * (prefix + chunk), tp, _UNIT_PREFILL,
                  attention_activations, fused=1.0, fused_norm=fused_norm)


def lm_head(m: ModelSpec, tokens, tp=1):
    """FLOPs, weight/activation bytes and all-gather bytes of the final projection to the vocabulary (once per
    iteration), per rank. Under tensor parallelism t the head is split by vocabulary (Megatron's
    vocab-parallel output layer, vLLM's `ParallelLMHead`): each rank holds V/t rows of the weight, computes
    V/t logits per token, and a ring all-gather gives every rank the full logits ((t-1)/t of T·V activations
    received per rank). Returns (flops, bytes f[C], comm_bytes)."""
    f = _dtype(m)
    tokens = jnp.asarray(tokens, f)
    t = jnp.asarray(tp, f)
    v = m.vocab_size / t
    flops = 2.0 * tokens * m.d_model * v
    nbytes = jnp.zeros((len(TENSORS),), f)
    nbytes = nbytes.at[WEIGHTS].set(m.d_model * v * m.bytes_per_weight)
    nbytes = nbytes.at[ACTIVATIONS].set(tokens * (m.d_model + v) * m.bytes_per_activation)
    comm = (t - 1.0) / t * tokens * m.vocab_size * m.bytes_per_activation
    return flops, nbytes, comm


def sublayer_sums(table: KernelTable):
    """FLOPs f[3] and bytes f[3, C] per H2M2 sublayer (attention, qkv, fc)."""
    onehot = jnp.asarray(np.eye(3, dtype=np.float32)[SUBLAYER_OF])  # [K, 3]
    return onehot.T @ table.flops, onehot.T @ table.bytes
