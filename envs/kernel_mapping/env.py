"""KernelMapping-v0: map each decoder sublayer across H2M2's HBM and LPDDR sides as the KV cache grows.

MDP card
--------
System      H2M2 (arXiv 2504.14893): HBM3 96 GB / 3 TB/s and LPDDR5X 512 GB / 544 GB/s, each with an identical
            INT8 accelerator, joined by a 960 GB/s link (`configs/hardware/h2m2-hbm3-lpddr5x.yaml`; the
            baseline is `h2m2-lpddr-only.yaml`). Cost model: `memgym.sim.asymmetric`.
State       per-slot context lengths f[B] (B = batch = request slots), the current mapping f[3], step count.
Episode     `max_steps` steps of `iterations_per_step` decode iterations each. Contexts start uniform in
            [context_start_min, context_start_max] (default: the sweep's first context to twice that) and
            grow by one token per iteration. `workload="dynamic"`
            finishes each request early with probability `finish_prob` per iteration (or at `context_max`) and
            replaces it with a new one (H2M2's 128-iteration experiment).
Action      MultiDiscrete([bins] * 3): the HBM share of (attention, qkv, fc), bin i → share i / (bins − 1).
            Attention and qkv are split by head, fc by column.
Mask        per sublayer, bins whose share alone would overflow HBM (or whose remainder would overflow LPDDR)
            at the coming step's footprint. Joint overflows cannot be masked per dimension; they are
            projected: HBM overflow lowers fc, then qkv, then attention, one bin at a time (H2M2's eviction
            order); LPDDR overflow raises attention, then qkv, then fc. `info["projected"]` flags it.
Reward      t_LPDDR-only / t_policy for the step's iterations, migration of pages whose side changed included,
            so an episode's mean reward is the speedup over the LPDDR-only system (the paper's metric).
Observation f32[29] in [-10, 10], every feature a fraction or a ratio (no bytes, seconds or token counts), so
            one policy transfers across models, capacities and bandwidths: footprint of each sublayer / HBM
            capacity (3); free HBM and LPDDR fractions (2); mean, max, min context of the running requests /
            context_max (3); HBM capacity / total footprint (1); the current mapping (3); each sublayer's
            HBM-side and LPDDR-side time in the last iteration / the baseline's iteration time (6; 0 at reset);
            step / max steps (1); KV growth per step / HBM capacity (1); per sublayer, the HBM share that
            equalises its two sides' times (3), the largest share the mask allows (3), and the share H2M2's
            greedy picks for the coming step (3: the paper's algorithm as an observed hint, which a policy may
            follow or override; residual-policy style).
Termination static workload: `terminated` when the run's last iteration is done; dynamic workload: the run
            has no natural end, so the episode is `truncated` at max_steps.
Metrics     info["metrics"]: iteration_time_s (per iteration, migration amortised), baseline_time_s, speedup,
            tokens_per_s, migration_bytes, hbm_used_frac, lpddr_used_frac, energy_j (memory access energy per
            iteration), hbm_share_* (the mapping used), projected, time_{attention,qkv,fc}_s (barrier time of
            each sublayer over all layers), migration_s.
Parameters  `KernelMappingScenario` (scenario.py): model (INT8), batch, hardware (vmappable: e.g. HBM capacity 48–192
            GB, LPDDR bandwidth), workload; presets in `configs/`, sources in their YAML. `batch` and `dynamic` are
            traced, and `n_slots` (the slot array, static) may exceed the batch, so scenarios of different batch and
            workload stack into one table (`memgym.envs.distribution`); the benchmark's splits are in
            `configs/benchmarks/kernel-mapping.yaml`.
Heuristic   `memgym.policies.kernel_mapping.h2m2`: H2M2's greedy attention → qkv → fc min-max mapping.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from memgym.sim import asymmetric, workload
from memgym.sim.specs import HBM, LPDDR, kv_bytes_per_token

from ..core import OBS_BOUND, Info, JaxEnv, Observation, clip_features, split_mask
from .scenario import KernelMappingScenario
from .types import KernelMappingParams, KernelMappingState

SUBLAYER_NAMES = ("attention", "qkv", "fc")


def shares_of(action, bins):
    return jnp.asarray(action, jnp.float32) / (bins - 1)


class KernelMapping(JaxEnv[KernelMappingParams, KernelMappingState]):
    id = "KernelMapping-v0"
    metric_names = ("iteration_time_s", "baseline_time_s", "speedup", "tokens_per_s", "migration_bytes",
                    "hbm_used_frac", "lpddr_used_frac", "energy_j", "hbm_share_attention", "hbm_share_qkv",
                    "hbm_share_fc", "projected", "time_attention_s", "time_qkv_s", "time_fc_s", "migration_s")

    def default_params(self, **fields: Any) -> KernelMappingParams:
        """The parameters of `KernelMappingScenario(**fields)` (its fields and defaults: the paper's)."""
        return KernelMappingScenario.of(**fields).build()

    def action_nvec(self, params: KernelMappingParams) -> tuple[int, ...]:
        return (params.bins,) * 3

    def observation_bounds(self, params: KernelMappingParams) -> tuple[float, float]:
        return -OBS_BOUND, OBS_BOUND  # fractions and ratios, clipped

    def feature_names(self, params: KernelMappingParams) -> tuple[str, ...]:
        return ("footprint_attention", "footprint_qkv", "footprint_fc", "hbm_free", "lpddr_free", "context_mean",
                "context_max", "context_min", "hbm_over_footprint", "share_attention", "share_qkv", "share_fc",
                "t_hbm_attention", "t_hbm_qkv", "t_hbm_fc", "t_lpddr_attention", "t_lpddr_qkv", "t_lpddr_fc",
                "step_frac", "kv_growth", "balanced_attention", "balanced_qkv", "balanced_fc", "max_share_attention",
                "max_share_qkv", "max_share_fc", "h2m2_attention", "h2m2_qkv", "h2m2_fc")

    # -- dynamics -------------------------------------------------------------------------------------
    def active(self, params):
        """bool[n_slots]: the slots that hold a request (the first `batch`)."""
        return jnp.arange(params.n_slots) < params.batch

    def context_sum(self, state, params, offset=0.0):
        """Σ (context + offset) over the running requests."""
        return jnp.where(self.active(params), state.contexts + offset, 0.0).sum()

    def reset_env(self, key: jax.Array, params: KernelMappingParams) -> tuple[Observation, KernelMappingState]:
        ctx = workload.start_contexts(key, params.n_slots, params.context_start_min, params.context_start_max)
        ctx = jnp.where(self.active(params), ctx, 0.0)
        state = KernelMappingState(contexts=ctx, mapping=jnp.zeros(3, jnp.float32), step=jnp.int32(0),
                                   last_kv_tokens=jnp.float32(0.0), last_side_times=jnp.zeros(6, jnp.float32))
        return self.observe(state, params), state

    def kv_tokens_next(self, state, params):
        """KV tokens allocated by the end of the coming step (what a mapping must hold)."""
        return self.context_sum(state, params, params.iterations_per_step)

    def bin_tables(self, state, params):
        """All-layer times of each sublayer on each side for every share bin at the coming step's
        contexts: (t_hbm f[bins, 3], t_lpddr f[bins, 3]). Used by the heuristics and the oracle."""
        grid = jnp.linspace(0.0, 1.0, params.bins)[:, None]
        ctx_sum = self.context_sum(state, params, (params.iterations_per_step - 1.0) / 2.0)
        th, tl = asymmetric.side_times(params.model, params.hw, params.batch, ctx_sum, grid)
        return params.model.n_layers * th, params.model.n_layers * tl

    def bin_bytes(self, state, params):
        """HBM and LPDDR bytes f[bins, 3] of each sublayer at each share bin (whole pages per layer), at the
        coming step's footprint."""
        kv = self.kv_tokens_next(state, params)
        grid = jnp.linspace(0.0, 1.0, params.bins)[:, None]
        return (asymmetric.sublayer_bytes(params.model, params.hw, kv, grid),
                asymmetric.sublayer_bytes(params.model, params.hw, kv, 1.0 - grid))

    def bin_costs(self, state, params, tables=None, nbytes=None):
        """(cost f[bins, 3], HBM bytes f[bins, 3], LPDDR bytes f[bins, 3], footprints f[3]): each sublayer's
        all-layer time at each share bin (the slower side, plus the activation copy of a split), and bytes.
        `tables` and `nbytes`: this state's `bin_tables` and `bin_bytes`, if the caller already has them."""
        th, tl = self.bin_tables(state, params) if tables is None else tables
        grid = jnp.linspace(0.0, 1.0, params.bins)
        split = (grid > 0) & (grid < 1)
        m = params.model
        copy = jnp.where(split, m.n_layers * params.batch * m.d_model * m.bytes_per_activation
                         / params.hw.link_bw_bytes_per_s, 0.0)
        cost = jnp.maximum(th, tl) + copy[:, None]
        foot = asymmetric.footprints(m, params.hw, self.kv_tokens_next(state, params))
        hb, lb = self.bin_bytes(state, params) if nbytes is None else nbytes
        return cost, hb, lb, foot

    def h2m2_mapping(self, state, params, costs=None):
        """H2M2's runtime algorithm (`memgym.policies.kernel_mapping.h2m2`): sublayers in the order attention →
        qkv → fc each take the split minimising their slower side among those fitting the capacity still
        free; while the footprint grows, qkv and fc shares never rise. Returns bins i32[3]. `costs`: this
        state's `bin_costs`, if the caller already has them."""
        cost, hb, lb, _ = self.bin_costs(state, params) if costs is None else costs
        rem_h, rem_l = params.hw.tier_capacity_bytes[HBM], params.hw.tier_capacity_bytes[LPDDR]
        prev = jnp.round(state.mapping * (params.bins - 1)).astype(jnp.int32)
        free = (state.step == 0) | (self.kv_tokens_next(state, params) < state.last_kv_tokens)
        idx = []
        for s in range(3):
            later_l = sum((lb[0, x] for x in range(s + 1, 3)), jnp.float32(0.0))
            ok = (hb[:, s] <= rem_h) & (lb[:, s] + later_l <= rem_l)
            i = jnp.argmin(jnp.where(ok, cost[:, s], jnp.inf))
            if s != 0:  # evicted weights never come back
                i = jnp.where(free, i, jnp.minimum(i, prev[s]))
            rem_h = rem_h - hb[i, s]
            rem_l = rem_l - lb[i, s]
            idx.append(i)
        return jnp.stack(idx).astype(jnp.int32)

    def action_mask(self, state: KernelMappingState, params: KernelMappingParams, nbytes=None) -> jax.Array:
        ok = asymmetric.fits_bytes(params.hw, *(self.bin_bytes(state, params) if nbytes is None else nbytes))
        ok = ok | ~ok.any(axis=0, keepdims=True)  # never an empty dimension
        return ok.T.reshape(-1)  # [3 * bins], attention bins first

    def project(self, action, state, params):
        """The nearest feasible mapping along the documented path; returns (action, projected).

        Path: lower fc one bin at a time, then qkv (fc at 0), then attention (both at 0); if no mapping on
        that path fits (LPDDR overflows), raise attention, then qkv, then fc. Each segment is searched as a
        vector over bins: the first feasible bin in path order is the largest (lowering) or smallest
        (raising) feasible one."""
        n = params.bins
        a = jnp.clip(jnp.asarray(action, jnp.int32), 0, n - 1)
        hb, lb = self.bin_bytes(state, params)
        j = jnp.arange(n)
        top = n - 1

        def segment(fixed, s, lowering):
            """Bins of sublayer s (others at `fixed`) that fit, restricted to the segment's direction."""
            h = sum(hb[fixed[x], x] for x in range(3) if x != s) + hb[:, s]
            lo = sum(lb[fixed[x], x] for x in range(3) if x != s) + lb[:, s]
            ok = asymmetric.fits_bytes(params.hw, h, lo) & ((j <= a[s]) if lowering else (j >= a[s]))
            pick = jnp.where(lowering, jnp.max(jnp.where(ok, j, -1)), jnp.min(jnp.where(ok, j, n)))
            return ok.any(), pick

        zero = jnp.int32(0)
        segments = [  # (fixed bins of the other sublayers, the sublayer that moves, lowering?)
            ((a[0], a[1], a[2]), 2, True), ((a[0], a[1], zero), 1, True), ((a[0], zero, zero), 0, True),
            ((a[0], a[1], a[2]), 0, False), ((top, a[1], a[2]), 1, False), ((top, top, a[2]), 2, False)]
        result, found = a, jnp.bool_(False)
        for fixed, s, lowering in reversed(segments):  # the earliest feasible segment wins
            any_ok, pick = segment(fixed, s, lowering)
            cand = jnp.stack([pick if x == s else jnp.asarray(fixed[x], jnp.int32) for x in range(3)])
            result = jnp.where(any_ok, cand, result)
            found = found | any_ok
        result = jnp.where(found, result, a)
        # an out-of-range action is clipped and flagged too: nothing invalid passes silently
        return result.astype(jnp.int32), jnp.any(result != jnp.asarray(action, jnp.int32))

    def step_env(self, key: jax.Array, state: KernelMappingState, action: jax.Array, params: KernelMappingParams
                 ) -> tuple[Observation, KernelMappingState, jax.Array, jax.Array, jax.Array, Info]:
        action, projected = self.project(action, state, params)
        share = shares_of(action, params.bins)
        n_it = params.iterations_per_step
        ctx_mid = self.context_sum(state, params, (n_it - 1.0) / 2.0)
        kv_tokens = self.kv_tokens_next(state, params)
        prev = jnp.where(state.step == 0, share, state.mapping)
        res = asymmetric.iteration_time(params.model, params.hw, params.batch, ctx_mid, kv_tokens, share, prev)
        it_s = res["iteration_time_s"] - res["migration_s"]
        step_s = n_it * it_s + res["migration_s"]
        base_s = n_it * asymmetric.homogeneous_time(params.model, params.baseline_hw, params.batch, ctx_mid)
        reward = base_s / step_s
        hbm_used = asymmetric.hbm_bytes_used(params.model, params.hw, kv_tokens, share)
        lp_used = asymmetric.lpddr_bytes_used(params.model, params.hw, kv_tokens, share)
        e = params.hw.tier_energy_j_per_byte
        metrics = {
            "iteration_time_s": step_s / n_it,
            "baseline_time_s": base_s / n_it,
            "speedup": reward,
            "tokens_per_s": params.batch * n_it / step_s,
            "migration_bytes": res["migration_bytes"],
            "hbm_used_frac": hbm_used / params.hw.tier_capacity_bytes[HBM],
            "lpddr_used_frac": lp_used / params.hw.tier_capacity_bytes[LPDDR],
            "energy_j": res["hbm_bytes"] * e[HBM] + res["lpddr_bytes"] * e[LPDDR],
            "hbm_share_attention": share[0],
            "hbm_share_qkv": share[1],
            "hbm_share_fc": share[2],
            "projected": projected.astype(jnp.float32),
            "time_attention_s": res["sublayer_time_s"][0],
            "time_qkv_s": res["sublayer_time_s"][1],
            "time_fc_s": res["sublayer_time_s"][2],
            "migration_s": res["migration_s"] / n_it,
        }
        ctx, _ = workload.advance(key, state.contexts, n_it, params.finish_prob, params.context_start_min,
                                  params.context_start_max, params.context_max)
        ctx = jnp.where(self.active(params), ctx, 0.0)
        side = jnp.concatenate([res["hbm_side_s"], res["lpddr_side_s"]]) / (base_s / n_it)
        new_state = KernelMappingState(contexts=ctx, mapping=share, step=state.step + 1, last_kv_tokens=kv_tokens,
                                       last_side_times=side)
        done = new_state.step >= params.max_steps
        terminated = done & ~params.dynamic
        truncated = done & params.dynamic
        info = {"metrics": metrics, "projected": projected}
        return self.observe(new_state, params), new_state, reward, terminated, truncated, info

    def observe(self, state: KernelMappingState, params: KernelMappingParams) -> Observation:
        m, hw = params.model, params.hw
        kv = self.kv_tokens_next(state, params)
        foot = asymmetric.footprints(m, hw, kv)
        cap_h, cap_l = hw.tier_capacity_bytes[HBM], hw.tier_capacity_bytes[LPDDR]
        share = state.mapping
        cmax = params.context_max
        active = self.active(params)
        # the bin tables and bytes once, shared by the mask, the balanced shares and the H2M2 hint
        tables, nbytes = self.bin_tables(state, params), self.bin_bytes(state, params)
        mask = self.action_mask(state, params, nbytes)
        masks = split_mask(mask, self.action_nvec(params))
        th, tl = tables
        balanced = tl[0] / jnp.maximum(th[-1] + tl[0], 1e-30)  # the share that equalises the two sides
        growth = params.batch * params.iterations_per_step * kv_bytes_per_token(m)
        feats = jnp.concatenate([
            foot / cap_h,
            jnp.stack([1.0 - asymmetric.hbm_bytes_used(m, hw, kv, share) / cap_h,
                       1.0 - asymmetric.lpddr_bytes_used(m, hw, kv, share) / cap_l]),
            jnp.stack([self.context_sum(state, params) / params.batch,
                       jnp.where(active, state.contexts, -jnp.inf).max(),
                       jnp.where(active, state.contexts, jnp.inf).min()]) / cmax,
            (cap_h / foot.sum())[None],
            share,
            state.last_side_times,
            (state.step / params.max_steps)[None].astype(jnp.float32),
            (growth / cap_h)[None],
            balanced,
            jnp.stack([jnp.max(jnp.where(mk, jnp.arange(params.bins), 0)) for mk in masks]) / (params.bins - 1.0),
            self.h2m2_mapping(state, params, self.bin_costs(state, params, tables, nbytes)) / (params.bins - 1.0),
        ])
        return Observation(features=clip_features(feats), action_mask=mask)
