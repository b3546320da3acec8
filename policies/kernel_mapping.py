"""Policies for KernelMapping-v0, all with the signature `policy(key, obs, state, params) -> action i32[3]`.

- `h2m2`: H2M2's runtime algorithm (paper Alg. 1 as described): sublayers in priority order attention → qkv →
  fc; each takes the split that minimises the slower of its two sides among the splits that fit the HBM and
  LPDDR capacity still free; re-run every step (the footprint tracker fires every iteration as the KV grows);
  while the footprint grows, weights once evicted from HBM are never brought back (qkv and fc shares never
  rise); when it shrinks (requests finished) the greedy maps afresh.
  The paper's per-sublayer time model ("ideal time × a per-sublayer hyper-parameter for arithmetic
  intensity") is taken to be exact: the hyper-parameter is the simulator's own roofline ratio, so the greedy
  loses to the oracle only through its order and its myopia, not through a wrong time model.
- `a_major`, `q_major`, `f_major`: the named sublayer takes the largest HBM share that fits, then an
  exhaustive search over the other two (the paper's restricted N² searches).
- `whole_sublayer`: each sublayer entirely on one side (sublayer granularity), best of the 8 mappings.
- `flexgen_static`: FlexGen's LP idea (one HBM fraction per data type: weights, KV) with its bandwidth-only
  cost model, solved once for the run's largest footprint and held for the whole episode.
- `lpddr_only`: everything on the LPDDR side (the H2M2 hardware used as if HBM were absent).
- `oracle`: exhaustive search over all bins³ mappings for the step at hand (migration included).
- `random`: uniform over the unmasked bins.
"""

from __future__ import annotations

import jax.numpy as jnp

from memgym.envs.core import masked_random
from memgym.envs.kernel_mapping import KernelMapping
from memgym.sim import asymmetric
from memgym.sim.specs import HBM, LPDDR

_ENV = KernelMapping()
ATTENTION, QKV, FC = 0, 1, 2


def _costs(state, params):
    return _ENV.bin_costs(state, params)


def h2m2(key, obs, state, params):
    return _ENV.h2m2_mapping(state, params)


def _best_pair(cost, hb, lb, hw, fixed, i_fixed, a, b):
    """Exhaustive search over sublayers a and b given sublayer `fixed` at bin i_fixed."""
    tot = cost[:, a][:, None] + cost[:, b][None, :]
    ok = asymmetric.fits_bytes(hw, hb[:, a][:, None] + hb[:, b][None, :] + hb[i_fixed, fixed],
                               lb[:, a][:, None] + lb[:, b][None, :] + lb[i_fixed, fixed])
    flat = jnp.argmin(jnp.where(ok, tot, jnp.inf))
    n = cost.shape[0]
    return flat // n, flat % n


def _major(first):
    others = [x for x in (ATTENTION, QKV, FC) if x != first]

    def policy(key, obs, state, params):
        cost, hb, lb, _ = _costs(state, params)
        rest_l = lb[0, others[0]] + lb[0, others[1]]
        ok = asymmetric.fits_bytes(params.hw, hb[:, first], lb[:, first])  # others may still go fully to LPDDR
        ok = ok & (lb[:, first] + rest_l <= params.hw.tier_capacity_bytes[LPDDR]) | (jnp.arange(params.bins) == 0)
        i = jnp.max(jnp.where(ok, jnp.arange(params.bins), 0))
        ja, jb = _best_pair(cost, hb, lb, params.hw, first, i, others[0], others[1])
        out = [None] * 3
        out[first], out[others[0]], out[others[1]] = i, ja, jb
        return jnp.stack(out).astype(jnp.int32)

    policy.__name__ = ("a", "q", "f")[first] + "_major"
    return policy


a_major, q_major, f_major = _major(ATTENTION), _major(QKV), _major(FC)


