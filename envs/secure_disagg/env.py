"""SecureDisagg-v0: an offloading LLM server whose host memory is not enough spills its cache to secure
disaggregated memory (TDMem), under each tenant's security requirement.

MDP card
--------
System      CacheRatio-v0's server (one GPU streams weights and the block's cache from host DRAM over PCIe, in
            FlexGen's zig-zag block schedule; each cached token of each layer is K,V or the layer-input
            activation, whose K,V the GPU regenerates) with a second cache tier: remote memory behind this
            node's FPGA engine (`memgym.sim.disagg`: engine round trip, 100 Gb/s link, per-page MAC and version
            counters, obliviousness modes with their real costs, 4 KB hardware allocation) or, as the software
            baseline, RDMA far memory in 1 GB slabs (≤ 58.3 % usable). Remote pages come through host memory
            (network stage, then PCIe); the network stage overlaps the layer's other work.
Episode     One block: the prompt's prefill, then `gen_len` decode iterations over `max_steps` steps
            (`gen_len / max_steps` each). `terminated` after `max_steps` steps.
State       cached tokens per sequence as (K,V local, activation local, K,V remote, activation remote), the
            block size and remote mode (fixed at the first step), the last step's PCIe, GPU and network
            times, the step index.
Action      MultiDiscrete([bins, remote_bins, 7, batch_bins]): the activation share of this step's cache
            entries (bin i → i / (bins − 1)); the share of them placed remotely (bin k → k / (remote_bins − 1),
            moved into the interval of shares that keeps the run fitting: the realised share is continuous, so
            bin 0 means "as little as the run needs", local-first spill); at the first step the remote mode (`disagg.MODES`: rdma_slab, rdma_register, plain, secure, remap,
            dummy, oram) and the block (bin j → ⌊max_batch·(j + 1) / batch_bins⌋ sequences); later steps keep
            both (only their bins are unmasked). Entries keep their form and tier.
Mask        modes below the tenant's requirement (`tenant`: 0 none, 1 encrypted, 2 unlinkable, 3 rate hiding,
            4 oblivious; mode levels `disagg.LEVELS`) are masked, never penalised; every value after which no
            completion of the run fits host memory (mem_alpha × capacity) and the mode's usable remote memory,
            with every later entry in the smaller form and split freely between tiers. Joint overflows are
            projected: a mode below the requirement rises to the cheapest allowed one; the block falls to the
            largest that fits; the activation share moves to the nearest feasible bin (upwards first); a
            remote-share bin more than half a bin outside the fitting interval is flagged too.
            `info["projected"]` flags it. Float32 rounding: the realised remote share sits 1e-4 inside the
            interval, so host memory is never exceeded by rounding.
Reward      the step's tokens/s divided by the software-RDMA baseline's tokens/s at the same step (the same
            serving policy, local-first spill with HybridServe's balance share, on 1 GB RDMA slabs: policy
            `rdma_slabs`, precomputed per scenario in `base_step_s`), so the episode's mean reward is ≈ the
            throughput ratio over the baseline.
Observation f32[21] clipped to [-10, 10], every feature a fraction or a ratio (scale-free across models,
            memories and links): tokens per form and tier / (prompt + gen) (4); last PCIe, GPU and
            network times / the baseline's step time (3); free host and free remote fractions (2); step /
            max_steps; block / max_batch; tenant level / 4; (mode + 1) / 7 (0 before the first step); the
            coming step's PCIe and GPU times at share 0 and 1, all local (4); its network time with every
            entry remote at share 0 (1), all / the baseline's step time; TDMem's heuristic plan for this
            scenario as a hint a policy may follow or override (share bin / (bins − 1), mode / 6, block bin /
            (batch_bins − 1)) (3).
Metrics     iteration_time_s, step_time_s, tokens_per_s, baseline_tokens_per_s, pcie_time_s, gpu_time_s,
            net_time_s, net_bytes, host_used_frac, remote_used_frac, activation_share, remote_share, mode,
            security_level, batch, projected.
Parameters  model, hardware preset with a remote tier (`a100-80gb-pcie4-tdmem`), host and remote memory,
            link bandwidth and engine round trip, PCIe bandwidth, prompt and generation lengths, `gbs`,
            tenant; all floats in the params pytree (vmappable after `derive`).
Heuristic   `memgym.policies.secure_disagg.tdmem`: the cheapest secure mode the tenant allows, HybridServe's
            balance share and the largest block that fits at it, new entries local first, spilled remotely
            only as far as the run's end needs.
Choice      `oracle_plan` (the best static plan over share × mode × block, local-first spill) is precomputed
            per scenario with the baseline, so the oracle policy is a lookup.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from memgym.sim import config, disagg, offload, validate
from memgym.sim.specs import pytree_dataclass

from .cache_ratio import gpu_used, system_placement, tokens_per_step  # the same server, params alike
from .core import OBS_BOUND, JaxEnv, Observation, clip_features

N_MODES = len(disagg.MODES)
_LEVELS = np.asarray(disagg.LEVELS, np.float32)  # numpy: a module constant must never become a tracer


@pytree_dataclass(static=("bins", "remote_bins", "batch_bins", "max_steps"))
class SecureDisaggParams:
    model: object  # ModelSpec
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


# ---- the system -----------------------------------------------------------------------------------------------


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
    return jnp.asarray(_LEVELS) >= params.tenant - 1e-6


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


def _rise(ok, i0):
    """The smallest feasible index ≥ i0, else the largest feasible one (i0 if none is feasible)."""
    idx = jnp.arange(ok.shape[0])
    up = jnp.min(jnp.where(ok & (idx >= i0), idx, ok.shape[0]))
    return jnp.where(up < ok.shape[0], up, jnp.where(ok.any(), jnp.max(jnp.where(ok, idx, -1)), i0))


def _fall(ok, i0):
    """The largest feasible index ≤ i0, else the smallest feasible one (i0 if none is feasible)."""
    idx = jnp.arange(ok.shape[0])
    down = jnp.max(jnp.where(ok & (idx <= i0), idx, -1))
    return jnp.where(down >= 0, down, jnp.where(ok.any(), jnp.min(jnp.where(ok, idx, ok.shape[0])), i0))


def _share_bin(ok, i0, params):
    """The nearest fitting share bin from i0 (upwards first); the smaller form's bin if none fits (a state
    only float rounding can reach: it adds the fewest bytes)."""
    small = jnp.round(min_form(params) * (params.bins - 1)).astype(jnp.int32)
    return jnp.where(ok.any(), _rise(ok, i0), small)


def shares(params):
    return jnp.linspace(0.0, 1.0, params.bins)


def remote_shares(params):
    return jnp.linspace(0.0, 1.0, params.remote_bins)


def share_ok(params, mode, batch, tokens, first):
    """bool[bins]: share bins with a fitting remote split."""
    return jax.vmap(lambda a: step_bounds(params, mode, batch, tokens, first, a)[0])(shares(params))


def rho_ok(params, mode, batch, tokens, first, share):
    """bool[remote_bins]: remote-share bins within half a bin of the fitting interval (the env moves the
    realised share into the interval, so the nearest bin is always unmasked)."""
    _, lo, hi = step_bounds(params, mode, batch, tokens, first, share)
    q, h = remote_shares(params), 0.5 / (params.remote_bins - 1) + 1e-6
    return (q >= lo - h) & (q <= hi + h)


def realised_rho(params, mode, batch, tokens, first, share, rho_bin):
    """The remote share a bin asks for, moved into the fitting interval."""
    _, lo, hi = step_bounds(params, mode, batch, tokens, first, share)
    return jnp.clip(rho_bin / (params.remote_bins - 1), lo, hi)


def roomiest_mode(params):
    """The allowed mode with the most usable remote memory (feasibility is monotone in it)."""
    usable = jax.vmap(lambda md: disagg.usable_bytes(params.remote, md))(jnp.arange(N_MODES))
    return jnp.argmax(jnp.where(allowed(params), usable, -1.0)).astype(jnp.int32)


def fit_action(params, state, mode, share_bin, rho_bin, batch_bin):
    """The nearest fitting action in `mode` (at the first step; later the episode's): the block falls to the
    largest fitting bin ≤ `batch_bin` (first step; later the episode's block), the share moves to the nearest
    fitting bin from `share_bin` (upwards first), then the remote share likewise from `rho_bin`."""
    first = state.step == 0
    mf = min_form(params)
    b_ok = jax.vmap(lambda j: step_bounds(params, mode, batch_of(params, j), state.tokens, first, mf)[0])(
        jnp.arange(params.batch_bins))
    bb = jnp.where(first, _fall(b_ok, batch_bin), current_batch_bin(params, state))
    batch = jnp.where(first, batch_of(params, bb), state.batch)
    si = _share_bin(share_ok(params, mode, batch, state.tokens, first), share_bin, params)
    ri = _rise(rho_ok(params, mode, batch, state.tokens, first, si / (params.bins - 1)), rho_bin)
    return jnp.stack([si, ri, mode, bb]).astype(jnp.int32)


def plan_action(params, state, mode, share_bin, batch_bin):
    """An action that holds a plan: at the first step `mode`, the largest feasible block bin ≤ `batch_bin` and
    the nearest feasible share bin from `share_bin` up; later steps keep block and mode. The remote share is
    the smallest feasible one: new entries stay local until the run's end would overflow host memory
    (local-first spill). Used by the planned policies and the baseline."""
    return fit_action(params, state, jnp.where(state.step == 0, mode, state.mode), share_bin, 0, batch_bin)


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


class SecureDisagg(JaxEnv):
    id = "SecureDisagg-v0"
    metric_names = ("iteration_time_s", "step_time_s", "tokens_per_s", "baseline_tokens_per_s", "pcie_time_s",
                    "gpu_time_s", "net_time_s", "net_bytes", "host_used_frac", "remote_used_frac",
                    "activation_share", "remote_share", "mode", "security_level", "batch", "projected")

    def default_params(self, model: str = "opt-66b", hardware: str = "a100-80gb-pcie4-tdmem",
                       host_memory_gb: float | None = 128.0, remote_memory_gb: float | None = 64.0,
                       link_gbps: float | None = None, rtt_us: float | None = None,
                       gpu_memory_gb: float | None = None, pcie_gbps: float | None = None, prompt_len: int = 512,
                       gen_len: int = 128, gbs: int = 4, tenant: int | str = 0, bins: int = 11,
                       remote_bins: int = 11, batch_bins: int = 8, max_steps: int = 16, ctog_overlap: float = 1.0,
                       dtype: str = "fp16") -> SecureDisaggParams:
        """One scenario. Defaults: OPT-66B on an A100-80GB over PCIe 4 with 128 GB of host memory (the cache
        does not fit beside the weights' host share) and 64 GB of remote memory behind a TDMem engine
        (100 Gb/s, 3 µs), prompt 512, 128 generated tokens, a tenant with no security requirement
        (`memgym reproduce tdmem`). `tenant`: 0..4 or a name in `disagg.REQUIREMENTS`."""
        v = validate.scenario(self.id, {k: x for k, x in locals().items() if k not in ("self", "__class__")})
        host_memory_gb, remote_memory_gb, link_gbps, rtt_us, gpu_memory_gb, pcie_gbps = (
            v[k] for k in ("host_memory_gb", "remote_memory_gb", "link_gbps", "rtt_us", "gpu_memory_gb", "pcie_gbps"))
        prompt_len, gen_len, gbs, tenant, bins, remote_bins, batch_bins, max_steps, ctog_overlap = (
            v[k] for k in ("prompt_len", "gen_len", "gbs", "tenant", "bins", "remote_bins", "batch_bins", "max_steps",
                           "ctog_overlap"))
        for name, v, lo in (("bins", bins, 2), ("remote_bins", remote_bins, 2), ("batch_bins", batch_bins, 1),
                            ("max_steps", max_steps, 1)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if prompt_len <= 0 or gen_len < max_steps:
            raise ValueError(f"need prompt_len > 0 and gen_len >= max_steps; got prompt_len={prompt_len}, "
                             f"gen_len={gen_len}, max_steps={max_steps}")
        if isinstance(tenant, str):
            if tenant not in disagg.REQUIREMENTS:
                raise ValueError(f"tenant must be 0..4 or one of {', '.join(disagg.REQUIREMENTS)}, got {tenant!r}")
            tenant = disagg.REQUIREMENTS.index(tenant)
        if not 0 <= tenant <= len(disagg.REQUIREMENTS) - 1:
            raise ValueError(f"tenant must be 0..4 or one of {', '.join(disagg.REQUIREMENTS)}, got {tenant!r}")
        m = config.load_model(model, dtype=dtype)
        raw, _ = config.load_raw("hardware", hardware)
        if "flexgen_fitted" in raw:
            rates = offload.fitted_rates(hardware, ctog_overlap=ctog_overlap)
        else:
            rates = offload.roofline_rates(config.load_hardware(hardware), ctog_overlap=ctog_overlap)
        rates = offload.with_capacity(rates, gpu_gb=gpu_memory_gb, cpu_gb=host_memory_gb, pcie_gbps=pcie_gbps)
        remote = disagg.load_remote(hardware, capacity_gb=remote_memory_gb, link_gbps=link_gbps, rtt_us=rtt_us)
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        params = SecureDisaggParams(
            model=m, rates=rates, remote=remote, wg=f(0.0), gbs=f(gbs), prompt_len=f(prompt_len), gen_len=f(gen_len),
            tenant=f(tenant), max_batch=f(1.0), base_batch=f(1.0), base_step_s=jnp.ones(max_steps, jnp.float32),
            oracle_plan=jnp.zeros(3, jnp.int32), heuristic_plan=jnp.zeros(3, jnp.int32), bins=bins,
            remote_bins=remote_bins, batch_bins=batch_bins, max_steps=max_steps)
        params = _derive_jit(params)
        end = float(params.prompt_len + params.gen_len)
        gpu_over = float(gpu_used(params, params.gbs, end, 0.0)) > float(offload.capacities(rates)[0]) * (1 + 1e-6)
        if float(params.base_batch) < float(params.gbs) or gpu_over:
            raise ValueError(f"model '{model}' does not fit '{hardware}' with {host_memory_gb} GB of host and "
                             f"{remote_memory_gb} GB of remote memory at gbs={gbs} (baseline block "
                             f"{float(params.base_batch):.0f} sequences, GPU working set "
                             f"{'over' if gpu_over else 'within'} capacity); add memory, lower gbs or the lengths")
        return params

    def action_nvec(self, params):
        return (params.bins, params.remote_bins, N_MODES, params.batch_bins)

    def observation_bounds(self, params):
        return -OBS_BOUND, OBS_BOUND

    def feature_names(self, params):
        return ("kv_local", "act_local", "kv_remote", "act_remote", "last_pcie", "last_gpu", "last_net",
                "host_free", "remote_free", "step_frac", "batch_frac", "tenant", "mode", "pcie_at_kv", "gpu_at_kv",
                "pcie_at_act", "gpu_at_act", "net_all_remote", "hint_share", "hint_mode", "hint_block")

    # -- dynamics -------------------------------------------------------------------------------------------
    def reset_env(self, key, params):
        state = initial_state()
        return self.observe(state, params), state

    def _mode_mask(self, state, params):
        """bool[7]: at the first step the modes the tenant allows that fit at the smallest block; later the
        episode's mode."""
        first = state.step == 0
        b0 = jnp.where(first, batch_of(params, 0), state.batch)
        mf = min_form(params)
        md_ok = jax.vmap(lambda md: step_bounds(params, md, b0, state.tokens, first, mf)[0])(jnp.arange(N_MODES))
        md = jnp.where(first, allowed(params) & md_ok, jnp.arange(N_MODES) == state.mode)
        return jnp.where(md.any(), md, allowed(params))

    def _masks(self, state, params):
        """Per-dimension feasibility: (share bool[bins], rho bool[remote_bins], mode bool[7], batch
        bool[batch_bins]), each checked at the loosest values of the other dimensions."""
        first = state.step == 0
        loose = jnp.where(first, roomiest_mode(params), state.mode)
        b0 = jnp.where(first, batch_of(params, 0), state.batch)
        mf = min_form(params)
        sh = share_ok(params, loose, b0, state.tokens, first)
        rh = rho_ok(params, loose, b0, state.tokens, first, mf)
        bt = jax.vmap(lambda j: step_bounds(params, loose, batch_of(params, j), state.tokens, first, mf)[0])(
            jnp.arange(params.batch_bins))
        bt = jnp.where(first, bt, jnp.arange(params.batch_bins) == current_batch_bin(params, state))
        never_empty = lambda x: x | ~x.any()  # noqa: E731
        return never_empty(sh), never_empty(rh), self._mode_mask(state, params), never_empty(bt)

    def action_mask(self, state, params):
        return jnp.concatenate(self._masks(state, params))

    def project(self, action, state, params):
        """(action, projected): the mode rises to an allowed, feasible one; the block falls to the largest
        feasible bin; the shares move to the nearest feasible bins (upwards first). Out-of-range entries
        are clipped and flagged."""
        raw = jnp.asarray(action, jnp.int32)
        a = jnp.clip(raw, 0, jnp.asarray(self.action_nvec(params)) - 1)
        first = state.step == 0
        mode = jnp.where(first, _rise(self._mode_mask(state, params), a[2]), state.mode)
        out = fit_action(params, state, mode, a[0], a[1], a[3])
        changed = out != raw
        projected = changed[0] | changed[1] | (first & (changed[2] | changed[3]))
        return out, projected

    def step_env(self, key, state, action, params):
        act, projected = self.project(action, state, params)
        new, o = advance(params, state, act)
        k = tokens_per_step(params)
        tps = new.batch * k / o["total"]
        base_s = params.base_step_s[jnp.clip(state.step, 0, params.max_steps - 1)]
        base_tps = params.base_batch * k / base_s
        mode = new.mode
        metrics = {
            "iteration_time_s": o["total"] / k, "step_time_s": o["total"], "tokens_per_s": tps,
            "baseline_tokens_per_s": base_tps, "pcie_time_s": o["pcie"], "gpu_time_s": o["gpu"],
            "net_time_s": o["net"], "net_bytes": o["net_bytes"],
            "host_used_frac": host_used(params, new.batch, new.tokens) / params.rates.cpu_capacity_bytes,
            "remote_used_frac": remote_used(params, new.batch, new.tokens)
            / jnp.maximum(disagg.usable_bytes(params.remote, mode), 1.0),
            "activation_share": o["share"], "remote_share": o["rho"], "mode": mode.astype(jnp.float32),
            "security_level": jnp.asarray(_LEVELS)[mode], "batch": new.batch, "projected": projected.astype(jnp.float32),
        }
        terminated = new.step >= params.max_steps
        info = {"metrics": metrics, "projected": projected}
        return self.observe(new, params), new, tps / base_tps, terminated, jnp.bool_(False), info

    def observe(self, state, params):
        end = params.prompt_len + params.gen_len
        first = state.step == 0
        base = params.base_step_s[jnp.clip(state.step, 0, params.max_steps - 1)]
        batch = jnp.where(first, params.base_batch, state.batch)
        mode = jnp.where(first, roomiest_mode(params), state.mode)
        rows = (jnp.asarray([0.0, 1.0, 0.0], jnp.float32), jnp.asarray([0.0, 0.0, 1.0], jnp.float32))
        _, pc, gp, nt, _ = jax.vmap(lambda a, q: step_time(params, mode, batch, state.tokens, a, q, first))(*rows)
        host = host_used(params, batch, state.tokens) / offload.capacities(params.rates)[1]
        rem = remote_used(params, batch, state.tokens) / jnp.maximum(disagg.usable_bytes(params.remote, mode), 1.0)
        feats = jnp.concatenate([
            state.tokens / end,
            jnp.stack([state.last_pcie_s, state.last_gpu_s, state.last_net_s]) / base,
            jnp.stack([1.0 - host, 1.0 - rem, state.step / params.max_steps, state.batch / params.max_batch,
                       params.tenant / 4.0, (state.mode + 1.0) / N_MODES,
                       pc[0] / base, gp[0] / base, pc[1] / base, gp[1] / base, nt[2] / base]),
            params.heuristic_plan / jnp.asarray([params.bins - 1.0, N_MODES - 1.0, max(params.batch_bins - 1, 1.0)])])
        return Observation(features=clip_features(feats), action_mask=self.action_mask(state, params))


# ---- per-scenario derivation: capacity, the baseline, the best static plan ---------------------------------------


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


def derive(params: SecureDisaggParams) -> SecureDisaggParams:
    """wg (the largest weight share the GPU holds beside its working set), max_batch, the software-RDMA
    baseline's block and step times, and the best static plan. Jittable (vmap over scenarios, then derive)."""
    m, r = params.model, params.rates
    end = params.prompt_len + params.gen_len
    p = system_placement(params, 0.0)
    wg = jnp.minimum(offload.max_weights_on_gpu(m, r, p, params.gbs, params.prompt_len, end, 0.0),
                     offload.max_weights_on_gpu(m, r, p, params.gbs, params.prompt_len, 0.0, end))
    params = dataclasses.replace(params, wg=wg)
    mf = min_form(params)
    roomy = roomiest_mode(params)
    max_batch = jnp.maximum(jnp.floor(largest_block(params, roomy, mf)), 1.0)
    max_batch = jnp.maximum(max_batch, jnp.floor(largest_block(params, disagg.RDMA_SLAB, mf)))
    params = dataclasses.replace(params, max_batch=max_batch)
    si, bb = plan(params, jnp.int32(disagg.RDMA_SLAB))
    base, base_out = play_plan(params, jnp.int32(disagg.RDMA_SLAB), si, bb)
    base_s, base_batch = base_out["total"], base.batch
    params = dataclasses.replace(params, base_step_s=base_s, base_batch=base_batch)
    # the best static plan: every (share bin, mode, block bin), local-first spill, scored by mean reward
    k = tokens_per_step(params)

    def score(s, md, j):
        state, out = play_plan(params, md, s, j)
        score = jnp.mean((state.batch * k / out["total"]) / (base_batch * k / base_s))
        return jnp.where(fits(params, state), score, -jnp.inf)
    grid = jax.vmap(lambda s: jax.vmap(lambda md: jax.vmap(lambda j: score(s, md, j))(jnp.arange(params.batch_bins)))(
        jnp.arange(N_MODES)))(jnp.arange(params.bins))
    grid = jnp.where(allowed(params)[None, :, None], grid, -jnp.inf)
    flat = jnp.argmax(grid.reshape(-1))
    nm, nb = N_MODES, params.batch_bins
    best = jnp.stack([flat // (nm * nb), (flat // nb) % nm, flat % nb]).astype(jnp.int32)
    mode = cheapest_secure_mode(params)
    hs, hb = plan(params, mode)
    return dataclasses.replace(params, oracle_plan=best, heuristic_plan=jnp.stack([hs, mode, hb]).astype(jnp.int32))


_SECURE_FROM = np.asarray([disagg.SECURE, disagg.SECURE, disagg.REMAP, disagg.DUMMY, disagg.ORAM], np.int32)


def cheapest_secure_mode(params):
    """The first of TDMem's secure modes whose level meets the tenant's requirement."""
    return jnp.asarray(_SECURE_FROM)[jnp.clip(jnp.round(params.tenant), 0, 4).astype(jnp.int32)]


_derive_jit = jax.jit(derive)
