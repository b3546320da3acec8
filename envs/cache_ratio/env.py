"""CacheRatio-v0: choose the KV : activation ratio of an offloaded cache (HybridServe) as a batch generates.

MDP card
--------
System      One GPU streams each layer's weights (a placed share `wg` stays on the GPU) and the block's cache
            from host DRAM over PCIe, layer by layer, in FlexGen's zig-zag block schedule (`gbs` sequences per
            GPU batch); cache and hidden states live in host memory, attention runs on the GPU. Each cached
            token of each layer is K,V (2·h_kv·d_h·b bytes) or the layer-input activation (d·b bytes), whose
            K,V the GPU regenerates (two projections) while the next weights arrive. Cost model:
            `memgym.sim.offload` (roofline rates for A100/H100 presets, FlexGen's fitted constants for
            `t4-flexgen`); host and GPU capacities bound what fits.
Episode     One block: the prompt's prefill, then `gen_len` decode iterations split evenly over `max_steps`
            steps (`gen_len / max_steps` iterations each, a float, so generation lengths vmap). `terminated`
            after `max_steps` steps.
State       cached tokens per sequence held as K,V and as activations, the block size (sequences, a float),
            the last step's PCIe and GPU times, the step index.
Action      MultiDiscrete([bins, batch_bins]): the activation share of the cache entries written this step
            (bin i → i / (bins − 1); entries keep their form), and the block size, chosen once at the first
            step (bin j → kv_batch + (max_batch − kv_batch)·j / (batch_bins − 1): from the largest block that
            fits an all-KV cache to the largest that fits an all-activation one); later steps keep it (only
            its bin is unmasked). With `convert_bins` ≥ 2 (opt-in; 0 = off, the default) a third dimension,
            MultiDiscrete([bins, batch_bins, convert_bins]): bin c converts the fraction c / (convert_bins − 1)
            of each sequence's cached activation entries into K,V this step (bin 0: none).
Conversion  Applied at the step's start, billed within it: the converted entries are still read and expanded
            as activations this step (their K,V are regenerated on the GPU every step anyway), so converting
            adds only the GPU→host write of those K,V (converted tokens × block × K,V bytes per token and
            layer, spread evenly over the step's decode iterations, in the gtoc term, i.e. inside the same
            max as the new entries' write-back, per layer) and grows host memory by (K,V − activation bytes)
            per converted token and layer (shrinks it for GQA models, whose K,V are smaller); from the next
            step on they are read as K,V (more PCIe, no recompute). The reverse, K,V → activation, is not
            offered: the layer input cannot be recovered from K and V without recomputing the prefix from the
            token ids.
Mask        share bins whose entries would make the block overflow host memory by the run's end even if every
            later entry took the smaller form (first step: for every block); at the first step, blocks that
            overflow at every share; convert bins that overflow likewise for every share (later steps: at the
            current block; bin 0 stays feasible whenever the current state is). Joint overflows are projected:
            at the first step the share is kept and the block falls to the largest that fits it; later the
            share rises to the smallest feasible bin; then the convert bin falls to the largest feasible one
            at or below it (the smallest feasible one if none is); `info["projected"]` flags it.
Reward      the step's tokens/s divided by the all-KV baseline's tokens/s at the same step (FlexGen-style all-KV
            streaming, GPU attention, at the largest all-KV block that fits host memory), so the episode's mean
            reward is ≈ the throughput ratio over all-KV, with both of HybridServe's gains: PCIe bytes traded
            for hidden GPU work, and the larger block that smaller entries allow. `speedup_same_batch` (metric)
            is the ratio against all-KV at the policy's own block (the overlap gain alone).
Observation f32[12] clipped to [-10, 10]: K,V and activation tokens per sequence / (prompt + gen) (2); the last
            step's PCIe and GPU times / the baseline's step time (2); free host and GPU fractions (2); step /
            max_steps (1); block size / max_batch (1); the coming step's PCIe and GPU times at share 0 and 1 /
            the baseline's step time (4).
Metrics     info["metrics"]: iteration_time_s (per decode iteration), step_time_s, tokens_per_s,
            baseline_tokens_per_s, speedup_same_batch, pcie_time_s, gpu_time_s, pcie_bytes, weights_bytes,
            cache_bytes, host_used_frac, gpu_used_frac, activation_share, batch, projected, converted_tokens
            (activation entries converted to K,V this step, per sequence; 0 without `convert_bins`).
Parameters  `CacheRatioScenario` (scenario.py): model (OPT-30B/66B/175B, fp16), hardware preset (roofline) or
            `t4-flexgen` (fitted), host memory (`host_memory_gb`), PCIe bandwidth (`pcie_gbps`), prompt and generation
            lengths, `gbs`; all floats in the params pytree (vmappable); `convert_bins` (static, 0 = no convert action).
            `ctog_overlap` 1 (default): PCIe overlaps the GPU's work (HybridServe's pipeline); 0: FlexGen's released fit
            (ctog + max(rest)).
Heuristic   `memgym.policies.cache_ratio.hybridserve`: the share that equalises PCIe and GPU time, and the
            largest block that then fits; it never converts (convert bin 0).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from memgym.sim import offload
from memgym.sim.server import gpu_used, host_used, system_placement, tokens_per_step

from ..core import OBS_BOUND, Info, JaxEnv, Observation, clip_features
from .scenario import CacheRatioScenario
from .types import CacheRatioParams, CacheRatioState


def step_time(params, batch, kv_tokens, act_tokens, share, first, convert_tokens=0.0):
    """Seconds of one env step for the whole model: `tokens_per_step` decode iterations at the step's mean
    context (entries of this step in form `share`), plus the prefill on the first step (prompt entries in
    form `share`). `convert_tokens` (per sequence) of the cached activations are converted to K,V this
    step: still read as activations, their K,V written back to the host, spread over the iterations.
    Returns (total_s, pcie_s, gpu_s, bytes dict), PCIe and GPU time summed likewise."""
    m, r = params.model, params.rates
    k = tokens_per_step(params)
    gbs = jnp.minimum(params.gbs, batch)
    p = system_placement(params, share)
    prompt = jnp.where(first, params.prompt_len, 0.0)
    kv0 = kv_tokens + (1.0 - share) * prompt  # the prompt's entries exist before decoding starts
    act0 = act_tokens + share * prompt
    half = (k - 1.0) / 2.0 + 1.0  # mean new entries attended over the step's iterations (incl. its own)
    convert_b = batch * convert_tokens * offload.kv_bytes_per_token_layer(m) / k  # per layer and iteration
    d = offload.decode_layer(m, r, p, batch, gbs, kv0 + (1.0 - share) * half, act0 + share * half, share,
                             extra_write_bytes=convert_b)
    pre = offload.prefill_layer(m, r, p, batch, gbs, params.prompt_len, share)
    pre_s = jnp.where(first, m.n_layers * pre["layer_s"], 0.0)
    total = m.n_layers * k * d["layer_s"] + pre_s
    pcie = m.n_layers * k * d["ctog_s"] + jnp.where(first, m.n_layers * pre["ctog_s"], 0.0)
    gpu = m.n_layers * k * d["gpu_s"] + jnp.where(first, m.n_layers * pre["comp_s"], 0.0)
    nbytes = {"pcie_bytes": m.n_layers * k * d["h2d_bytes"] + jnp.where(first, m.n_layers * pre["h2d_bytes"], 0.0),
              "weights_bytes": m.n_layers * (k + first) * d["weights_h2d_bytes"],
              "cache_bytes": m.n_layers * k * d["cache_h2d_bytes"],
              "hidden_bytes": m.n_layers * k * d["hidden_h2d_bytes"]
              + jnp.where(first, m.n_layers * (pre["h2d_bytes"] - d["weights_h2d_bytes"]), 0.0),
              "d2h_bytes": m.n_layers * k * d["d2h_bytes"] + jnp.where(first, m.n_layers * pre["d2h_bytes"], 0.0)}
    return total, pcie, gpu, nbytes


def static_episode(params, share, batch):
    """Per-step (time_s f[max_steps], baseline_s f[max_steps]) of a whole episode at one static share and block
    (used by the oracle and the reproduction): the closed form of the env's dynamics."""
    k = tokens_per_step(params)
    t = jnp.arange(params.max_steps, dtype=jnp.float32)
    ctx = jnp.where(t > 0, params.prompt_len + t * k, 0.0)
    first = t == 0

    def one(c, f, a, b):
        return step_time(params, b, (1.0 - a) * c, a * c, a, f)[0]
    times = jax.vmap(one, in_axes=(0, 0, None, None))(ctx, first, share, batch)
    base = jax.vmap(one, in_axes=(0, 0, None, None))(ctx, first, 0.0, params.kv_batch)
    return times, base


