"""Secure disaggregated memory (TDMem, arXiv 2108.11507) as a memory tier beside host DRAM, and the software
RDMA far memory it is compared with.

Remote memory lives in memory-providing nodes and is reached through the requesting node's FPGA engine over
the engines' own network. Only the paper's abstract is known; the model below is a reconstruction from it and the related
systems (Clio, ODRP, Path ORAM), every parameter in the hardware YAML's `tiers.remote` and `secure_remote:` block
with its source or reason. One transfer of `n` useful bytes in mode `m` costs

    t = latency(m) + n · traffic(m) / link          (+ registration(m) for newly allocated bytes)

Modes (`MODES`, rising security level `LEVELS`; a tenant with requirement r may use modes of level ≥ r):

| mode          | level | latency        | traffic per useful byte           | usable remote capacity           |
|---------------|-------|----------------|-----------------------------------|----------------------------------|
| rdma_slab     | 0     | RDMA RTT       | 1                                 | whole 1 GB slabs, ≤ 58.3 %       |
| rdma_register | 0     | RDMA RTT       | 1, + 600 µs per MB registered     | all                              |
| plain         | 0     | engine RTT     | 1 (4 KB hardware allocation, no crypto: the no-security bound) | all |
| secure        | 1     | RTT + crypto   | 1 + (MAC + counter) / page        | page / (page + MAC + counter)    |
| remap         | 2     | RTT + crypto   | secure + remapped frame id / page | as secure                        |
| dummy         | 3     | RTT + crypto   | remap × (1 + dummy ratio)         | as secure                        |
| oram          | 4     | RTT + crypto   | secure × 2·Z·(L+1)                | as secure × ORAM utilisation     |

Path ORAM over N logical pages: a tree with ⌈N/Z⌉ leaves, so L = ⌈log2(N/Z)⌉ and every access reads and
writes one root-to-leaf path, 2·Z·(L+1) blocks (Z = 4, N = 2^20 → 152; 2^18 → 136; 2^22 → 168).

Choices the paper leaves open (each with its reason):
- Remote pages reach the GPU through host memory: the engine DMAs them into pinned host buffers (a swap
  backend's path), so remote cache crosses the network *and* PCIe; the network is a separate pipelined stage
  (like FlexGen's disk → CPU stage) that overlaps the layer's other work.
- One link carries both directions' bytes (read and written counted together): conservative, and it keeps
  Path ORAM's read-path + write-path count as the traffic it moves.
- The round-trip latency is paid once per layer transfer: pages are pipelined (many requests in flight), so
  only the first waits for a full round trip.
- MACs and version counters are stored remotely beside each page (capacity and traffic overhead); the remap
  table lives on the requesting engine (traffic only).
- The software baseline uses RDMA's round trip and no encryption (its "latest software-based techniques").
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from . import config, offload
from .roofline import combine
from .specs import pytree_dataclass

MODES = ("rdma_slab", "rdma_register", "plain", "secure", "remap", "dummy", "oram")
LEVELS = (0, 0, 0, 1, 2, 3, 4)
REQUIREMENTS = ("none", "encrypted", "unlinkable", "rate_hiding", "oblivious")  # tenant level 0..4
RDMA_SLAB, RDMA_REGISTER, PLAIN, SECURE, REMAP, DUMMY, ORAM = range(len(MODES))
MB = 2.0**20
SECURE_KEYS = {"page_kb": 4.0, "crypto_latency_us": 0.3, "mac_bytes_per_page": 16.0, "counter_bytes_per_page": 8.0,
               "remap_bytes_per_page": 8.0, "dummy_ratio": 1.0, "oram_bucket_z": 4.0, "oram_utilisation": 0.5,
               "rdma_rtt_us": 2.9, "rdma_slab_gb": 1.0, "rdma_slab_utilisation": 0.583,
               "rdma_register_us_per_mb": 600.0, "rdma_register_us_per_4kb": 80.0}


@pytree_dataclass
class RemoteTier:
    """The remote tier and its security machinery; all float scalars (vmappable)."""

    capacity_bytes: jax.Array
    link_bytes_per_s: jax.Array
    engine_rtt_s: jax.Array
    crypto_s: jax.Array
    page_bytes: jax.Array
    mac_bytes: jax.Array
    counter_bytes: jax.Array
    remap_bytes: jax.Array
    dummy_ratio: jax.Array
    oram_z: jax.Array
    oram_utilisation: jax.Array
    rdma_rtt_s: jax.Array
    rdma_slab_bytes: jax.Array
    rdma_slab_utilisation: jax.Array
    rdma_register_s_per_byte: jax.Array
    rdma_register_s_per_page: jax.Array


def load_remote(name, capacity_gb=None, link_gbps=None, rtt_us=None) -> RemoteTier:
    """The remote tier of a hardware preset (`tiers.remote` + `secure_remote:`), validated; capacity (GB),
    link bandwidth (GB/s) and engine round trip (µs) may be overridden."""
    d, path = config.load_raw("hardware", name)
    tier = (d.get("tiers") or {}).get("remote")
    if not isinstance(tier, dict):
        raise config.ConfigError(path, "tiers.remote", "missing: this hardware has no remote tier (use the "
                                                       "a100-80gb-pcie4-tdmem preset or add one)")
    block = d.get("secure_remote")
    if not isinstance(block, dict):
        raise config.ConfigError(path, "secure_remote", "missing: the remote tier's security parameters "
                                                        f"({', '.join(SECURE_KEYS)})")
    unknown = set(block) - set(SECURE_KEYS) - {"source", "notes"}
    if unknown:
        raise config.ConfigError(path, f"secure_remote.{sorted(unknown)[0]}",
                                 f"unknown key; valid: {', '.join(SECURE_KEYS)}")
    c = {k: config._get(block, k, path, "secure_remote.", allow_zero=True, default=v) for k, v in SECURE_KEYS.items()}
    for k in ("page_kb", "oram_bucket_z", "oram_utilisation", "rdma_slab_gb", "rdma_slab_utilisation"):
        if c[k] <= 0:
            raise config.ConfigError(path, f"secure_remote.{k}", f"must be > 0, got {c[k]}")
    for k in ("oram_utilisation", "rdma_slab_utilisation"):
        if c[k] > 1:
            raise config.ConfigError(path, f"secure_remote.{k}", f"a utilisation must be in (0, 1], got {c[k]}")
    cap = config._get(tier, "capacity_gb", path, "tiers.remote.", allow_zero=True)
    bw = config._get(tier, "bw_gbps", path, "tiers.remote.")
    rtt = config._get(tier, "latency_ns", path, "tiers.remote.") * 1e-3
    cap, bw, rtt = (v if o is None else o for v, o in ((cap, capacity_gb), (bw, link_gbps), (rtt, rtt_us)))
    page = c["page_kb"] * 1024.0
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return RemoteTier(
        capacity_bytes=f(cap * 1e9), link_bytes_per_s=f(bw * 1e9), engine_rtt_s=f(rtt * 1e-6),
        crypto_s=f(c["crypto_latency_us"] * 1e-6), page_bytes=f(page), mac_bytes=f(c["mac_bytes_per_page"]),
        counter_bytes=f(c["counter_bytes_per_page"]), remap_bytes=f(c["remap_bytes_per_page"]),
        dummy_ratio=f(c["dummy_ratio"]), oram_z=f(c["oram_bucket_z"]), oram_utilisation=f(c["oram_utilisation"]),
        rdma_rtt_s=f(c["rdma_rtt_us"] * 1e-6), rdma_slab_bytes=f(c["rdma_slab_gb"] * 1e9),
        rdma_slab_utilisation=f(c["rdma_slab_utilisation"]),
        rdma_register_s_per_byte=f(c["rdma_register_us_per_mb"] * 1e-6 / MB),
        rdma_register_s_per_page=f(c["rdma_register_us_per_4kb"] * 1e-6))


def with_remote(t: RemoteTier, capacity_gb=None, link_gbps=None, rtt_us=None) -> RemoteTier:
    """The tier with capacity (GB), link bandwidth (GB/s) or engine round trip (µs) replaced (jittable)."""
    ch = {}
    if capacity_gb is not None:
        ch["capacity_bytes"] = jnp.asarray(capacity_gb, jnp.float32) * 1e9
    if link_gbps is not None:
        ch["link_bytes_per_s"] = jnp.asarray(link_gbps, jnp.float32) * 1e9
    if rtt_us is not None:
        ch["engine_rtt_s"] = jnp.asarray(rtt_us, jnp.float32) * 1e-6
    return dataclasses.replace(t, **ch)


# ---- the tier ---------------------------------------------------------------------------------------------


def oram_levels(n_pages, z):
    """L of a Path ORAM over n_pages blocks with Z blocks per bucket: ⌈log2(n_pages / Z)⌉ (at least 0)."""
    return jnp.ceil(jnp.log2(jnp.maximum(jnp.asarray(n_pages, jnp.float32) / z, 1.0)) - 1e-6)


def oram_blocks_per_access(n_pages, z):
    """Blocks moved per Path ORAM access: a root-to-leaf path read and written back, 2·Z·(L+1)."""
    return 2.0 * z * (oram_levels(n_pages, z) + 1.0)


def _meta(t: RemoteTier):
    return (t.mac_bytes + t.counter_bytes) / t.page_bytes


def usable_bytes(t: RemoteTier, mode):
    """Remote bytes a tenant can fill in `mode` (see the module's table)."""
    slabs = jnp.floor(t.capacity_bytes * t.rdma_slab_utilisation / t.rdma_slab_bytes + 1e-6) * t.rdma_slab_bytes
    sec = t.capacity_bytes / (1.0 + _meta(t))
    table = jnp.stack([slabs, t.capacity_bytes, t.capacity_bytes, sec, sec, sec, sec * t.oram_utilisation])
    return table[mode]


def oram_pages(t: RemoteTier):
    """Logical pages of the tenant's ORAM: its usable capacity in pages."""
    return usable_bytes(t, ORAM) / t.page_bytes


def traffic(t: RemoteTier, mode):
    """Network bytes moved per useful byte in `mode`."""
    sec = 1.0 + _meta(t)
    remap = sec + t.remap_bytes / t.page_bytes
    one = jnp.ones((), jnp.float32)
    table = jnp.stack([one, one, one, sec, remap, remap * (1.0 + t.dummy_ratio),
                       sec * oram_blocks_per_access(oram_pages(t), t.oram_z)])
    return table[mode]


def latency_s(t: RemoteTier, mode):
    """Fixed time of one transfer: the RDMA or engine round trip, plus the crypto pipeline in secure modes."""
    sec = t.engine_rtt_s + t.crypto_s
    table = jnp.stack([t.rdma_rtt_s, t.rdma_rtt_s, t.engine_rtt_s, sec, sec, sec, sec])
    return table[mode]


def registration_s_per_byte(t: RemoteTier, mode):
    """Registration time per newly allocated byte (RDMA per-region registration only)."""
    return jnp.where(jnp.asarray(mode) == RDMA_REGISTER, t.rdma_register_s_per_byte, 0.0)


def access_time(t: RemoteTier, mode, nbytes):
    """One transfer of `nbytes` useful bytes (a 4 KB page: 3.0 + 0.3 + 4120 B / 12.5 GB/s ≈ 3.63 µs secure)."""
    return latency_s(t, mode) + nbytes * traffic(t, mode) / t.link_bytes_per_s


def network_time(t: RemoteTier, mode, read_bytes, write_bytes):
    """A pipelined stage moving `read_bytes` from and `write_bytes` (newly allocated) to remote memory: one
    round trip, both directions' bytes × traffic over the link, and registration of the written bytes."""
    moved = read_bytes + write_bytes
    return (jnp.where(moved > 0, latency_s(t, mode), 0.0) + moved * traffic(t, mode) / t.link_bytes_per_s
            + write_bytes * registration_s_per_byte(t, mode))


# ---- the offloading system with a remote cache tier -----------------------------------------------------------


def cache_bytes(m, kv_tokens, act_tokens):
    """Bytes of one sequence's cache in one layer: K,V tokens and activation tokens."""
    return kv_tokens * offload.kv_bytes_per_token_layer(m) + act_tokens * offload.act_bytes_per_token_layer(m)


def decode_layer(m, r: offload.OffloadRates, t: RemoteTier, p: offload.Placement, mode, bls, gbs, kv_l, act_l, kv_r,
                 act_r, new_share, new_remote):
    """One decode step of one layer with the cache in host memory (kv_l, act_l tokens per sequence) and in
    remote memory (kv_r, act_r); the step's entry takes form `new_share` and goes remote with share
    `new_remote`. `p` places weights and hidden states (its cache share must be cc = 1: remote pages come
    through host memory). Returns `offload.decode_layer`'s dict with the network stage added (net_s,
    net_bytes: wire bytes incl. security overhead) and layer_s recombined."""
    d = offload.decode_layer(m, r, p, bls, gbs, kv_l + kv_r, act_l + act_r, new_share)
    entry = cache_bytes(m, 1.0 - new_share, new_share)
    read, write = bls * cache_bytes(m, kv_r, act_r), bls * entry * new_remote
    net = network_time(t, mode, read, write)
    rest = jnp.maximum(jnp.maximum(d["gtoc_s"], d["comp_s"]), net)
    return dict(d, layer_s=combine(d["ctog_s"], rest, r.ctog_overlap), net_s=net,
                net_bytes=(read + write) * traffic(t, mode), remote_read_bytes=read, remote_write_bytes=write)


def prefill_layer(m, r, t: RemoteTier, p, mode, bls, gbs, prompt_len, share, remote):
    """The prompt's pass through one layer; its entries (form `share`) go remote with share `remote`."""
    pre = offload.prefill_layer(m, r, p, bls, gbs, prompt_len, share)
    write = bls * (prompt_len + 1.0) * cache_bytes(m, 1.0 - share, share) * remote
    net = network_time(t, mode, 0.0, write)
    return dict(pre, layer_s=jnp.maximum(pre["layer_s"], net), net_s=net, net_bytes=write * traffic(t, mode),
                remote_write_bytes=write)


def host_bytes(m, p, bls, gbs, prompt_len, kv_l, act_l, kv_r, act_r, ctx_end):
    """Peak host bytes (FlexGen's CPU peak terms) when part of the cache lives remotely: the remote share
    leaves host memory; one GPU batch's remote pages of one layer are staged there, double-buffered. The
    prefill peak holds the prompt's local entries, FlexGen's s/ctx share of the local cache taken against the
    run's final context `ctx_end`, so the peak only grows as entries accumulate (a check at the run's end
    covers every step)."""
    t = offload.peak_terms(m, p, bls, gbs, prompt_len, kv_l + kv_r, act_l + act_r)
    local, remote = cache_bytes(m, kv_l, act_l), cache_bytes(m, kv_r, act_r)
    ctx = jnp.maximum(kv_l + act_l + kv_r + act_r, 1e-9)
    staging = 2.0 * gbs * remote
    dec = t[2] - bls * m.n_layers * remote + staging
    pre = (t[3] - bls * m.n_layers * (local + remote) * prompt_len / ctx
           + bls * m.n_layers * local * prompt_len / ctx_end + staging)
    return jnp.maximum(dec, pre)


def remote_used(m, bls, kv_r, act_r):
    """Remote bytes the block's cache fills (all layers)."""
    return bls * m.n_layers * cache_bytes(m, kv_r, act_r)


def as_disk_tier(r: offload.OffloadRates, t: RemoteTier, mode) -> offload.OffloadRates:
    """The offloading system's rates with the remote tier in FlexGen's third-tier (disk) slot, so FlexGen's LP
    and batch search (`offload.flexgen_search`) place weights, cache and hidden states on it: reads and writes
    at link / traffic(mode), capacity the mode's usable bytes (undoing FlexGen's mem_alpha, which the usable
    fraction replaces). The per-transfer round trip (µs against layer transfers of many ms) is left out."""
    bw = t.link_bytes_per_s / traffic(t, mode)
    return dataclasses.replace(
        r, dtoc_bytes_per_s=bw, ctod_cache_prefill_bytes_per_s=bw, ctod_hidden_prefill_bytes_per_s=bw,
        ctod_gen_bytes_per_s=bw, disk_capacity_bytes=usable_bytes(t, mode) / r.mem_alpha)
