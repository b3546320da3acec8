"""CacheRatio-v0's scenario: model, server, memories and lengths, checked, and the params derived from it."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from memgym.sim import config, offload, server

from ..scenario import Scenario
from .types import CacheRatioParams


def derive_capacity(params: CacheRatioParams) -> CacheRatioParams:
    """wg = the largest weight share the GPU holds beside the working set (the smaller of the all-KV and
    all-activation cases), then max_batch (all activations) and kv_batch (all K,V). Jittable, so scenarios
    that vmap over host memory or lengths can re-derive them."""
    m, r = params.model, params.rates
    end = params.prompt_len + params.gen_len
    wg = server.weights_on_gpu(params)
    p = offload.placement(wg, 1.0 - wg, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0)
    kv_b = offload.max_block(m, r, p, params.gbs, params.prompt_len, end, 0.0)
    act_b = offload.max_block(m, r, p, params.gbs, params.prompt_len, 0.0, end)
    kv_batch = jnp.floor(kv_b)
    return dataclasses.replace(params, wg=wg, kv_batch=kv_batch, max_batch=jnp.maximum(jnp.floor(act_b), kv_batch))


_derive_jit = jax.jit(derive_capacity)


@dataclasses.dataclass(frozen=True)
class CacheRatioScenario(Scenario):
    """One scenario. Defaults: the reproduction's reference scenario (OPT-66B on an A100-80GB over PCIe 4 with
    128 GB of host memory, prompt 512, 128 generated tokens; `memgym reproduce hybridserve`).
    `hardware="t4-flexgen"` uses FlexGen's fitted T4 constants. `convert_bins` >= 2 adds the convert action
    (see the MDP card); 0 leaves it out."""

    env_id = "CacheRatio-v0"
    presets = (("model", "models"), ("hardware", "hardware"))

    model: str = "opt-66b"
    hardware: str = "a100-80gb-pcie4"
    host_memory_gb: float | None = 128.0
    gpu_memory_gb: float | None = None
    pcie_gbps: float | None = None
    prompt_len: int = 512
    gen_len: int = 128
    gbs: int = 4
    bins: int = 11
    batch_bins: int = 8
    max_steps: int = 16
    ctog_overlap: float = 1.0
    dtype: str = "fp16"
    convert_bins: int = 0

    def __post_init__(self):
        self._normalise()
        bins, batch_bins, convert_bins, max_steps = self.bins, self.batch_bins, self.convert_bins, self.max_steps
        if not isinstance(bins, int) or bins < 2 or not isinstance(batch_bins, int) or batch_bins < 1:
            raise ValueError(f"bins must be an integer >= 2 and batch_bins >= 1, got {bins!r}, {batch_bins!r}")
        if isinstance(convert_bins, bool) or not isinstance(convert_bins, int) or convert_bins < 0 or convert_bins == 1:
            raise ValueError(f"convert_bins must be 0 (no convert action) or an integer >= 2, got {convert_bins!r}")
        if not isinstance(max_steps, int) or max_steps < 1 or self.prompt_len <= 0 or self.gen_len < max_steps:
            raise ValueError(f"need max_steps >= 1, prompt_len > 0 and gen_len >= max_steps; got "
                             f"max_steps={max_steps}, prompt_len={self.prompt_len}, gen_len={self.gen_len}")
        self.system()

    def system(self) -> tuple:
        """(model, server rates) with the memory and PCIe overrides applied."""
        return (config.load_model(self.model, dtype=self.dtype),
                server.rates(self.hardware, self.ctog_overlap, self.gpu_memory_gb, self.host_memory_gb, self.pcie_gbps))

    def derive(self) -> CacheRatioParams:
        m, rates = self.system()
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        params = CacheRatioParams(model=m, rates=rates, wg=f(0.0), gbs=f(self.gbs), prompt_len=f(self.prompt_len),
                                  gen_len=f(self.gen_len), max_batch=f(1.0), kv_batch=f(1.0), bins=self.bins,
                                  batch_bins=self.batch_bins, max_steps=self.max_steps, convert_bins=self.convert_bins)
        params = _derive_jit(params)
        end = float(params.prompt_len + params.gen_len)
        gpu_cap = float(offload.capacities(rates)[0]) * (1 + 1e-6)
        gpu_over = float(server.gpu_used(params, params.gbs, end, 0.0)) > gpu_cap
        if float(params.kv_batch) < max(1.0, float(params.gbs)) or gpu_over:
            raise ValueError(f"model '{self.model}' does not fit '{self.hardware}' with {self.host_memory_gb} GB of "
                             f"host memory at gbs={self.gbs} (all-KV block {float(params.kv_batch):.0f} sequences, "
                             f"GPU working set {'over' if gpu_over else 'within'} capacity); add memory, lower gbs "
                             f"or the lengths")
        return params
