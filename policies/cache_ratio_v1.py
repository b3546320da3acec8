"""Policies for CacheRatio-v1, all `policy(key, obs, state, params) -> action i32[1]` (the activation-share bin),
jittable and vmappable.

- `hybridserve`: HybridServe's balance applied every step: the activation share a* that equalises the coming
  decode's PCIe time and GPU time for the running batch at its mean context (`offload.balance_share`; before
  anything runs, for the waiting requests at the mean prompt), then the smallest feasible bin at or above a*
  (rounded to the grid). It looks at this step only: it ignores the queue and what host memory the entries
  will hold for the rest of their requests' lives.
- `all_kv`: FlexGen-style all-K,V (share 0), raised to the smallest feasible share when host memory requires.
- `all_activation`: every entry an activation (share 1).
- `random`: uniform over the unmasked bins.
- `oracle`: a clairvoyant receding-horizon search, NOT an upper bound: at every step it plays each share bin,
  held constant (projected like any action), for the next `ORACLE_HORIZON` steps on the exact model with the
  episode's future arrivals and lengths (which no causal policy sees), and takes the first action of the
  sequence with the largest summed reward. It is a strong dynamic baseline with perfect foresight over a short
  horizon; a policy that changes its share within the horizon, or plans beyond it, can beat it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memgym.envs import cache_ratio_v1 as v1
from memgym.envs.core import masked_random
from memgym.sim import offload, serving
from memgym.sim.server import system_placement

_ENV = v1.CacheRatioV1()
ORACLE_HORIZON = 16  # steps the oracle looks ahead (each bin held constant over them)


def feasible_at_least(mask, params, share):
    """The smallest unmasked share bin ≥ share (rounded to the grid); the largest unmasked one if none."""
    return v1.bin_at_or_above(mask, jnp.round(share * (params.bins - 1)), params).astype(jnp.int32)


def balance(params, srv: serving.ServingState):
    """a* for the coming step's decode of the running batch (the waiting requests, at most n_slots, at the mean
    prompt when nothing runs)."""
    slots = srv.slots
    act = slots.active.astype(jnp.float32)
    n = act.sum()
    ctx_run = ((slots.kv_tokens + slots.act_tokens) * act).sum() / jnp.maximum(n, 1.0)
    n_wait = jnp.clip(serving.waiting(srv).astype(jnp.float32), 1.0, params.n_slots)
    bls = jnp.where(n > 0, n, n_wait)
    ctx = jnp.where(n > 0, ctx_run, params.prompt_mean) + params.iterations / 2.0
    p = system_placement(params, 0.0)
    return offload.balance_share(params.model, params.rates, p, bls, jnp.minimum(params.gbs, bls), ctx)


def hybridserve(key, obs, state, params):
    a = balance(params, state.serving)
    return feasible_at_least(obs.action_mask, params, a)[None]


def _static(share):
    def policy(key, obs, state, params):
        return feasible_at_least(obs.action_mask, params, jnp.float32(share))[None]
    return policy


all_kv = _static(0.0)
all_activation = _static(1.0)
random = masked_random(_ENV)


def lookahead_rewards(params, srv: serving.ServingState, horizon: int):
    """f[bins]: the summed reward of holding each share bin (projected each step) for `horizon` steps."""
    def play(b):
        def body(s, _):
            bb, _ = v1.project_bin(v1.share_mask(params, s.slots), b, params)
            s, out = serving.advance(params, s, bb.astype(jnp.float32) / (params.bins - 1))
            return s, v1.step_reward(out, params)[1]
        return jax.lax.scan(body, srv, None, length=horizon)[1].sum()
    return jax.vmap(play)(jnp.arange(params.bins))


def oracle(key, obs, state, params):
    r = lookahead_rewards(params, state.serving, ORACLE_HORIZON)
    return feasible_at_least(obs.action_mask, params, jnp.argmax(r) / (params.bins - 1))[None]


POLICIES = {"hybridserve": hybridserve, "oracle": oracle, "all_kv": all_kv, "all_activation": all_activation,
            "random": random}
HEURISTIC = "hybridserve"
