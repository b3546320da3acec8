"""SecureDisagg-v0's system: cached tokens per form and tier, host and remote memory use, the remote shares
that keep a run fitting, step times, and one step of the dynamics (`advance`).

Tokens per sequence are f[4]: (K,V local, activation local, K,V remote, activation remote). The server is
`memgym.sim.server`'s; the remote tier and its modes are `memgym.sim.disagg`'s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from memgym.sim import disagg, offload
from memgym.sim.server import system_placement, tokens_per_step

from .types import SecureDisaggState

N_MODES = len(disagg.MODES)
LEVELS = np.asarray(disagg.LEVELS, np.float32)  # numpy: a module constant must never become a tracer


def split(n, share, rho):
    """n new tokens in form `share`, a share `rho` of them remote → f[4] (kv_l, act_l, kv_r, act_r)."""
    return n * jnp.stack([(1 - share) * (1 - rho), share * (1 - rho), (1 - share) * rho, share * rho])


def host_used(params, batch, tokens):
    p = system_placement(params, 0.0)
    return disagg.host_bytes(params.model, p, batch, jnp.minimum(params.gbs, batch), params.prompt_len, *tokens,
                             params.prompt_len + params.gen_len)


def remote_used(params, batch, tokens):
    return disagg.remote_used(params.model, batch, tokens[2], tokens[3])


def allowed(params):
    """bool[7]: the modes the tenant's requirement allows."""
    return jnp.asarray(LEVELS) >= params.tenant - 1e-6


def min_form(params):
    """The activation share of the smaller cache form (1.0: activations are smaller, as in MHA models)."""
    m = params.model
    return jnp.where(offload.act_bytes_per_token_layer(m) <= offload.kv_bytes_per_token_layer(m), 1.0, 0.0)


def completion_bounds(params, mode, batch, fixed, free_kv, free_act):
    """(u_lo, u_hi): the local fractions of the free tokens (`free_kv`, `free_act` per sequence, split freely
    between host and remote memory once `fixed` f[4] tokens are placed) for which the run fits host memory
    (mem_alpha × capacity) and the mode's usable remote memory. Host and remote bytes are affine in the split,
    so the fitting splits are an interval; it is empty where u_lo > u_hi."""
    host_cap = offload.capacities(params.rates)[1] * (1 + 1e-6)
    rem_cap = disagg.usable_bytes(params.remote, mode) * (1 + 1e-6)
    z = jnp.zeros_like(free_kv)
    a, b = fixed + jnp.stack([free_kv, free_act, z, z]), fixed + jnp.stack([z, z, free_kv, free_act])
    ha, hb = host_used(params, batch, a), host_used(params, batch, b)
    ra, rb = remote_used(params, batch, a), remote_used(params, batch, b)
    u_hi = jnp.where(ha <= host_cap, 1.0, jnp.where(hb <= host_cap, (host_cap - hb) / jnp.maximum(ha - hb, 1e-30), -1.0))
    u_lo = jnp.where(rb <= rem_cap, 0.0, jnp.where(ra <= rem_cap, (rb - rem_cap) / jnp.maximum(rb - ra, 1e-30), 2.0))
    return u_lo, u_hi


def completion_ok(params, mode, batch, fixed, free_kv, free_act):
    u_lo, u_hi = completion_bounds(params, mode, batch, fixed, free_kv, free_act)
    return u_lo <= u_hi + 1e-6


def local_blocks(params):
    """The fraction of block bins whose whole run (prompt + gen entries per sequence) fits host memory alone,
    every entry in the smaller form: a larger block must spill to remote memory before its run ends."""
    end = params.prompt_len + params.gen_len
    s = min_form(params)
    # completion_bounds' u_hi is 1 exactly where every free entry fits host memory (its remote bound is unused)
    u_hi = lambda b: completion_bounds(params, 0, b, jnp.zeros(4), (1.0 - s) * end, s * end)[1]  # noqa: E731
    fits = jax.vmap(u_hi)(batch_of(params, jnp.arange(params.batch_bins))) >= 1.0
    return fits.sum() / params.batch_bins


def _now(params, first):
    """Cache entries written per sequence this step (the prompt's too at the first step)."""
    return jnp.where(first, params.prompt_len, 0.0) + tokens_per_step(params)


