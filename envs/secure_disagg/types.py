"""SecureDisagg-v0's parameters and state."""

from __future__ import annotations

import jax

from memgym.sim import disagg, offload
from memgym.sim.specs import ModelSpec, pytree_dataclass

from ..core import Observation

FEATURE_NAMES = ("kv_local", "act_local", "kv_remote", "act_remote", "last_pcie", "last_gpu", "last_net", "host_free",
                 "remote_free", "step_frac", "batch_frac", "tenant", "mode", "pcie_at_kv", "gpu_at_kv", "pcie_at_act",
                 "gpu_at_act", "net_all_remote", "hint_share", "hint_mode", "hint_block", "local_blocks")


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
    local_blocks: jax.Array  # f32: the share of block bins whose run fits host memory alone (`system.local_blocks`)
    first_obs: Observation  # what every reset returns: the initial state's observation, a function of the params
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

