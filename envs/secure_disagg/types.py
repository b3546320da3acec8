"""SecureDisagg-v0's parameters and state."""

from __future__ import annotations

import jax

from memgym.sim import disagg, offload
from memgym.sim.specs import ModelSpec, pytree_dataclass


@pytree_dataclass(static=("bins", "remote_bins", "batch_bins", "max_steps"))
class SecureDisaggParams:
    model: ModelSpec
    rates: offload.OffloadRates
    remote: disagg.RemoteTier
    wg: jax.Array  # share of the weights resident on the GPU (the largest that fits)
    gbs: jax.Array
    prompt_len: jax.Array
    gen_len: jax.Array
    tenant: jax.Array  # security requirement level 0..4 (disagg.REQUIREMENTS)
    max_batch: jax.Array  # the largest block any allowed mode fits (entries in the smaller form)
    base_batch: jax.Array  # the software-RDMA baseline's block
    base_step_s: jax.Array  # f[max_steps]: the baseline's step times
    oracle_plan: jax.Array  # i32[3]: (share bin, mode, block bin) of the best static plan
    heuristic_plan: jax.Array  # i32[3]: the same for TDMem's heuristic (`cheapest_secure_mode` and `plan`)
    mode_plans: jax.Array  # i32[7, 2]: `plan` (share bin, block bin) for each remote mode
    first_ok: jax.Array  # bool[7, batch_bins]: the first step fits at (mode, block bin) (`system.first_tables`)
    first_share_ok: jax.Array  # bool[7, batch_bins, bins]: ... and at each share bin
    first_rho: jax.Array  # f[7, batch_bins, bins, 2]: the fitting interval of remote shares there
    bins: int = 11
    remote_bins: int = 11
    batch_bins: int = 8
    max_steps: int = 16


@pytree_dataclass
class SecureDisaggState:
    tokens: jax.Array  # f[4] per sequence: K,V local, activation local, K,V remote, activation remote
    batch: jax.Array
    mode: jax.Array  # i32 (-1 before the first step)
    last_pcie_s: jax.Array
    last_gpu_s: jax.Array
    last_net_s: jax.Array
    step: jax.Array  # i32

