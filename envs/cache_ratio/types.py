"""CacheRatio-v0's parameters and state."""

from __future__ import annotations

import jax

from memgym.sim import offload
from memgym.sim.specs import ModelSpec, pytree_dataclass


@pytree_dataclass(static=("bins", "batch_bins", "max_steps", "convert_bins"))
class CacheRatioParams:
    model: ModelSpec
    rates: offload.OffloadRates
    wg: jax.Array  # share of the weights resident on the GPU (the largest that fits, fixed per scenario)
    gbs: jax.Array  # GPU batch size (sequences per GPU batch; bounds the GPU working set)
    prompt_len: jax.Array
    gen_len: jax.Array
    max_batch: jax.Array  # largest block (sequences) that fits with an all-activation cache
    kv_batch: jax.Array  # largest block that fits with an all-KV cache (the baseline's block)
    bins: int = 11
    batch_bins: int = 8
    max_steps: int = 16
    convert_bins: int = 0  # 0: no convert action; >= 2: bins of the fraction of activation entries converted


@pytree_dataclass
class CacheRatioState:
    kv_tokens: jax.Array  # per sequence, cached as K,V
    act_tokens: jax.Array  # per sequence, cached as activations
    batch: jax.Array  # sequences in the block (0 before the first step)
    last_pcie_s: jax.Array
    last_gpu_s: jax.Array
    step: jax.Array  # i32
