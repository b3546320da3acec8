"""CacheRatio-v1: choose the KV : activation ratio of an offloaded cache while serving a stream of requests.

MDP card
--------
System      CacheRatio-v0's offloading server (one GPU streams each layer's weights, a placed share `wg` kept on
            the GPU, and the cache from host DRAM over PCIe; cache in host memory, attention on the GPU; each
            cached token of each layer held as K,V, 2·h_kv·d_h·b bytes, or as the layer-input activation, d·b
            bytes, whose K,V the GPU regenerates while the next weights arrive), now serving requests:
            `memgym.sim.serving`. Requests arrive (Poisson, after `n_initial` waiting at the start), are admitted
            first come first served into `n_slots` slots while host memory holds their commitment (cache plus
            remaining output in the smaller form), prefill, decode in a continuous batch and leave when their
            output is complete. Prompt and output lengths are log-normal around ShareGPT's means (161 and 338
            tokens, the vLLM paper, arXiv 2309.06180), clipped to the maximum lengths.
Why learn   The form of an entry is kept for the request's life: K,V entries cost PCIe bytes on every later
            step and host memory (twice an activation's for MHA models), activations cost GPU recomputation.
            Host memory spent on K,V is memory not available to admit waiting requests, so a share that
            balances this step's PCIe and GPU time (HybridServe's rule) can shrink later batches; with an empty
            queue K,V is free to use. The best share depends on the queue, the occupancy and the requests'
            remaining lengths, not on the step alone.
Episode     `max_steps` steps (default 256) of `iterations_per_step` decode iterations (default 8) each;
            `terminated` after the last. Each reset samples a new stream from the reset key.
State       per slot: cached tokens as K,V and as activations, tokens left, active; the stream (arrival times,
            lengths), the next request to admit, the clock; the last step's PCIe, GPU and step times; the step.
Action      Discrete bins as MultiDiscrete([bins]): the activation share of every cache entry written this
            step, the admitted prompts' and the running requests' new tokens (bin i → i / (bins − 1)).
Mask        shares whose entries keep the committed host memory within capacity (the smaller form is always
            allowed). An infeasible share is projected to the nearest feasible one towards the smaller form
            (up for MHA models, down for GQA ones); `info["projected"]` flags it.
Reward      the step's output tokens per second divided by `ref_tokens_per_s`: the throughput of all-K,V
            serving (FlexGen-style) of the largest batch of mean-length requests that fits host memory, at the
            mean context (a constant per scenario, `scenario.reference`). An idle step (nothing to run, waiting
            for an arrival) earns 0. Finite by construction (0 where a step takes no time).
Observation f32[15] clipped to [-10, 10], every feature scale-free: waiting requests / n_slots, running / n_slots,
            host used and committed / usable host memory, GPU used / usable GPU memory, the last step's PCIe
            and GPU busy time / its duration, mean running context / (max prompt + max output), mean tokens left
            / max output, the activation share of the cached tokens, step / max_steps, and the coming step's
            decode PCIe and GPU times at share 0 and at share 1 / the reference step time (4).
Metrics     info["metrics"]: step_time_s, tokens, tokens_per_s, pcie_time_s, gpu_time_s, pcie_bytes,
            weights_bytes, cache_bytes, host_used_frac, host_committed_frac, gpu_used_frac, activation_share,
            running, waiting, admitted, finished, idle, projected, clock_s.
Parameters  `CacheRatioV1Scenario` (scenario.py): model, hardware preset, host and GPU memory, PCIe bandwidth, gbs,
            the stream (`load` = arrival rate × output_mean / ref_tokens_per_s, `n_initial`, length means,
            σ and maxima), `n_slots`, `n_requests`, `iterations_per_step`, `bins`, `max_steps`.
Heuristic   `memgym.policies.cache_ratio_v1.hybridserve`: HybridServe's balance applied every step (the share
            that equalises the coming decode's PCIe and GPU time for the running batch), the smallest feasible
            bin at or above it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from memgym.sim import serving

from ..core import OBS_BOUND, Info, JaxEnv, Observation, clip_features
from .scenario import CacheRatioV1Scenario
from .types import CacheRatioV1Params, CacheRatioV1State


def shares(params) -> jax.Array:
    return jnp.linspace(0.0, 1.0, params.bins)


def ref_step_s(params):
    """Seconds of one reference step (the reward's unit batch, all K,V, at the mean context)."""
    return params.ref_batch * params.iterations / params.ref_tokens_per_s


def stream_of(key, params) -> serving.Stream:
    return serving.sample_stream(key, params.n_requests, params.arrival_rate_per_s, params.n_initial,
                                 params.prompt_mean, params.prompt_sigma, params.output_mean, params.output_sigma,
                                 params.prompt_len, params.gen_len)


def share_mask(params, slots: serving.Slots) -> jax.Array:
    """bool[bins]: the shares whose entries keep committed host memory within capacity; never empty (the
    smaller form fits whenever the state is valid)."""
    ok = serving.share_feasible(params, slots, shares(params))
    return ok | ~ok.any()


def step_reward(out: dict, params) -> tuple[jax.Array, jax.Array]:
    """(tokens/s, reward) of a step `serving.advance` reported: tokens/s ÷ the reference (0 for a step that
    takes no time)."""
    t = out["total_s"]
    tps = jnp.where(t > 0, out["tokens"] / jnp.where(t > 0, t, 1.0), 0.0)
    return tps, tps / params.ref_tokens_per_s


def bin_at_or_above(ok, a, params):
    """The smallest feasible bin ≥ `a`; the largest feasible one if none is."""
    i = jnp.arange(params.bins)
    up = jnp.min(jnp.where(ok & (i >= a), i, params.bins))
    return jnp.where(up < params.bins, up, jnp.max(jnp.where(ok, i, 0)))


def project_bin(ok, a, params):
    """The nearest feasible bin to `a` towards the smaller form; (bin, projected)."""
    i = jnp.arange(params.bins)
    up = bin_at_or_above(ok, a, params)
    down = jnp.max(jnp.where(ok & (i <= a), i, -1))
    down = jnp.where(down >= 0, down, jnp.min(jnp.where(ok, i, params.bins - 1)))
    out = jnp.where(serving.act_smaller(params), up, down).astype(jnp.int32)
    return out, out != a


class CacheRatioV1(JaxEnv[CacheRatioV1Params, CacheRatioV1State]):
    id = "CacheRatio-v1"
    metric_names = ("step_time_s", "tokens", "tokens_per_s", "pcie_time_s", "gpu_time_s", "pcie_bytes",
                    "weights_bytes", "cache_bytes", "host_used_frac", "host_committed_frac", "gpu_used_frac",
                    "activation_share", "running", "waiting", "admitted", "finished", "idle", "projected", "clock_s")

    def default_params(self, **fields: Any) -> CacheRatioV1Params:
        """The parameters of `CacheRatioV1Scenario(**fields)`."""
        return CacheRatioV1Scenario.of(**fields).build()

    def action_nvec(self, params: CacheRatioV1Params) -> tuple[int, ...]:
        return (params.bins,)

    def observation_bounds(self, params: CacheRatioV1Params) -> tuple[float, float]:
        return -OBS_BOUND, OBS_BOUND

    def feature_names(self, params: CacheRatioV1Params) -> tuple[str, ...]:
        return ("waiting_frac", "running_frac", "host_used", "host_committed", "gpu_used", "last_pcie_frac",
                "last_gpu_frac", "mean_context", "mean_left", "cache_act_frac", "step_frac", "pcie_at_kv",
                "gpu_at_kv", "pcie_at_act", "gpu_at_act")

    # -- dynamics -------------------------------------------------------------------------------------
    def reset_env(self, key: jax.Array, params: CacheRatioV1Params) -> tuple[Observation, CacheRatioV1State]:
        z = jnp.float32(0.0)
        state = CacheRatioV1State(serving=serving.initial_state(stream_of(key, params), params.n_slots),
                                  last_pcie_s=z, last_gpu_s=z, last_step_s=z, step=jnp.int32(0))
        return self.observe(state, params), state

    def action_mask(self, state: CacheRatioV1State, params: CacheRatioV1Params) -> jax.Array:
        return share_mask(params, state.serving.slots)

    def project(self, action, state, params):
        a = jnp.clip(action[0], 0, params.bins - 1)
        b, projected = project_bin(self.action_mask(state, params), a, params)
        return b, projected | (a != action[0])

    def step_env(self, key: jax.Array, state: CacheRatioV1State, action: jax.Array, params: CacheRatioV1Params
                 ) -> tuple[Observation, CacheRatioV1State, jax.Array, jax.Array, jax.Array, Info]:
        b, projected = self.project(action, state, params)
        share = b.astype(jnp.float32) / (params.bins - 1)
        srv, out = serving.advance(params, state.serving, share)
        total = out["total_s"]
        tps, reward = step_reward(out, params)
        new = CacheRatioV1State(serving=srv, last_pcie_s=out["pcie_s"], last_gpu_s=out["gpu_s"], last_step_s=total,
                                step=state.step + 1)
        host, committed, gpu = self._memory(new, params)
        metrics = {
            "step_time_s": total, "tokens": out["tokens"], "tokens_per_s": tps, "pcie_time_s": out["pcie_s"],
            "gpu_time_s": out["gpu_s"], "pcie_bytes": out["pcie_bytes"], "weights_bytes": out["weights_bytes"],
            "cache_bytes": out["cache_bytes"], "host_used_frac": host, "host_committed_frac": committed,
            "gpu_used_frac": gpu, "activation_share": share, "running": out["running"], "waiting": out["waiting"],
            "admitted": out["admitted"], "finished": out["finished"], "idle": out["idle"].astype(jnp.float32),
            "projected": projected.astype(jnp.float32), "clock_s": srv.clock_s,
        }
        terminated = new.step >= params.max_steps
        info = {"metrics": metrics, "projected": projected}
        return self.observe(new, params), new, reward, terminated, jnp.bool_(False), info

    def _memory(self, state, params):
        """(host used, host committed, GPU used) as fractions of the usable capacities."""
        slots = state.serving.slots
        act = slots.active.astype(jnp.float32)
        n, kv, ac = act.sum(), (slots.kv_tokens * act).sum(), (slots.act_tokens * act).sum()
        cap = serving.host_capacity(params)
        gcap = params.rates.mem_alpha * params.rates.gpu_capacity_bytes
        return (serving.host_bytes(params, n, kv, ac) / cap, serving.committed_bytes(params, slots) / cap,
                serving.gpu_bytes(params, n, kv, ac) / gcap)

    def observe(self, state: CacheRatioV1State, params: CacheRatioV1Params) -> Observation:
        srv = state.serving
        slots = srv.slots
        act = slots.active.astype(jnp.float32)
        n = act.sum()
        per = jnp.maximum(n, 1.0)
        kv, ac = (slots.kv_tokens * act).sum(), (slots.act_tokens * act).sum()
        host, committed, gpu = self._memory(state, params)
        last = jnp.maximum(state.last_step_s, 1e-12)
        p0, g0 = serving.decode_times(params, slots, 0.0)
        p1, g1 = serving.decode_times(params, slots, 1.0)
        ref = ref_step_s(params)
        feats = jnp.stack([
            serving.waiting(srv) / params.n_slots, n / params.n_slots, host, committed, gpu,
            state.last_pcie_s / last, state.last_gpu_s / last, (kv + ac) / per / (params.prompt_len + params.gen_len),
            (slots.left * act).sum() / per / params.gen_len, ac / jnp.maximum(kv + ac, 1.0),
            state.step / params.max_steps, p0 / ref, g0 / ref, p1 / ref, g1 / ref])
        return Observation(features=clip_features(feats), action_mask=self.action_mask(state, params))