def _grid_search(cost, hb, lb, hw, extra=None):
    """argmin over all bins³ mappings of Σ_s cost (+ extra[i, j, k]) subject to both capacities."""
    tot = cost[:, 0][:, None, None] + cost[:, 1][None, :, None] + cost[:, 2][None, None, :]
    if extra is not None:
        tot = tot + extra
    h = hb[:, 0][:, None, None] + hb[:, 1][None, :, None] + hb[:, 2][None, None, :]
    lo = lb[:, 0][:, None, None] + lb[:, 1][None, :, None] + lb[:, 2][None, None, :]
    flat = jnp.argmin(jnp.where(asymmetric.fits_bytes(hw, h, lo), tot, jnp.inf).reshape(-1))
    n = cost.shape[0]
    return jnp.stack([flat // (n * n), (flat // n) % n, flat % n]).astype(jnp.int32)


def oracle(key, obs, state, params):
    """The best mapping for this step, migration from the current mapping included."""
    cost, hb, lb, foot = _costs(state, params)
    n_it = params.iterations_per_step
    grid = jnp.linspace(0.0, 1.0, params.bins)
    prev = state.mapping
    mig = jnp.abs(grid[:, None] - prev[None, :]) * foot[None, :] / (
        params.hw.link_bw_bytes_per_s * params.hw.eff_memory)  # [bins, 3]
    mig = jnp.where(state.step == 0, 0.0, mig)
    extra = mig[:, 0][:, None, None] + mig[:, 1][None, :, None] + mig[:, 2][None, None, :]
    return _grid_search(n_it * cost, hb, lb, params.hw, extra)


def whole_sublayer(key, obs, state, params):
    cost, hb, lb, _ = _costs(state, params)
    ends = jnp.array([0, params.bins - 1])
    pick = _grid_search(cost[ends], hb[ends], lb[ends], params.hw)
    return ends[pick].astype(jnp.int32)


def flexgen_static(key, obs, state, params):
    """FlexGen-style LP: one HBM fraction for all weights, one for the KV, bandwidth-only cost
    max(bytes_HBM / BW_HBM, bytes_LPDDR / BW_LPDDR), solved for the largest footprint of the run (every slot
    at context_max) on the bin grid; ties go to the larger weight fraction (FlexGen keeps weights close)."""
    m, hw = params.model, params.hw
    foot = asymmetric.footprints(m, hw, params.batch * params.context_max)
    grid = jnp.linspace(0.0, 1.0, params.bins)
    w_tot = foot[QKV] + foot[FC]
    c = grid[:, None]  # KV fraction
    w = grid[None, :]  # weight fraction
    hbm = c * foot[ATTENTION] + w * w_tot
    lp = (1 - c) * foot[ATTENTION] + (1 - w) * w_tot
    t = jnp.maximum(hbm / hw.tier_bw_bytes_per_s[HBM], lp / hw.tier_bw_bytes_per_s[LPDDR])
    ok = asymmetric.fits_bytes(hw, hbm, lp, hbm_frac=0.99)
    t = jnp.where(ok, t, jnp.inf)
    n = params.bins
    # lexicographic: minimal time, then the larger weight fraction
    score = t.reshape(-1) * (1 + 1e-6) - 1e-9 * jnp.tile(jnp.arange(n), n) * jnp.abs(t.reshape(-1).min())
    flat = jnp.argmin(score)
    ci, wi = flat // n, flat % n
    return jnp.stack([ci, wi, wi]).astype(jnp.int32)


def lpddr_only(key, obs, state, params):
    return jnp.zeros(3, jnp.int32)


random = masked_random(_ENV)


POLICIES = {
    "h2m2": h2m2, "oracle": oracle, "a_major": a_major, "q_major": q_major, "f_major": f_major,
    "whole_sublayer": whole_sublayer, "flexgen_static": flexgen_static, "lpddr_only": lpddr_only,
    "random": random,
}
HEURISTIC = "h2m2"
