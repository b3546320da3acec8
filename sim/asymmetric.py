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
compute on it); the strict hierarchy uses HBM as a page cache in front of LPDDR (`hierarchical_time`); the
sublayer-granularity variant places each sublayer's data wholly on one side and lets both chips work on it
(`whole_sublayer_time`).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from .kernels import SUBLAYER_OF, decode_kernels, weight_bytes
from .roofline import kernel_times, safe_div
from .specs import HBM, KV, LPDDR, MAIN, MEMORY_SIDE, TENSORS, WEIGHTS, HardwareSpec, ModelSpec, kv_bytes_per_token

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


def side_coefficients(model: ModelSpec, hw: HardwareSpec, batch, context_sum, table=None):
    """Per-layer time of each sublayer on each side as an affine function of its share x:
    t(x) = x·variable + [x > 0]·fixed. Exact, because the roofline is homogeneous of degree one in FLOPs and
    bytes (matrix utilisation depends on the rows, not on the share) and launch overheads and latencies are
    paid once per kernel that runs. Returns (var_hbm, fixed_hbm, var_lpddr, fixed_lpddr), each f[3].
    `table`: this batch and context's `layer_table`, if the caller already has it."""
    table = layer_table(model, hw, batch, context_sum) if table is None else table
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
    w = jnp.asarray(_ONEHOT).T @ weight_bytes(model)  # weight bytes per layer per sublayer
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


def fits_bytes(hw, hbm_bytes, lpddr_bytes, hbm_frac=1.0):
    """Do these bytes fit both sides (HBM filled to at most `hbm_frac` of its capacity)? Broadcasts."""
    return (hbm_bytes <= hw.tier_capacity_bytes[HBM] * hbm_frac) & (lpddr_bytes <= hw.tier_capacity_bytes[LPDDR])


def fits(model, hw, kv_tokens, hbm_share, reserve_bytes=0.0):
    """Does the mapping fit both sides (HBM keeps `reserve_bytes` free for growth)?"""
    return fits_bytes(hw, hbm_bytes_used(model, hw, kv_tokens, hbm_share) + reserve_bytes,
                      lpddr_bytes_used(model, hw, kv_tokens, hbm_share))


def migration_bytes(model, hw, kv_tokens, hbm_share, prev_share):
    """Bytes whose side changed between two mappings (pages cross the link)."""
    delta = jnp.abs(jnp.asarray(hbm_share, jnp.float32) - jnp.asarray(prev_share, jnp.float32))
    return (footprints(model, hw, kv_tokens) * delta).sum(axis=-1)


def iteration_time(model: ModelSpec, hw: HardwareSpec, batch, context_sum, kv_tokens, hbm_share,
                   prev_share=None, coefficients=None):
    """One decode iteration of all layers under a mapping. Returns a dict of scalars (seconds, bytes):
    iteration_time_s, compute/barrier time per sublayer, the activation copies, migration."""
    hbm_share = jnp.asarray(hbm_share, jnp.float32)
    table = layer_table(model, hw, batch, context_sum)
    coefficients = coefficients or side_coefficients(model, hw, batch, context_sum, table)
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


REPLACEMENTS = ("direct_mapped", "lru", "hashed", "scan_resistant")


def hierarchical_hits(model: ModelSpec, hw: HardwareSpec, kv_tokens, replacement="direct_mapped"):
    """Fractions of (weight, KV) bytes a decode iteration reads from HBM when HBM is a page-granular cache of
    LPDDR (H2M2's strict-hierarchy baseline), by reuse distance. An iteration sweeps every weight and KV page
    once (reuse distance: the whole footprint F); re-reads inside the iteration (a per-head GEMV re-reading
    its GQA group's KV, `kv_reads_per_query_head`) come back within one KV head's pages and always hit.
    How many of the sweep's pages hit depends on the cache's organisation (C = HBM capacity):

    - 'direct_mapped' (the default; a hardware DRAM cache as in Knights Landing's MCDRAM cache mode or
      Intel's 2LM memory mode), pages mapped contiguously: a set holding one page always hits, a set holding
      two alternates and misses, so (2C - F)/F of the sweep hits for C < F < 2C, none beyond 2C;
    - 'hashed': the same cache with pages placed at random, a page hits when no other maps to its set, e^(-F/C)
      (conflicts even when F fits);
    - 'lru': fully associative LRU hits nothing on a cyclic sweep longer than the cache;
    - 'scan_resistant': a policy that keeps a resident set across the sweep (ARC/LIRS-class, pinning), C/F.

    Everything hits when F <= C (except 'hashed'). Returns (hit_weights, hit_kv)."""
    if replacement not in REPLACEMENTS:
        raise ValueError(f"replacement must be one of {REPLACEMENTS}, got {replacement!r}")
    total = footprints(model, hw, kv_tokens).sum()
    cap = hw.tier_capacity_bytes[HBM]
    sweep = {"direct_mapped": lambda: jnp.clip((2.0 * cap - total) / total, 0.0, 1.0),
             "hashed": lambda: jnp.exp(-total / cap),
             "lru": lambda: (total <= cap).astype(jnp.float32),
             "scan_resistant": lambda: jnp.clip(cap / total, 0.0, 1.0)}[replacement]()
    reads = 1.0 + hw.kv_reads_per_query_head * (model.kv_group - 1.0)
    return sweep, sweep / reads + (1.0 - 1.0 / reads)


