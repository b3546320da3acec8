"""Policies for CacheRatio-v0, all `policy(key, obs, state, params) -> action i32[len(action_nvec)]`
(activation-share bin, block-size bin; the block bin matters at the first step only; with `convert_bins` >= 2
a convert bin follows, 0 = convert nothing, which every policy but `random` picks). All are jittable and
vmappable.

- `hybridserve`: HybridServe's balance. The activation share a* that equalises the step's PCIe time and GPU
  time (both affine in a; `offload.balance_share`), and at the first step the largest block that fits host
  memory when the cache is stored at a* (balance and block iterated twice: the balance depends on the block
  only through the weights' share of PCIe time). Each step takes the smallest feasible share bin at or above
  a* (rounded to the bin grid), so it never needs projection.
- `flexgen`: FlexGen's choice inside this environment's system: an all-KV cache (the LP never picks
  activations: it has no such variable) at the block its batch search settles on when throughput grows with
  the block, the largest all-KV block that fits. The full LP over the nine placement fractions
  (`offload.flexgen_search`, scipy's HiGHS, `--cpu-cache-compute` on and off) is host-side numpy; it runs in
  `memgym reproduce hybridserve`, where FlexGen also places weights, cache and hidden states freely.
- `all_kv`: all-KV with GPU attention ("all-KV on the GPU"), at the largest block that fits all-KV (= the
  baseline; its reward is 1 by construction).
- `all_activation`: every entry an activation, at the largest block (max_batch).
- `oracle`: the best static (share, block) pair over the whole bin grid, scored by the episode's exact mean
  reward (`cache_ratio.static_episode`), re-derived every step (stateless) and held.
- `random`: uniform over the unmasked bins of each dimension (the convert bin included).

Recompute-from-token-ids (no cache at all) does not fit this action space; `memgym reproduce hybridserve`
reports it beside the others (`offload`-based estimate there).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memgym.envs import cache_ratio as cr
from memgym.envs.core import masked_random, split_mask
from memgym.sim import offload

_ENV = cr.CacheRatio()


def _with_convert(action, params, convert_bin=0):
    """The action with the convert bin appended when the environment has the convert action."""
    if params.convert_bins >= 2:
        return jnp.concatenate([action, jnp.reshape(jnp.asarray(convert_bin, action.dtype), (1,))])
    return action


def _batch_bin_for(params, batch):
    """The largest block bin whose block is ≤ batch."""
    span = jnp.maximum(params.max_batch - params.kv_batch, 1e-6)
    j = jnp.floor((batch - params.kv_batch) / span * max(params.batch_bins - 1, 1) + 1e-4)
    return jnp.clip(j, 0, params.batch_bins - 1).astype(jnp.int32)


def _feasible_share_at_least(obs, params, share):
    """The smallest unmasked share bin ≥ share (rounded to the grid); the largest unmasked one if none."""
    mask = split_mask(obs.action_mask, (params.bins, params.batch_bins))[0]
    i = jnp.arange(params.bins)
    want = jnp.round(share * (params.bins - 1))
    up = jnp.min(jnp.where(mask & (i >= want), i, params.bins))
    return jnp.where(up < params.bins, up, jnp.max(jnp.where(mask, i, 0))).astype(jnp.int32)


def balance(params, batch, kv_tokens, act_tokens):
    """a* at the coming step's context for a block of `batch` sequences."""
    p = cr.system_placement(params, 0.0)
    ctx = kv_tokens + act_tokens + cr.tokens_per_step(params) / 2.0
    ctx = jnp.maximum(ctx, params.prompt_len)
    return offload.balance_share(params.model, params.rates, p, batch, jnp.minimum(params.gbs, batch), ctx)


def _largest_block(params, share):
    """The largest block that fits host memory when the whole cache is stored at `share`."""
    end = params.prompt_len + params.gen_len
    p = cr.system_placement(params, 0.0)
    return offload.max_block(params.model, params.rates, p, params.gbs, params.prompt_len, (1 - share) * end,
                             share * end)


def hybridserve(key, obs, state, params):
    first = state.step == 0
    mid = params.prompt_len + params.gen_len / 2.0
    a = balance(params, params.kv_batch, mid, 0.0)
    for _ in range(2):
        b = jnp.clip(_largest_block(params, a), 1.0, params.max_batch)
        a = balance(params, b, mid, 0.0)
    b = jnp.clip(_largest_block(params, a), 1.0, params.max_batch)
    batch = jnp.where(first, b, state.batch)
    a_now = jnp.where(first, a, balance(params, batch, state.kv_tokens, state.act_tokens))
    share_bin = _feasible_share_at_least(obs, params, a_now)
    batch_bin = jnp.where(first, _batch_bin_for(params, batch), _ENV._current_batch_bin(state, params))
    return _with_convert(jnp.stack([share_bin, batch_bin]).astype(jnp.int32), params)


def _static(share, batch_of):
    def policy(key, obs, state, params):
        first = state.step == 0
        bb = jnp.where(first, _batch_bin_for(params, batch_of(params)), _ENV._current_batch_bin(state, params))
        return _with_convert(jnp.stack([_feasible_share_at_least(obs, params, share), bb]).astype(jnp.int32), params)
    return policy


all_kv = _static(0.0, lambda p: p.kv_batch)
flexgen = _static(0.0, lambda p: p.kv_batch)
all_activation = _static(1.0, lambda p: p.max_batch)


def static_grid_rewards(params):
    """Mean episode reward f[bins, batch_bins] of every static (share, block) pair; -inf where the block
    overflows host memory at that share by the run's end."""
    shares = jnp.linspace(0.0, 1.0, params.bins)
    batches = _ENV.batch_of(jnp.arange(params.batch_bins), params)
    k = cr.tokens_per_step(params)
    end = params.prompt_len + params.gen_len

    def score(a, b):
        t, base = cr.static_episode(params, a, b)
        r = (b * k / t) / (params.kv_batch * k / base)
        fits = cr.host_used(params, b, (1 - a) * end, a * end) <= offload.capacities(params.rates)[1] * (1 + 1e-6)
        return jnp.where(fits, r.mean(), -jnp.inf)
    return jax.vmap(lambda a: jax.vmap(lambda b: score(a, b))(batches))(shares)


def oracle(key, obs, state, params):
    grid = static_grid_rewards(params)
    flat = jnp.argmax(grid.reshape(-1))
    i, j = flat // params.batch_bins, flat % params.batch_bins
    bb = jnp.where(state.step == 0, j, _ENV._current_batch_bin(state, params))
    si = _feasible_share_at_least(obs, params, i / (params.bins - 1))
    return _with_convert(jnp.stack([si, bb]).astype(jnp.int32), params)


random = masked_random(_ENV)


POLICIES = {"hybridserve": hybridserve, "oracle": oracle, "flexgen": flexgen, "all_kv": all_kv,
            "all_activation": all_activation, "random": random}
HEURISTIC = "hybridserve"
