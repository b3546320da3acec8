"""CacheRatio-v1's scenario: model, server, memories, the request stream's lengths and load, checked, and the
params derived from it."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from memgym.sim import config, offload, server, serving

from ..scenario import Scenario
from .types import CacheRatioV1Params

# ShareGPT's mean prompt and output lengths (tokens) as reported by the vLLM paper (Kwon et al., arXiv 2309.06180,
# §6.1); the log-normal shape σ is a chosen value (the paper shows histograms, not a fit).
SHAREGPT_PROMPT_MEAN, SHAREGPT_OUTPUT_MEAN = 161.0, 338.0


def reference(params: CacheRatioV1Params) -> tuple[jax.Array, jax.Array]:
    """(ref_batch, ref_tokens_per_s): the largest batch of mean-length requests (prompt_mean + output_mean
    tokens each, all K,V) that fits host memory, at most n_slots, and its decode throughput at the mean
    context prompt_mean + output_mean / 2 with an all-K,V cache (FlexGen-style). The reward's unit and the
    load's."""
    m, r = params.model, params.rates
    p = server.system_placement(params, 0.0)
    end = params.prompt_mean + params.output_mean
    b = offload.max_block(m, r, p, params.gbs, params.prompt_mean, end, 0.0)
    batch = jnp.clip(jnp.floor(b), 1.0, params.n_slots)
    ctx = params.prompt_mean + params.output_mean / 2.0
    d = offload.decode_layer(m, r, p, batch, jnp.minimum(params.gbs, batch), ctx, 0.0, 0.0)
    return batch, batch / (m.n_layers * d["layer_s"])


def derive_capacity(params: CacheRatioV1Params, load) -> CacheRatioV1Params:
    """wg (the largest weight share the GPU holds beside the longest request's working set), the reference
    batch and throughput, and the arrival rate = load × ref_tokens_per_s / output_mean. Jittable."""
    params = dataclasses.replace(params, wg=server.weights_on_gpu(params))
    batch, tps = reference(params)
    return dataclasses.replace(params, ref_batch=batch, ref_tokens_per_s=tps,
                               arrival_rate_per_s=load * tps / params.output_mean)


_derive_jit = jax.jit(derive_capacity)


@dataclasses.dataclass(frozen=True)
class CacheRatioV1Scenario(Scenario):
    """One scenario. Defaults: OPT-66B on an A100-80GB over PCIe 4 (CacheRatio-v0's server) with 256 GB of host
    memory, serving a ShareGPT-like stream (log-normal prompts of mean 161 tokens and outputs of mean 338, σ 1.0,
    each clipped to 1024) offered at 2× the all-K,V reference throughput, 16 requests waiting at the start;
    128 slots, a stream of 2048 requests, 8 decode iterations per step, 256 steps. With 128 GB of host memory
    (CacheRatio-v0's default) the server is PCIe-bound at every batch that fits, so all-activation is best at
    every step and HybridServe's balance finds it; with 256 GB the batches grow until the K,V regeneration
    loads the GPU, and the share becomes a trade between this step's time and what the entries cost later (PCIe
    and recomputation on every later step, memory later admissions need)."""

    env_id = "CacheRatio-v1"
    presets = (("model", "models"), ("hardware", "hardware"))

    model: str = "opt-66b"
    hardware: str = "a100-80gb-pcie4"
    host_memory_gb: float | None = 256.0
    gpu_memory_gb: float | None = None
    pcie_gbps: float | None = None
    ctog_overlap: float = 1.0
    dtype: str = "fp16"
    gbs: int = 4
    bins: int = 11
    n_slots: int = 128
    n_requests: int = 2048
    max_steps: int = 256
    iterations_per_step: int = 8
    prompt_mean: float = SHAREGPT_PROMPT_MEAN
    prompt_sigma: float = 1.0
    output_mean: float = SHAREGPT_OUTPUT_MEAN
    output_sigma: float = 1.0
    max_prompt_len: int = 1024
    max_output_len: int = 1024
    load: float = 2.0
    n_initial: int = 16

    def __post_init__(self):
        self._normalise()
        if self.n_initial > self.n_requests:
            raise ValueError(f"n_initial must be <= n_requests ({self.n_requests}), got {self.n_initial}")
        if self.prompt_mean > self.max_prompt_len or self.output_mean > self.max_output_len:
            raise ValueError(f"prompt_mean and output_mean must not exceed max_prompt_len and max_output_len; got "
                             f"{self.prompt_mean} > {self.max_prompt_len} or {self.output_mean} > "
                             f"{self.max_output_len}")
        self.system()

    def system(self) -> tuple:
        """(model, server rates) with the memory and PCIe overrides applied."""
        return (config.load_model(self.model, dtype=self.dtype),
                server.rates(self.hardware, self.ctog_overlap, self.gpu_memory_gb, self.host_memory_gb, self.pcie_gbps))

    def derive(self) -> CacheRatioV1Params:
        m, rates = self.system()
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        params = CacheRatioV1Params(
            model=m, rates=rates, wg=f(0.0), gbs=f(self.gbs), prompt_len=f(self.max_prompt_len),
            gen_len=f(self.max_output_len), iterations=f(self.iterations_per_step), prompt_mean=f(self.prompt_mean),
            prompt_sigma=f(self.prompt_sigma), output_mean=f(self.output_mean), output_sigma=f(self.output_sigma),
            arrival_rate_per_s=f(0.0), n_initial=f(self.n_initial), ref_tokens_per_s=f(1.0), ref_batch=f(1.0),
            bins=self.bins, n_slots=self.n_slots, n_requests=self.n_requests, max_steps=self.max_steps)
        params = _derive_jit(params, f(self.load))
        # the longest request alone (prompt as K,V, output reserved in the smaller form) must fit, or the head
        # of the queue could never be admitted
        big_kv, big_act = serving.min_form_split(params, params.gen_len)
        host = float(serving.host_bytes(params, 1.0, params.prompt_len + big_kv, big_act))
        cap = float(serving.host_capacity(params))
        end = float(params.prompt_len + params.gen_len)
        gpu_cap = float(offload.capacities(rates)[0]) * (1 + 1e-6)
        gpu_over = float(server.gpu_used(params, params.gbs, end, 0.0)) > gpu_cap
        if host > cap or gpu_over:
            raise ValueError(f"model '{self.model}' does not serve on '{self.hardware}' with {self.host_memory_gb} GB "
                             f"of host memory at gbs={self.gbs}: the longest request ({self.max_prompt_len} + "
                             f"{self.max_output_len} tokens) needs {host / 1e9:.1f} GB of the host's usable "
                             f"{cap / 1e9:.1f} GB, GPU working set {'over' if gpu_over else 'within'} capacity; "
                             f"add memory, lower gbs or the maximum lengths")
        return params