class CacheRatio(JaxEnv[CacheRatioParams, CacheRatioState]):
    id = "CacheRatio-v0"
    metric_names = ("iteration_time_s", "step_time_s", "tokens_per_s", "baseline_tokens_per_s",
                    "speedup_same_batch", "pcie_time_s", "gpu_time_s", "pcie_bytes", "weights_bytes", "cache_bytes",
                    "host_used_frac", "gpu_used_frac", "activation_share", "batch", "projected", "converted_tokens")

    def default_params(self, **fields: Any) -> CacheRatioParams:
        """The parameters of `CacheRatioScenario(**fields)` (defaults: the reproduction's reference scenario)."""
        return CacheRatioScenario.of(**fields).build()

    def action_nvec(self, params: CacheRatioParams) -> tuple[int, ...]:
        if params.convert_bins >= 2:
            return (params.bins, params.batch_bins, params.convert_bins)
        return (params.bins, params.batch_bins)

    def observation_bounds(self, params: CacheRatioParams) -> tuple[float, float]:
        return -OBS_BOUND, OBS_BOUND

    def feature_names(self, params: CacheRatioParams) -> tuple[str, ...]:
        return ("kv_tokens", "act_tokens", "last_pcie", "last_gpu", "host_free", "gpu_free", "step_frac",
                "batch_frac", "pcie_at_kv", "gpu_at_kv", "pcie_at_act", "gpu_at_act")

    # -- dynamics -------------------------------------------------------------------------------------
    def reset_env(self, key: jax.Array, params: CacheRatioParams) -> tuple[Observation, CacheRatioState]:
        z = jnp.float32(0.0)
        state = CacheRatioState(kv_tokens=z, act_tokens=z, batch=z, last_pcie_s=z, last_gpu_s=z, step=jnp.int32(0))
        return self.observe(state, params), state

    def batch_of(self, bin_idx, params):
        """Block size of bin j: kv_batch + (max_batch − kv_batch)·j / (batch_bins − 1) (bin 0 is the all-KV
        block, the last the all-activation one)."""
        frac = jnp.asarray(bin_idx, jnp.float32) / max(params.batch_bins - 1, 1)
        return params.kv_batch + (params.max_batch - params.kv_batch) * frac

    def _current_batch_bin(self, state, params):
        span = jnp.maximum(params.max_batch - params.kv_batch, 1e-6)
        j = jnp.round((state.batch - params.kv_batch) / span * max(params.batch_bins - 1, 1))
        return jnp.clip(j, 0, params.batch_bins - 1).astype(jnp.int32)

    def convert_fracs(self, params):
        """f[n]: the fraction of the cached activation entries each convert bin converts ([0] without the
        convert action)."""
        if params.convert_bins >= 2:
            return jnp.linspace(0.0, 1.0, params.convert_bins)
        return jnp.zeros((1,), jnp.float32)

    def joint_feasibility(self, state, params):
        """ok bool[bins, batch_bins, n_convert]: whether share bin i with block bin j and convert bin c keeps
        the run within host memory if every later entry takes the smaller of the two forms (later steps: the
        current block). n_convert = convert_bins, or 1 (no conversion) without the convert action."""
        first = state.step == 0
        shares = jnp.linspace(0.0, 1.0, params.bins)
        batches = jnp.where(first, self.batch_of(jnp.arange(params.batch_bins), params),
                            jnp.full((params.batch_bins,), state.batch))
        k = tokens_per_step(params)
        now = jnp.where(first, params.prompt_len + k, k)  # entries written this step
        written = state.kv_tokens + state.act_tokens + now
        later = params.prompt_len + params.gen_len - written
        act_smaller = offload.act_bytes_per_token_layer(params.model) <= offload.kv_bytes_per_token_layer(params.model)
        conv = self.convert_fracs(params) * state.act_tokens  # [n_convert]
        kv_end = state.kv_tokens + (1.0 - shares) * now + jnp.where(act_smaller, 0.0, later)  # [bins]
        act_end = state.act_tokens + shares * now + jnp.where(act_smaller, later, 0.0)
        kv_end = (kv_end[:, None] + conv[None, :]).reshape(-1)  # [bins * n_convert]
        act_end = (act_end[:, None] - conv[None, :]).reshape(-1)
        cap = offload.capacities(params.rates)[1] * (1 + 1e-6)
        used = jax.vmap(lambda b: jax.vmap(lambda kv, ac: host_used(params, b, kv, ac))(kv_end, act_end))(batches)
        return (used <= cap).reshape(params.batch_bins, params.bins, -1).transpose(1, 0, 2)

    def action_mask(self, state: CacheRatioState, params: CacheRatioParams) -> jax.Array:
        ok3 = self.joint_feasibility(state, params)
        ok = ok3.any(axis=2)
        first = state.step == 0
        cur = self._current_batch_bin(state, params)
        jb = jnp.arange(params.batch_bins)
        batch_mask = jnp.where(first, ok.any(axis=0), jb == cur)
        batch_mask = batch_mask | ~batch_mask.any()  # never empty
        sh = jnp.where(first, ok.any(axis=1), ok[:, cur])
        sh = sh | ~sh.any()
        masks = [sh, batch_mask]
        if params.convert_bins >= 2:
            cv = jnp.where(first, ok3.any(axis=(0, 1)), ok3[:, cur, :].any(axis=0))
            masks.append(cv | ~cv.any())
        return jnp.concatenate(masks)

    def project(self, action, state, params):
        """(action, projected). First step: the share is kept (raised to the smallest share that fits some
        block if none does) and the block falls to the largest feasible bin for it. Later steps: the block
        is fixed and the share rises to the smallest feasible bin (the largest feasible one if none is
        above). With the convert action, the convert bin then falls to the largest bin at or below it that
        fits with that share and block (the smallest feasible one if none does). Out-of-range entries are
        clipped and flagged."""
        raw = jnp.asarray(action, jnp.int32)
        a = jnp.clip(raw, 0, jnp.asarray(self.action_nvec(params)) - 1)
        ok3 = self.joint_feasibility(state, params)
        ok = ok3.any(axis=2)
        first = state.step == 0
        ib, jb = jnp.arange(params.bins), jnp.arange(params.batch_bins)
        cur = self._current_batch_bin(state, params)

        def rise(col, i0):
            up = jnp.min(jnp.where(col & (ib >= i0), ib, params.bins))
            return jnp.where(up < params.bins, up, jnp.max(jnp.where(col, ib, 0)))

        # first step
        s0 = rise(ok.any(axis=1), a[0])
        row = ok[s0]
        b0 = jnp.max(jnp.where(row & (jb <= a[1]), jb, -1))
        b0 = jnp.where(b0 < 0, jnp.min(jnp.where(row, jb, params.batch_bins - 1)), b0)
        # later steps
        s1 = rise(ok[:, cur], a[0])
        out = jnp.where(first, jnp.stack([s0, b0]), jnp.stack([s1, cur])).astype(jnp.int32)
        projected = (out[0] != raw[0]) | (first & (out[1] != raw[1]))
        if params.convert_bins >= 2:
            ic = jnp.arange(params.convert_bins)
            col = ok3[out[0], out[1]]
            c = jnp.max(jnp.where(col & (ic <= a[2]), ic, -1))
            c = jnp.where(c < 0, jnp.min(jnp.where(col, ic, 0)), c).astype(jnp.int32)
            out = jnp.concatenate([out, c[None]])
            projected = projected | (c != raw[2])
        return out, projected

    def step_env(self, key: jax.Array, state: CacheRatioState, action: jax.Array, params: CacheRatioParams
                 ) -> tuple[Observation, CacheRatioState, jax.Array, jax.Array, jax.Array, Info]:
        act, projected = self.project(action, state, params)
        share = act[0].astype(jnp.float32) / (params.bins - 1)
        first = state.step == 0
        batch = jnp.where(first, self.batch_of(act[1], params), state.batch)
        k = tokens_per_step(params)
        ctx = state.kv_tokens + state.act_tokens
        conv = jnp.float32(0.0)  # activation entries converted to K,V at this step's start (per sequence)
        if params.convert_bins >= 2:
            conv = self.convert_fracs(params)[act[2]] * state.act_tokens
        # the policy's step, the baseline's (all-KV at its block) and all-KV at the policy's block, in one vmap
        rows = (jnp.stack([batch, params.kv_batch, batch]), jnp.stack([state.kv_tokens, ctx, ctx]),
                jnp.stack([state.act_tokens, 0.0, 0.0]), jnp.stack([share, 0.0, 0.0]), jnp.stack([conv, 0.0, 0.0]))
        t, pc, gp, nb = jax.vmap(lambda b, kv, ac, a, c: step_time(params, b, kv, ac, a, first, c))(*rows)
        total, pcie, gpu, base, same = t[0], pc[0], gp[0], t[1], t[2]
        nbytes = {k: v[0] for k, v in nb.items()}
        tps = batch * k / total
        base_tps = params.kv_batch * k / base
        reward = tps / base_tps
        now = jnp.where(first, params.prompt_len + k, k)
        new = CacheRatioState(kv_tokens=state.kv_tokens + conv + (1.0 - share) * now,
                              act_tokens=state.act_tokens - conv + share * now, batch=batch, last_pcie_s=pcie,
                              last_gpu_s=gpu, step=state.step + 1)
        end = params.prompt_len + params.gen_len
        written = new.kv_tokens + new.act_tokens
        kv_end, act_end = new.kv_tokens, new.act_tokens + (end - written)  # the rest at best as activations
        metrics = {
            "iteration_time_s": total / k, "step_time_s": total, "tokens_per_s": tps, "baseline_tokens_per_s": base_tps,
            "speedup_same_batch": same / total, "pcie_time_s": pcie, "gpu_time_s": gpu,
            "pcie_bytes": nbytes["pcie_bytes"], "weights_bytes": nbytes["weights_bytes"],
            "cache_bytes": nbytes["cache_bytes"],
            "host_used_frac": host_used(params, batch, new.kv_tokens, new.act_tokens)
            / params.rates.cpu_capacity_bytes,
            "gpu_used_frac": gpu_used(params, batch, kv_end, act_end) / params.rates.gpu_capacity_bytes,
            "activation_share": share, "batch": batch, "projected": projected.astype(jnp.float32),
            "converted_tokens": conv,
        }
        terminated = new.step >= params.max_steps
        info = {"metrics": metrics, "projected": projected}
        return self.observe(new, params), new, reward, terminated, jnp.bool_(False), info

    def observe(self, state: CacheRatioState, params: CacheRatioParams) -> Observation:
        end = params.prompt_len + params.gen_len
        first = state.step == 0
        batch = jnp.where(first, params.kv_batch, state.batch)
        ctx = state.kv_tokens + state.act_tokens
        rows = (jnp.stack([params.kv_batch, batch, batch]), jnp.stack([ctx, state.kv_tokens, state.kv_tokens]),
                jnp.stack([0.0, state.act_tokens, state.act_tokens]), jnp.asarray([0.0, 0.0, 1.0], jnp.float32))
        t, pc, gp, _ = jax.vmap(lambda b, kv, ac, a: step_time(params, b, kv, ac, a, first))(*rows)
        base, p0, g0, p1, g1 = t[0], pc[1], gp[1], pc[2], gp[2]
        host = host_used(params, batch, state.kv_tokens, state.act_tokens) / offload.capacities(params.rates)[1]
        gpu = gpu_used(params, batch, state.kv_tokens, state.act_tokens) / offload.capacities(params.rates)[0]
        feats = jnp.stack([
            state.kv_tokens / end, state.act_tokens / end, state.last_pcie_s / base, state.last_gpu_s / base,
            1.0 - host, 1.0 - gpu, state.step / params.max_steps, state.batch / params.max_batch,
            p0 / base, g0 / base, p1 / base, g1 / base])
        return Observation(features=clip_features(feats), action_mask=self.action_mask(state, params))

