"""KernelMapping-v0's parameters and state."""

from __future__ import annotations

import jax

from memgym.sim.specs import HardwareSpec, ModelSpec, pytree_dataclass


@pytree_dataclass(static=("bins", "n_slots", "max_steps"))
class KernelMappingParams:
    model: ModelSpec
    hw: HardwareSpec
    baseline_hw: HardwareSpec
    context_start_min: jax.Array
    context_start_max: jax.Array
    context_max: jax.Array
    finish_prob: jax.Array  # per iteration (dynamic workload only)
    iterations_per_step: jax.Array
    batch: jax.Array  # f32: running requests, <= n_slots (slots past it stay empty)
    dynamic: jax.Array  # bool: requests finish early and the episode is truncated rather than terminated
    bins: int = 16
    n_slots: int = 32  # the slot array's size (static); a scenario distribution pads every batch to its largest
    max_steps: int = 96


@pytree_dataclass
class KernelMappingState:
    contexts: jax.Array  # f[B]
    mapping: jax.Array  # f[3] HBM shares in use
    step: jax.Array  # i32
    last_kv_tokens: jax.Array  # KV tokens the current mapping was chosen for (the footprint tracker's memory)
    last_side_times: jax.Array  # f[6] last iteration's HBM-side and LPDDR-side time per sublayer / baseline