def step_bounds(params, mode, batch, tokens, first, share):
    """(ok, rho_lo, rho_hi): whether this step's entries can be written in form `share` (later entries in the
    smaller form, split freely), and the interval of remote shares of this step's entries that keeps the run
    fitting. Bytes cost the same per byte in either form, so with X the local bytes of all entries still to be
    written (this step's N, then the later Lb), the fitting X form [u_lo, u_hi]·(N + Lb), and this step's local
    bytes (1 − rho)·N must leave a later split in reach: rho ∈ [1 − X_hi / N, 1 − (X_lo − Lb) / N]."""
    m = params.model
    now = _now(params, first)
    later = jnp.maximum(params.prompt_len + params.gen_len - tokens.sum() - now, 0.0)
    mf = min_form(params)
    u_lo, u_hi = completion_bounds(params, mode, batch, tokens, later * (1 - mf) + now * (1 - share),
                                   later * mf + now * share)
    n_b = now * disagg.cache_bytes(m, 1 - share, share)
    l_b = later * disagg.cache_bytes(m, 1 - mf, mf)
    total = n_b + l_b
    hi = jnp.clip(1.0 - (u_lo * total - l_b) / n_b, 0.0, 1.0)
    lo = jnp.clip(1.0 - u_hi * total / n_b, 0.0, 1.0)
    lo = jnp.minimum(lo + 1e-4, jnp.maximum(hi, lo))  # a hair inside, so float32 rounding never overflows host
    return u_lo <= u_hi + 1e-6, lo, jnp.maximum(hi, lo)


def step_time(params, mode, batch, tokens, share, rho, first):
    """Seconds of one env step for the whole model: `tokens_per_step` decode iterations at the step's mean
    context (entries of this step in form `share`, remote share `rho`), plus the prefill on the first step.
    Returns (total_s, pcie_s, gpu_s, net_s, net_bytes)."""
    m, r, t = params.model, params.rates, params.remote
    k = tokens_per_step(params)
    gbs = jnp.minimum(params.gbs, batch)
    p = system_placement(params, share)
    prompt = jnp.where(first, params.prompt_len, 0.0)
    half = (k - 1.0) / 2.0 + 1.0  # mean new entries attended over the step's iterations (incl. its own)
    mid = tokens + split(prompt + half, share, rho)
    d = disagg.decode_layer(m, r, t, p, mode, batch, gbs, *mid, share, rho)
    pre = disagg.prefill_layer(m, r, t, p, mode, batch, gbs, params.prompt_len, share, rho)
    l = m.n_layers
    f = lambda dec, pf: l * k * d[dec] + jnp.where(first, l * pre[pf], 0.0)  # noqa: E731
    return (f("layer_s", "layer_s"), f("ctog_s", "ctog_s"), f("gpu_s", "comp_s"), f("net_s", "net_s"),
            f("net_bytes", "net_bytes"))


def batch_of(params, j):
    """Block size of bin j: ⌊max_batch·(j + 1) / batch_bins⌋ sequences (at least 1)."""
    frac = (jnp.asarray(j, jnp.float32) + 1.0) / params.batch_bins
    return jnp.maximum(jnp.floor(params.max_batch * frac + 1e-4), 1.0)


def shares(params):
    return jnp.linspace(0.0, 1.0, params.bins)


def remote_shares(params):
    return jnp.linspace(0.0, 1.0, params.remote_bins)


def share_ok(params, mode, batch, tokens, first):
    """bool[bins]: share bins with a fitting remote split."""
    return jax.vmap(lambda a: step_bounds(params, mode, batch, tokens, first, a)[0])(shares(params))


def rho_mask(params, lo, hi):
    """bool[remote_bins]: remote-share bins within half a bin of the fitting interval [lo, hi] (the env moves
    the realised share into the interval, so the nearest bin is always unmasked)."""
    q, h = remote_shares(params), 0.5 / (params.remote_bins - 1) + 1e-6
    return (q >= lo - h) & (q <= hi + h)


def rho_ok(params, mode, batch, tokens, first, share):
    """bool[remote_bins]: `rho_mask` of the fitting interval of this step's remote shares."""
    _, lo, hi = step_bounds(params, mode, batch, tokens, first, share)
    return rho_mask(params, lo, hi)


