"""SecureDisagg-v0's planning: the nearest fitting action (the projection and the planned policies share it),
static plans (HybridServe's balance share and the largest block that fits), playing a plan through the
dynamics, and TDMem's cheapest secure mode for a tenant."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from memgym.sim import disagg, offload
from memgym.sim.server import system_placement

from .system import (advance, completion_ok, current_batch_bin, host_used, initial_state, min_form,
                     remote_used, step_rho_ok, step_share_ok)


def rise(ok, i0):
    """The smallest feasible index ≥ i0, else the largest feasible one (i0 if none is feasible)."""
    idx = jnp.arange(ok.shape[0])
    up = jnp.min(jnp.where(ok & (idx >= i0), idx, ok.shape[0]))
    return jnp.where(up < ok.shape[0], up, jnp.where(ok.any(), jnp.max(jnp.where(ok, idx, -1)), i0))


def fall(ok, i0):
    """The largest feasible index ≤ i0, else the smallest feasible one (i0 if none is feasible)."""
    idx = jnp.arange(ok.shape[0])
    down = jnp.max(jnp.where(ok & (idx <= i0), idx, -1))
    return jnp.where(down >= 0, down, jnp.where(ok.any(), jnp.min(jnp.where(ok, idx, ok.shape[0])), i0))


def _share_bin(ok, i0, params):
    """The nearest fitting share bin from i0 (upwards first); the smaller form's bin if none fits (a state
    only float rounding can reach: it adds the fewest bytes)."""
    small = jnp.round(min_form(params) * (params.bins - 1)).astype(jnp.int32)
    return jnp.where(ok.any(), rise(ok, i0), small)


def fit_action(params, state, mode, share_bin, rho_bin, batch_bin):
    """The nearest fitting action in `mode` (at the first step; later the episode's): the block falls to the
    largest fitting bin ≤ `batch_bin` (first step; later the episode's block), the share moves to the nearest
    fitting bin from `share_bin` (upwards first), then the remote share likewise from `rho_bin`. The first
    step reads its feasibility from the params' `first_tables`; later steps compute it at the episode's mode
    and block (`step_share_ok`, `step_rho_ok`)."""
    first = state.step == 0
    md = jnp.clip(mode, 0, params.first_ok.shape[0] - 1)
    bb = jnp.where(first, fall(params.first_ok[md], batch_bin), current_batch_bin(params, state))
    si = _share_bin(step_share_ok(params, state, md, bb), share_bin, params)
    ri = rise(step_rho_ok(params, state, md, bb, si), rho_bin)
    return jnp.stack([si, ri, mode, bb]).astype(jnp.int32)


def plan_action(params, state, mode, share_bin, batch_bin):
    """An action that holds a plan: at the first step `mode`, the largest feasible block bin ≤ `batch_bin` and
    the nearest feasible share bin from `share_bin` up; later steps keep block and mode. The remote share is
    the smallest feasible one: new entries stay local until the run's end would overflow host memory
    (local-first spill). Used by the planned policies and the baseline."""
    return fit_action(params, state, jnp.where(state.step == 0, mode, state.mode), share_bin, 0, batch_bin)


def balance_share(params, batch, ctx):
    """HybridServe's balance share (PCIe time = GPU time) at context `ctx` for a block of `batch`."""
    p = system_placement(params, 0.0)
    return offload.balance_share(params.model, params.rates, p, batch, jnp.minimum(params.gbs, batch), ctx)


def largest_block(params, mode, share):
    """The largest block (float sequences) whose whole run fits with every entry in form `share`, split freely
    between host memory and the mode's usable remote memory (bisection; feasibility falls with the block)."""
    end = params.prompt_len + params.gen_len
    ok = lambda b: completion_ok(params, mode, b, jnp.zeros(4), (1 - share) * end, share * end)  # noqa: E731
    per_seq = params.model.n_layers * disagg.cache_bytes(params.model, 1 - share, share) * end
    hi0 = (offload.capacities(params.rates)[1] + disagg.usable_bytes(params.remote, mode)) / per_seq + 2.0

    def body(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        good = ok(mid)
        return jnp.where(good, mid, lo), jnp.where(good, hi, mid)
    lo, _ = jax.lax.fori_loop(0, 40, body, (jnp.float32(0.0), hi0))
    return lo


def plan(params, mode):
    """A static plan for `mode`: (share bin, block bin) from HybridServe's balance at the mean decode context
    and the largest block bin that fits at it (balance and block iterated twice)."""
    mid = params.prompt_len + params.gen_len / 2.0
    a = balance_share(params, jnp.maximum(params.gbs, 1.0), mid)
    for _ in range(2):
        b = jnp.maximum(largest_block(params, mode, a), 1.0)
        a = balance_share(params, b, mid)
    si = jnp.ceil(a * (params.bins - 1) - 1e-4).astype(jnp.int32)
    a = si / (params.bins - 1)
    b = largest_block(params, mode, a)
    bb = jnp.floor(b / jnp.maximum(params.max_batch, 1.0) * params.batch_bins - 1.0 + 1e-4)
    return si, jnp.clip(bb, 0, params.batch_bins - 1).astype(jnp.int32)


def fits(params, state):
    """Whether a state's block and cache fit host memory and its mode's usable remote memory (both only grow
    over a run, so the final state decides a whole run)."""
    host = host_used(params, state.batch, state.tokens) <= offload.capacities(params.rates)[1] * (1 + 1e-5)
    rem = remote_used(params, state.batch, state.tokens) <= disagg.usable_bytes(params.remote, state.mode) * (1 + 1e-5)
    return host & rem


def play_plan(params, mode, share_bin, batch_bin):
    """Run a static plan through the dynamics (no projection: `plan_action` keeps it feasible where anything
    is): (the final state, `advance`'s per-step outputs, each f[T])."""
    def body(state, _):
        return advance(params, state, plan_action(params, state, mode, share_bin, batch_bin))
    return jax.lax.scan(body, initial_state(), None, length=params.max_steps)


_SECURE_FROM = np.asarray([disagg.SECURE, disagg.SECURE, disagg.REMAP, disagg.DUMMY, disagg.ORAM], np.int32)


def cheapest_secure_mode(params):
    """The first of TDMem's secure modes whose level meets the tenant's requirement."""
    return jnp.asarray(_SECURE_FROM)[jnp.clip(jnp.round(params.tenant), 0, 4).astype(jnp.int32)]
