"""Roofline timing of a kernel table on one compute site.

    t_k = combine(F_k / (η_c[u]·P[site,u]·util_k),  Σ_m bytes_k,m / (η_m·BW[m,site]))  + t0[u] + latency
    combine(c, m) = max(c, m) + (1 − overlap)·min(c, m)     (overlap 1: perfect overlap; 0: serial)

Matrix-unit utilisation `util = rows / (rows + matrix_fill_rows)` models a weight-stationary systolic array
that streams `rows` tokens through each weight tile after filling it (0 fill = ideal, what a GPU fit uses).
A kernel that moves bytes from a tier its site cannot reach takes infinite time.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .kernels import KernelTable
from .specs import MATRIX, HardwareSpec


def safe_div(num, den):
    """num / den, 0 where num is 0, +inf where num > 0 and den is 0."""
    ok = den > 0
    q = num / jnp.where(ok, den, 1.0)
    return jnp.where(num > 0, jnp.where(ok, q, jnp.inf), 0.0)


def combine(compute_s, memory_s, overlap):
    """max(c, m) when overlap = 1, c + m when overlap = 0, linear in between."""
    return jnp.maximum(compute_s, memory_s) + (1.0 - overlap) * jnp.minimum(compute_s, memory_s)


def matrix_utilisation(rows, fill_rows):
    rows = jnp.asarray(rows, jnp.float32)
    return jnp.where(rows > 0, rows / (rows + fill_rows), 1.0)


def kernel_times(table: KernelTable, hw: HardwareSpec, site: int, placement):
    """Per-kernel times on `site` with tensors placed by `placement` f[C, M] (fractions of each tensor
    class's bytes in each tier; rows sum to 1). Returns a dict of f[K] arrays (seconds) and bytes f[K, M]."""
    unit = np.asarray(table.unit)
    peak = hw.peak_flops_per_s[site][unit]
    util = jnp.where(unit == MATRIX, matrix_utilisation(table.rows, hw.matrix_fill_rows), 1.0)
    compute = safe_div(table.flops, peak * hw.eff_compute[unit] * util)
    placement = jnp.asarray(placement, table.bytes.dtype)
    bw = hw.access_bw_bytes_per_s[:, site] * hw.eff_memory  # [M]
    # seconds per byte of each tensor class, and its worst latency, over the tiers it is spread across
    s_per_byte = jnp.where(placement > 0, placement * safe_div(1.0, bw)[None, :], 0.0).sum(axis=1)  # [C]
    class_latency = jnp.where(placement > 0, hw.tier_latency_s[None, :], 0.0).max(axis=1)  # [C]
    has = table.bytes > 0
    memory = jnp.where(has, table.bytes * s_per_byte[None, :], 0.0).sum(axis=1)
    latency = jnp.where(has, class_latency[None, :], 0.0).max(axis=1)
    bytes_tier = table.bytes @ placement  # [K, M]
    comm = safe_div(table.comm_bytes, hw.interconnect_bw_bytes_per_s) + jnp.where(
        table.comm_bytes > 0, hw.interconnect_latency_s, 0.0)
    has_work = (table.flops > 0) | (table.bytes.sum(axis=1) > 0) | (table.comm_bytes > 0)
    launches = 1.0 if table.launches is None else table.launches
    overhead = jnp.where(has_work, hw.overhead_s[unit] * launches, 0.0)
    time = combine(compute, memory, hw.overlap) + latency + comm + overhead
    return {
        "compute_s": compute,
        "memory_s": memory,
        "comm_s": comm,
        "overhead_s": overhead + latency,
        "time_s": time,
        "bytes_tier": bytes_tier,
    }


def bound_of(times) -> np.ndarray:
    """'compute', 'memory', 'comm' or 'overhead': which term dominates each kernel (host-side helper)."""
    parts = np.stack([np.asarray(times[k]) for k in ("compute_s", "memory_s", "comm_s", "overhead_s")])
    names = np.array(["compute", "memory", "comm", "overhead"])
    return np.where(parts.sum(axis=0) > 0, names[parts.argmax(axis=0)], "-")


def energy_j(bytes_tier, hw: HardwareSpec):
    """Memory-access energy of bytes read per tier f[..., M]."""
    return (bytes_tier * hw.tier_energy_j_per_byte).sum(axis=-1)