def hierarchical_time(model: ModelSpec, hw: HardwareSpec, batch, context_sum, kv_tokens,
                      replacement="direct_mapped"):
    """Strict hierarchy: data lives in LPDDR, HBM is a cache of 2 MB pages in front of it, and both chips
    compute through it. Each kernel reads its hits from HBM and its misses from LPDDR (one access stream:
    the times add, as for any tensor spread across tiers); activations and this step's new KV stay in the
    cache. Hit fractions: `hierarchical_hits`."""
    hit_w, hit_kv = hierarchical_hits(model, hw, kv_tokens, replacement)
    both_chips = dataclasses.replace(
        hw, peak_flops_per_s=hw.peak_flops_per_s.at[MAIN].set(hw.peak_flops_per_s[MAIN] + hw.peak_flops_per_s[MEMORY_SIDE]),
        access_bw_bytes_per_s=hw.access_bw_bytes_per_s.at[LPDDR, MAIN].set(hw.tier_bw_bytes_per_s[LPDDR]))
    p = jnp.zeros((len(TENSORS), 5), jnp.float32)
    p = p.at[:, HBM].set(1.0)
    p = p.at[WEIGHTS, HBM].set(hit_w).at[WEIGHTS, LPDDR].set(1.0 - hit_w)
    p = p.at[KV, HBM].set(hit_kv).at[KV, LPDDR].set(1.0 - hit_kv)
    table = layer_table(model, hw, batch, context_sum)
    t = kernel_times(table, both_chips, MAIN, p)
    return model.n_layers * (t["time_s"] + _paging_s(table.bytes.sum(axis=1), hw)).sum()


def shared_sublayer_times(model: ModelSpec, hw: HardwareSpec, batch, context_sum):
    """Per-layer time of each sublayer when its data lives wholly on one side and both chips share its work,
    the far chip reading its operands over the link (H2M2's zero-copy remote access, no kernel change): the
    chips' shares balance their times, and together they cannot stream faster than the side's memory.
    Returns (t_on_hbm f[3], t_on_lpddr f[3]) in seconds."""
    table = layer_table(model, hw, batch, context_sum)
    onehot = jnp.asarray(_ONEHOT).T
    nbytes = onehot @ table.bytes.sum(axis=1)
    paging = _paging_s(table.bytes.sum(axis=1), hw)
    out = []
    for tier in (HBM, LPDDR):
        var, fix = [], []
        for site in (MAIN, MEMORY_SIDE):
            t = kernel_times(table, hw, site, _placement(tier))
            var.append(onehot @ (t["time_s"] - t["overhead_s"] + paging))
            fix.append(onehot @ t["overhead_s"])
        share = safe_div(var[1], var[0] + var[1])  # the main chip's share that balances the two
        chips = jnp.maximum(share * var[0], (1.0 - share) * var[1]) + jnp.maximum(fix[0], fix[1])
        out.append(jnp.maximum(chips, safe_div(nbytes, hw.tier_bw_bytes_per_s[tier] * hw.eff_memory)))
    return tuple(out)


def whole_sublayer_time(model: ModelSpec, hw: HardwareSpec, batch, context_sum, kv_tokens):
    """H2M2's sublayer-granularity variant: each sublayer's data wholly in HBM or wholly in LPDDR (the same
    for every layer), both chips working on every sublayer (`shared_sublayer_times`); the best of the 8
    mappings that fit."""
    t_hbm, t_lpddr = shared_sublayer_times(model, hw, batch, context_sum)
    maps = jnp.asarray(np.array(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij")).reshape(3, -1).T,
                       jnp.float32)  # [8, 3]
    t = model.n_layers * (maps * t_hbm + (1.0 - maps) * t_lpddr).sum(axis=1)
    ok = fits(model, hw, kv_tokens, maps)
    return jnp.where(ok, t, jnp.inf).min()
