"""Model and hardware specs as pytrees of floats.

Every leaf is a float array so that `jax.vmap` can run many different systems at once. Units are SI
inside the pytree (bytes, bytes/s, FLOP/s, seconds); the YAML presets use human units in their key names
(`bw_gbps`, `capacity_gb`, `peak_tflops`) and are converted when loaded (see `config.py`).

Index conventions (fixed slots, so that every hardware spec has the same shapes):

- memory tiers  `TIERS`:  hbm, lpddr, host_ddr, remote, disk   (capacity 0 = absent)
- compute sites `SITES`:  main (accelerator on the fast tier), memory_side (accelerator on the capacity
  tier, H2M2's LPDDR-side chip), cpu
- unit classes  `UNITS`:  matrix, matvec, vector
- tensor classes `TENSORS`: weights, activations, kv, act_cache (layer-input activations kept instead of K,V)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

TIERS = ("hbm", "lpddr", "host_ddr", "remote", "disk")
SITES = ("main", "memory_side", "cpu")
UNITS = ("matrix", "matvec", "vector")
TENSORS = ("weights", "activations", "kv", "act_cache")

HBM, LPDDR, HOST_DDR, REMOTE, DISK = range(len(TIERS))
MAIN, MEMORY_SIDE, CPU = range(len(SITES))
MATRIX, MATVEC, VECTOR = range(len(UNITS))
WEIGHTS, ACTIVATIONS, KV, ACT_CACHE = range(len(TENSORS))


def pytree_dataclass(cls=None, *, static=()):
    """A frozen dataclass registered as a pytree; fields named in `static` are hashable metadata
    (shapes, bin counts, episode lengths) and must match across a vmapped batch."""

    def wrap(c):
        c = dataclasses.dataclass(frozen=True)(c)
        names = [f.name for f in dataclasses.fields(c)]
        return jax.tree_util.register_dataclass(
            c, data_fields=[n for n in names if n not in static], meta_fields=[n for n in names if n in static])

    return wrap if cls is None else wrap(cls)


@pytree_dataclass
class ModelSpec:
    """A decoder-only transformer. All fields are float scalars (vmappable)."""

    n_layers: jax.Array
    d_model: jax.Array
    n_heads: jax.Array
    n_kv_heads: jax.Array
    d_head: jax.Array
    d_ff: jax.Array
    vocab_size: jax.Array
    n_positions: jax.Array  # learned position-embedding rows (0 for RoPE / relative)
    n_ffn_matrices: jax.Array  # 2 plain FFN, 3 gated (gate, up, down)
    has_bias: jax.Array  # 1.0 if linear layers carry biases
    tied_embeddings: jax.Array  # 1.0 if the LM head reuses the input embedding
    norm_params: jax.Array  # parameters per element per norm: 2 LayerNorm (gain, bias), 1 RMSNorm
    uses_rope: jax.Array  # 1.0 for rotary embeddings (an elementwise kernel)
    act_flops_per_elem: jax.Array  # FLOPs per FFN activation element (GeLU ~8, SiLU*gate ~5, ReLU 1)
    bytes_per_weight: jax.Array
    bytes_per_activation: jax.Array
    bytes_per_kv: jax.Array

    @property
    def kv_group(self):
        """Query heads per KV head, g = h / h_kv (1 for MHA)."""
        return self.n_heads / self.n_kv_heads


@pytree_dataclass
class HardwareSpec:
    """Memory tiers, compute sites, the paths between them and the calibration knobs.

    Shapes: M = len(TIERS), S = len(SITES), U = len(UNITS).
    """

    tier_capacity_bytes: jax.Array  # f[M]
    tier_bw_bytes_per_s: jax.Array  # f[M]  the tier's own bandwidth
    tier_latency_s: jax.Array  # f[M]
    tier_energy_j_per_byte: jax.Array  # f[M]
    tier_cost_per_byte: jax.Array  # f[M]  (USD)
    access_bw_bytes_per_s: jax.Array  # f[M, S]  effective bandwidth site s sees from tier m; 0 = unreachable
    peak_flops_per_s: jax.Array  # f[S, U]
    eff_compute: jax.Array  # f[U]  achieved / peak compute per unit class
    eff_memory: jax.Array  # scalar, achieved / peak bandwidth
    overhead_s: jax.Array  # f[U]  fixed cost per kernel launch, by unit class
    overlap: jax.Array  # scalar in [0, 1]: 1 = max(compute, memory), 0 = compute + memory
    matrix_fill_rows: jax.Array  # systolic fill: matrix-unit utilisation = rows / (rows + fill); 0 = ideal
    kv_reads_per_query_head: jax.Array  # 0: a GQA kernel reads each KV head once; 1: once per query head
    interconnect_bw_bytes_per_s: jax.Array  # tensor-parallel all-reduce link (per direction)
    interconnect_latency_s: jax.Array
    page_bytes: jax.Array  # allocation page (H2M2: 2 MB)
    tlb_miss_s: jax.Array  # exposed latency of one TLB miss (0 = no paging cost)
    tlb_walkers: jax.Array  # concurrent page-table walks that hide each other's latency
    link_bw_bytes_per_s: jax.Array  # the link between the main site and the memory side (H2M2: 960 GB/s)
    decode_attention_fused: jax.Array  # 1: decode QKᵀ·softmax·AV is one kernel, scores on chip; 0: unfused


def ideal(hw: HardwareSpec) -> HardwareSpec:
    """Pure roofline: efficiencies 1, no fixed overheads or latencies, perfect compute/memory overlap."""
    return dataclasses.replace(
        hw,
        eff_compute=jnp.ones_like(hw.eff_compute),
        eff_memory=jnp.ones_like(hw.eff_memory),
        overhead_s=jnp.zeros_like(hw.overhead_s),
        overlap=jnp.ones_like(hw.overlap),
        matrix_fill_rows=jnp.zeros_like(hw.matrix_fill_rows),
        tlb_miss_s=jnp.zeros_like(hw.tlb_miss_s),
        tier_latency_s=jnp.zeros_like(hw.tier_latency_s),
        interconnect_latency_s=jnp.zeros_like(hw.interconnect_latency_s),
    )


def replace(spec, **changes):
    """`dataclasses.replace` that converts new values to float32 arrays."""
    return dataclasses.replace(spec, **{k: jnp.asarray(v, jnp.float32) for k, v in changes.items()})


def stack(specs):
    """Stack a list of specs of one type into one spec with a leading batch axis (for vmap)."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *specs)


