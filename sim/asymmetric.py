"""H2M2's asymmetric memory: an HBM side and an LPDDR side, each with its own accelerator, joined by a link.

Every decoder layer has three sublayers (attention, qkv, fc; `kernels.SUBLAYERS`). A mapping gives the share
of each sublayer that runs on the HBM side: heads for attention and qkv, columns for fc. The tensors of that
share (weights; KV for attention) live in HBM, the rest in LPDDR. Both sides of a sublayer run in parallel
and meet at a barrier; the sublayer's input activations are copied to both sides over the link.

Costs beyond the roofline (all in the hardware spec, shared by every model):
- paging (H2M2's memory abstraction): each 2 MB page a side streams costs one TLB miss, `tlb_walkers` of
  them in flight at once; tensors are allocated in whole pages per layer, so HBM loses the internal
  fragmentation of H2M2's Eq. 2 (`footprints` rounds each layer's share up to pages);
- migration: when a share changes, the pages whose side changed cross the link, and that time counts.

The LPDDR-only baseline is a homogeneous system (its own hardware spec: one LPDDR5X memory, both chips'
compute on it); the strict hierarchy uses HBM as an LRU cache in front of LPDDR (`hierarchical_time`).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from .kernels import SUBLAYER_OF, decode_kernels
from .roofline import kernel_times, safe_div
from .specs import HBM, LPDDR, MAIN, MEMORY_SIDE, TENSORS, HardwareSpec, ModelSpec, kv_bytes_per_token

N_SUBLAYERS = 3
_ONEHOT = np.eye(N_SUBLAYERS, dtype=np.float32)[SUBLAYER_OF]  # [K, 3]


def _placement(tier):
    p = np.zeros((len(TENSORS), 5), np.float32)
    p[:, tier] = 1.0
    return jnp.asarray(p)


def _paging_s(bytes_k, hw: HardwareSpec):
    """TLB-miss time for streaming `bytes_k` (one miss per page, `tlb_walkers` overlapped)."""
    return bytes_k / hw.page_bytes * hw.tlb_miss_s / hw.tlb_walkers


def layer_table(model: ModelSpec, hw: HardwareSpec, batch, context_sum):
    return decode_kernels(model, batch, context_sum, kv_reads_per_query_head=hw.kv_reads_per_query_head,
                          fused_attention=hw.decode_attention_fused)


def side_coefficients(model: ModelSpec, hw: HardwareSpec, batch, context_sum):
    """Per-layer time of each sublayer on each side as an affine function of its share x:
    t(x) = x·variable + [x > 0]·fixed. Exact, because the roofline is homogeneous of degree one in FLOPs and
    bytes (matrix utilisation depends on the rows, not on the share) and launch overheads and latencies are
    paid once per kernel that runs. Returns (var_hbm, fixed_hbm, var_lpddr, fixed_lpddr), each f[3]."""
    table = layer_table(model, hw, batch, context_sum)
    onehot = jnp.asarray(_ONEHOT).T  # [3, K]
    out = []
    for site, tier in ((MAIN, HBM), (MEMORY_SIDE, LPDDR)):
        t = kernel_times(table, hw, site, _placement(tier))
        variable = t["time_s"] - t["overhead_s"] + _paging_s(table.bytes.sum(axis=1), hw)
        out += [onehot @ variable, onehot @ t["overhead_s"]]
    return tuple(out)


def side_times(model: ModelSpec, hw: HardwareSpec, batch, context_sum, hbm_share, coefficients=None):
    """Per-layer time of each sublayer on each side: (t_hbm f[..., 3], t_lpddr f[..., 3]) in seconds.

    hbm_share f[..., 3] in [0, 1]: share of (attention, qkv, fc) on the HBM side."""
    var_h, fix_h, var_l, fix_l = coefficients or side_coefficients(model, hw, batch, context_sum)
    x = jnp.asarray(hbm_share, jnp.float32)
    return x * var_h + (x > 0) * fix_h, (1.0 - x) * var_l + (x < 1) * fix_l


def footprints(model: ModelSpec, hw: HardwareSpec, kv_tokens):
    """Bytes per sublayer over all layers f[3]: KV of `kv_tokens` cached tokens (attention), qkv weights,
    fc weights (O projection, FFN, norms)."""
    table = decode_kernels(model, 1.0, 0.0)
    w = jnp.asarray(_ONEHOT).T @ table.bytes[:, 0]  # weight bytes per layer per sublayer
    kv = kv_bytes_per_token(model) / model.n_layers * kv_tokens
    return model.n_layers * (w + kv * jnp.asarray([1.0, 0.0, 0.0]))


def sublayer_bytes(model: ModelSpec, hw: HardwareSpec, kv_tokens, share):
    """Bytes f[..., 3] that `share` f[..., 3] of each sublayer occupies on one side: each layer's part rounded
    up to whole pages (H2M2's internal fragmentation)."""
    per_layer = footprints(model, hw, kv_tokens) / model.n_layers * jnp.asarray(share, jnp.float32)
    return model.n_layers * jnp.ceil(per_layer / hw.page_bytes - 1e-6) * hw.page_bytes


def hbm_bytes_used(model: ModelSpec, hw: HardwareSpec, kv_tokens, hbm_share):
    """HBM bytes a mapping occupies."""
    return sublayer_bytes(model, hw, kv_tokens, hbm_share).sum(axis=-1)


def lpddr_bytes_used(model: ModelSpec, hw: HardwareSpec, kv_tokens, hbm_share):
    return hbm_bytes_used(model, hw, kv_tokens, 1.0 - jnp.asarray(hbm_share, jnp.float32))


def fits(model, hw, kv_tokens, hbm_share, reserve_bytes=0.0):
    """Does the mapping fit both sides (HBM keeps `reserve_bytes` free for growth)?"""
    return (hbm_bytes_used(model, hw, kv_tokens, hbm_share) + reserve_bytes <= hw.tier_capacity_bytes[HBM]) & (
        lpddr_bytes_used(model, hw, kv_tokens, hbm_share) <= hw.tier_capacity_bytes[LPDDR])


def migration_bytes(model, hw, kv_tokens, hbm_share, prev_share):
    """Bytes whose side changed between two mappings (pages cross the link)."""
    delta = jnp.abs(jnp.asarray(hbm_share, jnp.float32) - jnp.asarray(prev_share, jnp.float32))
    return (footprints(model, hw, kv_tokens) * delta).sum(axis=-1)


def iteration_time(model: ModelSpec, hw: HardwareSpec, batch, context_sum, kv_tokens, hbm_share,
                   prev_share=None, coefficients=None):
    """One decode iteration of all layers under a mapping. Returns a dict of scalars (seconds, bytes):
    iteration_time_s, compute/barrier time per sublayer, the activation copies, migration."""
    hbm_share = jnp.asarray(hbm_share, jnp.float32)
    t_hbm, t_lpddr = side_times(model, hw, batch, context_sum, hbm_share, coefficients)
    split = (hbm_share > 0) & (hbm_share < 1)
    act_bytes = batch * model.d_model * model.bytes_per_activation
    copy_s = jnp.where(split, safe_div(act_bytes, hw.link_bw_bytes_per_s), 0.0)
    per_sublayer = jnp.maximum(t_hbm, t_lpddr) + copy_s
    layers_s = model.n_layers * per_sublayer.sum()
    if prev_share is None:
        prev_share = hbm_share
    moved = migration_bytes(model, hw, kv_tokens, hbm_share, prev_share)
    migration_s = safe_div(moved, hw.link_bw_bytes_per_s * hw.eff_memory)
    table = layer_table(model, hw, batch, context_sum)
    bytes_sub = jnp.asarray(_ONEHOT).T @ table.bytes.sum(axis=1)  # per layer, per sublayer
    return {
        "iteration_time_s": layers_s + migration_s,
        "hbm_bytes": model.n_layers * (bytes_sub * hbm_share).sum(),
        "lpddr_bytes": model.n_layers * (bytes_sub * (1.0 - hbm_share)).sum(),
        "sublayer_time_s": model.n_layers * per_sublayer,
        "hbm_side_s": model.n_layers * t_hbm,
        "lpddr_side_s": model.n_layers * t_lpddr,
        "migration_s": migration_s,
        "migration_bytes": moved,
    }


def homogeneous_time(model: ModelSpec, hw: HardwareSpec, batch, context_sum, tier=LPDDR, site=MAIN):
    """All tensors in one tier, all kernels on one site (the LPDDR-only baseline)."""
    table = layer_table(model, hw, batch, context_sum)
    t = kernel_times(table, hw, site, _placement(tier))
    return model.n_layers * (t["time_s"] + _paging_s(table.bytes.sum(axis=1), hw)).sum()


def hierarchical_time(model: ModelSpec, hw: HardwareSpec, batch, context_sum, kv_tokens):
    """Strict hierarchy: data lives in LPDDR, HBM is an LRU cache of 2 MB pages in front of it, and both
    chips compute through it. A decode iteration sweeps every weight and KV page once, a loop longer than the
    cache whenever the footprint exceeds HBM, so LRU hits nothing then (the weight reuse distance is the
    whole model); when everything fits, every access hits."""
    total = footprints(model, hw, kv_tokens).sum()
    hit = (total <= hw.tier_capacity_bytes[HBM]).astype(jnp.float32)
    both_chips = dataclasses.replace(
        hw, peak_flops_per_s=hw.peak_flops_per_s.at[MAIN].set(hw.peak_flops_per_s[MAIN] + hw.peak_flops_per_s[MEMORY_SIDE]),
        access_bw_bytes_per_s=hw.access_bw_bytes_per_s.at[LPDDR, MAIN].set(hw.tier_bw_bytes_per_s[LPDDR]))
    on_hbm = homogeneous_time(model, both_chips, batch, context_sum, tier=HBM)
    on_lpddr = homogeneous_time(model, both_chips, batch, context_sum, tier=LPDDR)
    return hit * on_hbm + (1.0 - hit) * on_lpddr