def first_tables(params):
    """The first step's feasibility, a function of the params alone (the state is the initial one), per mode
    and block bin: whether the step fits with its entries in the smaller form (bool[7, batch_bins]), each
    share bin's (bool[7, batch_bins, bins]) and the interval of remote shares that fits at each share bin
    (f[7, batch_bins, bins, 2]). `derive` stores them, so a step reads the first step's masks and projection
    instead of recomputing 7 × batch_bins × bins bounds each step."""
    tokens, mf = jnp.zeros(4, jnp.float32), min_form(params)
    bin_shares = jnp.arange(params.bins) / (params.bins - 1)  # a chosen bin's share, as `fit_action` forms it

    def at(md, j):
        b = batch_of(params, j)
        ok = step_bounds(params, md, b, tokens, True, mf)[0]
        s_ok = share_ok(params, md, b, tokens, True)
        _, lo, hi = jax.vmap(lambda a: step_bounds(params, md, b, tokens, True, a))(bin_shares)
        return ok, s_ok, jnp.stack([lo, hi], -1)
    per_mode = lambda md: jax.vmap(lambda j: at(md, j))(jnp.arange(params.batch_bins))  # noqa: E731
    return jax.vmap(per_mode)(jnp.arange(N_MODES, dtype=jnp.int32))


def step_share_ok(params, state, md, bb):
    """bool[bins]: the share bins whose entries fit this step: at the first step read from the params'
    `first_tables` at mode `md` and block bin `bb`; later computed at the episode's mode and block."""
    return jnp.where(state.step == 0, params.first_share_ok[md, bb],
                     share_ok(params, state.mode, state.batch, state.tokens, False))


def step_rho_ok(params, state, md, bb, si):
    """bool[remote_bins]: `rho_mask` of this step's fitting remote shares at share bin `si`, read or computed
    as in `step_share_ok`."""
    _, lo, hi = step_bounds(params, state.mode, state.batch, state.tokens, False, si / (params.bins - 1))
    bounds = jnp.where(state.step == 0, params.first_rho[md, bb, si], jnp.stack([lo, hi]))
    return rho_mask(params, bounds[0], bounds[1])


def realised_rho(params, mode, batch, tokens, first, share, rho_bin):
    """The remote share a bin asks for, moved into the fitting interval."""
    _, lo, hi = step_bounds(params, mode, batch, tokens, first, share)
    return jnp.clip(rho_bin / (params.remote_bins - 1), lo, hi)


def roomiest_mode(params):
    """The allowed mode with the most usable remote memory (feasibility is monotone in it)."""
    usable = jax.vmap(lambda md: disagg.usable_bytes(params.remote, md))(jnp.arange(N_MODES))
    return jnp.argmax(jnp.where(allowed(params), usable, -1.0)).astype(jnp.int32)


def current_batch_bin(params, state):
    j = jnp.round(state.batch / jnp.maximum(params.max_batch, 1.0) * params.batch_bins - 1.0)
    return jnp.clip(j, 0, params.batch_bins - 1).astype(jnp.int32)


def advance(params, state, act):
    """Apply a (feasible) action: (new state, step outputs)."""
    first = state.step == 0
    share = act[0].astype(jnp.float32) / (params.bins - 1)
    mode = jnp.where(first, act[2], state.mode).astype(jnp.int32)
    batch = jnp.where(first, batch_of(params, act[3]), state.batch)
    rho = realised_rho(params, mode, batch, state.tokens, first, share, act[1].astype(jnp.float32))
    total, pcie, gpu, net, net_bytes = step_time(params, mode, batch, state.tokens, share, rho, first)
    new = SecureDisaggState(tokens=state.tokens + split(_now(params, first), share, rho), batch=batch, mode=mode,
                            last_pcie_s=pcie, last_gpu_s=gpu, last_net_s=net, step=state.step + 1)
    return new, {"total": total, "pcie": pcie, "gpu": gpu, "net": net, "net_bytes": net_bytes, "share": share,
                 "rho": rho}


def initial_state():
    z = jnp.float32(0.0)
    return SecureDisaggState(tokens=jnp.zeros(4, jnp.float32), batch=z, mode=jnp.int32(-1), last_pcie_s=z,
                             last_gpu_s=z, last_net_s=z, step=jnp.int32(0))