# ---- derived model quantities -------------------------------------------------------------------------


def matrix_params_per_layer(m: ModelSpec):
    """Weights of the decoder layer's matrices: W = d(h+2h_kv)d_h + h d_h d + n_f d d_ff."""
    qkv = m.d_model * (m.n_heads + 2 * m.n_kv_heads) * m.d_head
    o = m.n_heads * m.d_head * m.d_model
    ffn = m.n_ffn_matrices * m.d_model * m.d_ff
    return qkv + o + ffn


def vector_params_per_layer(m: ModelSpec):
    """Biases and norm parameters of one decoder layer."""
    bias = m.has_bias * ((m.n_heads + 2 * m.n_kv_heads) * m.d_head + m.d_model
                         + (m.n_ffn_matrices - 1) * m.d_ff + m.d_model)
    norms = 2 * m.norm_params * m.d_model
    return bias + norms


def param_count(m: ModelSpec):
    """Total parameters: decoder layers, embeddings (and an untied LM head), final norm."""
    layers = m.n_layers * (matrix_params_per_layer(m) + vector_params_per_layer(m))
    embed = m.vocab_size * m.d_model * (2.0 - m.tied_embeddings) + m.n_positions * m.d_model
    return layers + embed + m.norm_params * m.d_model


def nonembed_matrix_params(m: ModelSpec):
    """N_nonembed used by the FLOP identity 2·N + 4·L·d·ctx: the decoder's matrix weights.

    Biases and norm gains are vector parameters; their FLOPs are counted in the vector kernels.
    """
    return m.n_layers * matrix_params_per_layer(m)


def weight_bytes(m: ModelSpec):
    """Decoder weight bytes (matrices, biases and norms of every layer)."""
    return m.n_layers * (matrix_params_per_layer(m) + vector_params_per_layer(m)) * m.bytes_per_weight


def kv_bytes_per_token(m: ModelSpec):
    """K and V of one token over the whole model: 2·L·h_kv·d_h·b_kv."""
    return 2 * m.n_layers * m.n_kv_heads * m.d_head * m.bytes_per_kv


def act_cache_bytes_per_token(m: ModelSpec):
    """One token's layer-input activation over the whole model: L·d·b_a (half of KV for MHA at equal widths)."""
    return m.n_layers * m.d_model * m.bytes_per_activation
