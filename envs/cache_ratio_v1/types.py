"""CacheRatio-v1's parameters and state."""

from __future__ import annotations

import jax

from memgym.sim import offload
from memgym.sim.serving import ServingState
from memgym.sim.specs import ModelSpec, pytree_dataclass


@pytree_dataclass(static=("bins", "n_slots", "n_requests", "max_steps"))
class CacheRatioV1Params:
    model: ModelSpec
    rates: offload.OffloadRates
    wg: jax.Array  # share of the weights resident on the GPU (the largest that fits the longest request)
    gbs: jax.Array  # GPU batch size (sequences per GPU batch; bounds the GPU working set)
    prompt_len: jax.Array  # the longest prompt (tokens; lengths are clipped to it)
    gen_len: jax.Array  # the longest output (tokens)
    iterations: jax.Array  # decode iterations per step
    prompt_mean: jax.Array  # log-normal prompt lengths: mean (tokens) and shape σ
    prompt_sigma: jax.Array
    output_mean: jax.Array  # log-normal output lengths
    output_sigma: jax.Array
    arrival_rate_per_s: jax.Array  # Poisson arrivals after t = 0 (requests/s; 0 = none)
    n_initial: jax.Array  # requests waiting at t = 0
    ref_tokens_per_s: jax.Array  # the reward's unit: all-KV serving of a full batch of mean requests
    ref_batch: jax.Array  # that batch (requests)
    bins: int = 11
    n_slots: int = 128
    n_requests: int = 2048
    max_steps: int = 256


@pytree_dataclass
class CacheRatioV1State:
    serving: ServingState
    last_pcie_s: jax.Array
    last_gpu_s: jax.Array
    last_step_s: jax.Array
    step: jax.Array  # i32
