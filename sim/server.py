"""The offloading server CacheRatio-v0 and SecureDisagg-v0 both model: one GPU streams a placed share of each
layer's weights and the block's cache from host DRAM over PCIe (FlexGen's zig-zag block schedule), with the
weights split GPU/CPU at `wg`, cache and hidden states on the host and attention on the GPU.

Functions take any `params` with the fields both environments' parameters share: `model`, `rates`
(`offload.OffloadRates`), `wg`, `gbs`, `prompt_len`, `gen_len` and `max_steps`.
"""

from __future__ import annotations

import jax.numpy as jnp

from . import config, offload


def system_placement(params, share):
    """The fixed placement: weights split GPU/CPU at wg, cache and hidden states on the CPU, GPU attention;
    `share` is the activation share of the entries being written."""
    return offload.placement(params.wg, 1.0 - params.wg, 0.0, 1.0, 0.0, 1.0, share, 0.0)


def tokens_per_step(params):
    """Decode iterations per environment step (a float, so generation lengths vmap)."""
    return params.gen_len / params.max_steps


def _footprints(params, batch, kv_tokens, act_tokens):
    p = system_placement(params, 0.0)
    return offload.footprints(params.model, p, batch, jnp.minimum(params.gbs, batch), params.prompt_len,
                              kv_tokens, act_tokens)


def host_used(params, batch, kv_tokens, act_tokens):
    """Peak host bytes of a block whose sequences end with these cached tokens per form."""
    return _footprints(params, batch, kv_tokens, act_tokens)[1]


def gpu_used(params, batch, kv_tokens, act_tokens):
    """Peak GPU bytes of the same block (weights' GPU share and the GPU batch's working set)."""
    return _footprints(params, batch, kv_tokens, act_tokens)[0]


def weights_on_gpu(params):
    """wg: the largest weight share the GPU holds beside its working set, the smaller of the all-K,V and the
    all-activation cases (jittable)."""
    m, r = params.model, params.rates
    end = params.prompt_len + params.gen_len
    p = system_placement(params, 0.0)
    return jnp.minimum(offload.max_weights_on_gpu(m, r, p, params.gbs, params.prompt_len, end, 0.0),
                       offload.max_weights_on_gpu(m, r, p, params.gbs, params.prompt_len, 0.0, end))


def rates(hardware, ctog_overlap=1.0, gpu_memory_gb=None, host_memory_gb=None,
          pcie_gbps=None) -> offload.OffloadRates:
    """The server's rates on a hardware preset: FlexGen's fitted constants where the preset has them
    (`flexgen_fitted:`, e.g. `t4-flexgen`), else the roofline; capacities and PCIe bandwidth overridden where
    given (GB, GB/s)."""
    raw, _ = config.load_raw("hardware", hardware)
    if "flexgen_fitted" in raw:
        r = offload.fitted_rates(hardware, ctog_overlap=ctog_overlap)
    else:
        r = offload.roofline_rates(config.load_hardware(hardware), ctog_overlap=ctog_overlap)
    return offload.with_capacity(r, gpu_gb=gpu_memory_gb, cpu_gb=host_memory_gb, pcie_gbps=pcie_gbps)
