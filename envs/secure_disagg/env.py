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
Action      MultiDiscrete([bins, remote_bins, 7, batch_bins]): the activation share of this step's cache entries (bin i
            → i / (bins − 1)); the share of them placed remotely (bin k → k / (remote_bins − 1), moved into the interval
            of shares that keeps the run fitting: the realised share is continuous, so bin 0 means "as little as the run
            needs", local-first spill); at the first step the remote mode (`disagg.MODES`: rdma_slab, rdma_register,
            plain, secure, remap, dummy, oram) and the block (bin j → ⌊max_batch·(j + 1) / batch_bins⌋ sequences); later
            steps keep both (only their bins are unmasked). Entries keep their form and tier.
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
Observation f32[22] clipped to [-10, 10], every feature a fraction or a ratio (scale-free across models,
            memories and links): tokens per form and tier / (prompt + gen) (4); last PCIe, GPU and
            network times (3); free host and free remote fractions (2); step / max_steps; block /
            max_batch; tenant level / 4; (mode + 1) / 7 (0 before the first step); the coming step's PCIe
            and GPU times at share 0 and 1, all local (4); its network time with every entry remote at share
            0 (1); every time as log1p(time / the baseline's step time), since Path ORAM's times reach
            hundreds of baseline steps and a plain ratio would sit at the clip; TDMem's heuristic plan for this
            scenario as a hint a policy may follow or override (share bin / (bins − 1), mode / 6, block bin /
            (batch_bins − 1)) (3); the fraction of block bins whose whole run fits host memory alone in the
            smaller cache form (1): a larger block spills to remote memory before the run ends, which under
            Path ORAM costs far more than the smaller block.
Metrics     iteration_time_s, step_time_s, tokens_per_s, baseline_tokens_per_s, pcie_time_s, gpu_time_s,
            net_time_s, net_bytes, host_used_frac, remote_used_frac, activation_share, remote_share, mode,
            security_level, batch, projected.
Parameters  `SecureDisaggScenario` (scenario.py): model, hardware preset with a remote tier (`a100-80gb-pcie4-tdmem`),
            host and remote memory, link bandwidth and engine round trip, PCIe bandwidth, prompt and generation lengths,
            `gbs`, tenant; all floats in the params pytree (vmappable after `derive`).
Heuristic   `memgym.policies.secure_disagg.tdmem`: the cheapest secure mode the tenant allows, HybridServe's
            balance share and the largest block that fits at it, new entries local first, spilled remotely
            only as far as the run's end needs.
Choice      `oracle_plan` (the best static plan over share × mode × block, local-first spill) is precomputed
            per scenario with the baseline, so the oracle policy is a lookup; so are every mode's static plan
            (`mode_plans`, the planned policies' lookup) and the first step's feasibility over mode × block ×
            share bins (`first_tables`: the first step's masks and projection depend on the params alone),
            `local_blocks`, and the initial state's observation (`first_obs`: every reset returns it, so the
            autoreset observes nothing).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from memgym.sim import disagg, offload
from memgym.sim.server import tokens_per_step

from ..core import OBS_BOUND, Info, JaxEnv, Observation, clip_features
from .plan import fit_action, rise
from .scenario import SecureDisaggScenario
from .system import (LEVELS, N_MODES, advance, allowed, current_batch_bin, host_used, initial_state,
                     min_form, remote_used, roomiest_mode, step_rho_ok, step_share_ok, step_time)
from .types import FEATURE_NAMES, SecureDisaggParams, SecureDisaggState


class SecureDisagg(JaxEnv[SecureDisaggParams, SecureDisaggState]):
    id = "SecureDisagg-v0"
    metric_names = ("iteration_time_s", "step_time_s", "tokens_per_s", "baseline_tokens_per_s", "pcie_time_s",
                    "gpu_time_s", "net_time_s", "net_bytes", "host_used_frac", "remote_used_frac",
                    "activation_share", "remote_share", "mode", "security_level", "batch", "projected")

    def default_params(self, **fields: Any) -> SecureDisaggParams:
        """The parameters of `SecureDisaggScenario(**fields)` (defaults: the reproduction's scenario)."""
        return SecureDisaggScenario.of(**fields).build()

    def action_nvec(self, params: SecureDisaggParams) -> tuple[int, ...]:
        return (params.bins, params.remote_bins, N_MODES, params.batch_bins)

    def observation_bounds(self, params: SecureDisaggParams) -> tuple[float, float]:
        return -OBS_BOUND, OBS_BOUND

    def feature_names(self, params: SecureDisaggParams) -> tuple[str, ...]:
        return FEATURE_NAMES

    # -- dynamics -------------------------------------------------------------------------------------------
    def reset_env(self, key: jax.Array, params: SecureDisaggParams) -> tuple[Observation, SecureDisaggState]:
        return params.first_obs, initial_state()  # `derive` observed the initial state once

    def _mode_mask(self, state, params):
        """bool[7]: at the first step the modes the tenant allows that fit at the smallest block; later the
        episode's mode."""
        md = jnp.where(state.step == 0, allowed(params) & params.first_ok[:, 0], jnp.arange(N_MODES) == state.mode)
        return jnp.where(md.any(), md, allowed(params))

    def _masks(self, state, params):
        """Per-dimension feasibility: (share bool[bins], rho bool[remote_bins], mode bool[7], batch
        bool[batch_bins]), each checked at the loosest values of the other dimensions: at the first step the
        roomiest allowed mode and the smallest block (read from the params' `first_tables`), later the
        episode's mode and block."""
        roomy = roomiest_mode(params)
        sh = step_share_ok(params, state, roomy, 0)
        rh = step_rho_ok(params, state, roomy, 0, jnp.round(min_form(params) * (params.bins - 1)).astype(jnp.int32))
        bt = jnp.where(state.step == 0, params.first_ok[roomy],
                       jnp.arange(params.batch_bins) == current_batch_bin(params, state))
        never_empty = lambda x: x | ~x.any()  # noqa: E731
        return never_empty(sh), never_empty(rh), self._mode_mask(state, params), never_empty(bt)

    def action_mask(self, state: SecureDisaggState, params: SecureDisaggParams) -> jax.Array:
        return jnp.concatenate(self._masks(state, params))

    def project(self, action, state, params):
        """(action, projected): the mode rises to an allowed, feasible one; the block falls to the largest
        feasible bin; the shares move to the nearest feasible bins (upwards first). Out-of-range entries
        are clipped and flagged."""
        raw = jnp.asarray(action, jnp.int32)
        a = jnp.clip(raw, 0, jnp.asarray(self.action_nvec(params)) - 1)
        first = state.step == 0
        mode = jnp.where(first, rise(self._mode_mask(state, params), a[2]), state.mode)
        out = fit_action(params, state, mode, a[0], a[1], a[3])
        changed = out != raw
        projected = changed[0] | changed[1] | (first & (changed[2] | changed[3]))
        return out, projected

    def step_env(self, key: jax.Array, state: SecureDisaggState, action: jax.Array, params: SecureDisaggParams
                 ) -> tuple[Observation, SecureDisaggState, jax.Array, jax.Array, jax.Array, Info]:
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
            "security_level": jnp.asarray(LEVELS)[mode], "batch": new.batch, "projected": projected.astype(jnp.float32),
        }
        terminated = new.step >= params.max_steps
        info = {"metrics": metrics, "projected": projected}
        return self.observe(new, params, first=False), new, tps / base_tps, terminated, jnp.bool_(False), info

    def observe(self, state: SecureDisaggState, params: SecureDisaggParams, first=None) -> Observation:
        """The observation of `state`; `first`: whether it is the initial state (`state.step == 0` if None;
        `step_env` passes False, so its program leaves out the first step's prefill times)."""
        end = params.prompt_len + params.gen_len
        first = state.step == 0 if first is None else first
        base = params.base_step_s[jnp.clip(state.step, 0, params.max_steps - 1)]
        batch = jnp.where(first, params.base_batch, state.batch)
        mode = jnp.where(first, roomiest_mode(params), state.mode)
        rows = (jnp.asarray([0.0, 1.0, 0.0], jnp.float32), jnp.asarray([0.0, 0.0, 1.0], jnp.float32))
        _, pc, gp, nt, _ = jax.vmap(lambda a, q: step_time(params, mode, batch, state.tokens, a, q, first))(*rows)
        host = host_used(params, batch, state.tokens) / offload.capacities(params.rates)[1]
        rem = remote_used(params, batch, state.tokens) / jnp.maximum(disagg.usable_bytes(params.remote, mode), 1.0)
        # times as log1p(time / baseline step): under Path ORAM they reach hundreds of baseline steps, and a
        # plain ratio would sit at the clip bound, where "slow" and "ruinous" look the same
        last = jnp.log1p(jnp.stack([state.last_pcie_s, state.last_gpu_s, state.last_net_s]) / base)
        coming = jnp.log1p(jnp.stack([pc[0], gp[0], pc[1], gp[1], nt[2]]) / base)
        feats = jnp.concatenate([
            state.tokens / end,
            last,
            jnp.stack([1.0 - host, 1.0 - rem, state.step / params.max_steps, state.batch / params.max_batch,
                       params.tenant / 4.0, (state.mode + 1.0) / N_MODES]),
            coming,
            params.heuristic_plan / jnp.asarray([params.bins - 1.0, N_MODES - 1.0, max(params.batch_bins - 1, 1.0)]),
            params.local_blocks[None]])
        return Observation(features=clip_features(feats), action_mask=self.action_mask(state, params))
