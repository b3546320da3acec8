"""Host-memory offloading (FlexGen, arXiv 2303.06865) with a KV/activation hybrid cache (HybridServe / Capture,
arXiv 2501.01792).

A GPU runs a block of `bls = gbs × nb` sequences (GPU batch size × number of GPU batches) through one layer
at a time (FlexGen's zig-zag block schedule), so each layer's weights cross PCIe once per block per token.
Weights, cache and hidden states are split over three tiers (GPU, CPU = host DRAM, disk) by FlexGen's nine
placement fractions (`Placement`: wg wc cg cc hg hc, disk the remainder). Each cached token of each layer
holds either K and V (`2·h_kv·d_h·b_kv` bytes) or the layer-input activation (`d·b_a` bytes: half of K,V for
MHA, more than K,V for GQA models with h_kv·d_h < d/2) from which K and V are regenerated on the GPU by the
two projections (`2·2·d·h_kv·d_h` FLOPs per token), Q/O/FFN skipped, while the next weights arrive.

Per layer and decode step (released `experimental/cost_model.py` of FMInference/FlexGen @19753bc, generalised
to any model width, GQA and the activation cache):

    ctog  = [wi·(wc+wn) + hidden·(hc+hn) + cache read over PCIe] / ctog_bw
    gtoc  = hidden·(hc+hn) / gtoc_hidden_bw + (new cache entries + extra writes)·(cc+cn) / gtoc_cache_bw
    dtoc  = [cache·cn + hidden·hn] / dtoc_bw + wi·wn / (0.95·dtoc_bw)
    ctod  = [(new entries + extra writes)·cn + hidden·hn] / ctod_gen_bw
    comp  = GEMMs + attention on the GPU + K,V regeneration + attention on the CPU (CPU delegation)
    T_gen = combine(ctog, max(gtoc, dtoc, ctod, comp), ctog_overlap)

`ctog_overlap = 0` is the released model (`T_gen ≥ ctog + max(...)`: its fitted constants absorb the
serialisation of the CPU→GPU copy with the rest), `1` the paper's form (`T_gen = max(all)`), the overlap
HybridServe's pipeline needs (weights of layer j+1 arrive while layer j regenerates K,V). Prefill:
`T_pre = max(combine(ctog, dtoc), combine(gtoc, ctod), comp)`. A run: `T = l·T_pre + l·Σ_steps T_gen`,
throughput = bls·n / T.

Rates come from one of two paths, both an `OffloadRates` pytree:
- `fitted_rates(name)`: FlexGen's fitted constants (the `flexgen_fitted:` block of a hardware YAML, GiB/s and
  TFLOP/s as in cost_model.py), including the empirical CPU attention rate (c1..c3);
- `roofline_rates(hw)`: a `HardwareSpec` preset (A100/H100): PCIe from the host link, GEMMs at peak ×
  efficiency and HBM-bound weight reads per GPU batch, attention bound by FLOPs or KV bytes (HBM for the GPU,
  host DDR for the CPU), disk through its link.

Modelling choices the papers leave open (each with its reason):
- wi = the layer's matrix weights (FlexGen's `8h1² + 4h1h2` bytes for OPT; biases and norms < 0.1 % ignored).
- K,V regeneration runs at the large-GEMM rate (`mm_flops_prefill`, roofline: matrix peak × eff): its rows
  are every cached activation token of the block (tens of thousands), not the decode batch.
- Activation entries are always attended on the GPU (they must be expanded there); with CPU delegation only
  the KV part of the CPU/disk cache is attended on the CPU, and the two partial attentions merge (cheap).
- New cache entries are written back GPU→CPU (`gtoc`, at the fitted cache rate); FlexGen's released model
  omits this term, which sits inside the max and does not change its predictions here.
- Capacities are checked against `mem_alpha × capacity` (FlexGen's 0.8) with FlexGen's peak-memory formulas,
  for both systems alike; the GPU working set also holds one GPU batch's activations in flight and their
  expanded K,V (as FlexGen's holds its streamed KV).
- GEMMs on the roofline path also read the GPU-resident weights once per GPU batch from HBM (nb·wi / HBM
  bandwidth): what makes a larger GPU batch pay off there (FlexGen's fitted path folds this into mm_flops_gen).

Policy search, host side (scipy's HiGHS): `flexgen_lp` solves FlexGen's LP for one block; its coefficients are
extracted exactly from the JAX model above (every time and peak-memory term is affine in the six free
fractions for a fixed block), so the LP and the simulator cannot disagree. `flexgen_search` is the released
batch search. `hybridserve_plan` (jittable) is HybridServe's: balance share + the largest block that fits.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from . import config
from .roofline import combine, safe_div
from .specs import CPU, DISK, HBM, HOST_DDR, MAIN, MATRIX, MATVEC, HardwareSpec, ModelSpec, \
    matrix_params_per_layer, pytree_dataclass

GIB = 2.0**30
TERA = 1e12
FITTED_KEYS = ("ctog_gib_s", "gtoc_cache_gib_s", "gtoc_hidden_gib_s", "dtoc_gib_s", "ctod_cache_prefill_gib_s",
               "ctod_hidden_prefill_gib_s", "ctod_gen_gib_s", "mm_flops_prefill_tflops", "mm_flops_gen_tflops",
               "bmm_flops_prefill_tflops", "bmm_flops_gen_tflops", "cpu_flops_tflops")
FITTED_DEFAULTS = {"cpu_c1": 0.0168, "cpu_c2": 0.0328, "cpu_c3": 0.0621}  # cost_model.py CostModelConfig
HUGE_BW = 1e30  # "no bound" for the fitted path's memory-side terms


@pytree_dataclass
class OffloadRates:
    """Achieved rates (bytes/s, FLOP/s), capacities (bytes) and the overlap structure; all float scalars."""

    ctog_bytes_per_s: jax.Array
    gtoc_cache_bytes_per_s: jax.Array
    gtoc_hidden_bytes_per_s: jax.Array
    dtoc_bytes_per_s: jax.Array
    ctod_cache_prefill_bytes_per_s: jax.Array
    ctod_hidden_prefill_bytes_per_s: jax.Array
    ctod_gen_bytes_per_s: jax.Array
    mm_flops_prefill_per_s: jax.Array
    mm_flops_gen_per_s: jax.Array
    bmm_flops_prefill_per_s: jax.Array
    bmm_flops_gen_per_s: jax.Array
    recompute_flops_per_s: jax.Array
    cpu_flops_per_s: jax.Array
    cpu_c1: jax.Array  # FlexGen's empirical CPU-rate correction for small gbs and narrow models (0 = none)
    cpu_c2: jax.Array
    cpu_c3: jax.Array
    gpu_mem_bw_bytes_per_s: jax.Array  # weights and KV read on the GPU (roofline path; HUGE_BW when fitted)
    cpu_mem_bw_bytes_per_s: jax.Array  # KV read by CPU attention
    gpu_capacity_bytes: jax.Array
    cpu_capacity_bytes: jax.Array
    disk_capacity_bytes: jax.Array
    mem_alpha: jax.Array  # usable share of each capacity (FlexGen: 0.8)
    ctog_overlap: jax.Array  # 0: T_gen = ctog + max(rest) (released model); 1: max of all (paper form)


@pytree_dataclass
class Placement:
    """FlexGen's placement (disk = 1 − gpu − cpu for each of weights, cache, hidden), the activation share of
    the cache and CPU delegation of attention (1.0 = `--cpu-cache-compute`). Float scalars."""

    wg: jax.Array
    wc: jax.Array
    cg: jax.Array
    cc: jax.Array
    hg: jax.Array
    hc: jax.Array
    act_share: jax.Array
    cpu_attention: jax.Array


def placement(wg=0.0, wc=1.0, cg=0.0, cc=1.0, hg=0.0, hc=1.0, act_share=0.0, cpu_attention=0.0) -> Placement:
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return Placement(f(wg), f(wc), f(cg), f(cc), f(hg), f(hc), f(act_share), f(cpu_attention))


def from_percent(percent, act_share=0.0, cpu_attention=1.0) -> Placement:
    """FlexGen's `--percent wg wc cg cc hg hc` (integers 0..100)."""
    wg, wc, cg, cc, hg, hc = (p / 100.0 for p in percent)
    return placement(wg, wc, cg, cc, hg, hc, act_share, cpu_attention)


# ---- rates: the two paths ---------------------------------------------------------------------------------


def load_fitted(name) -> dict:
    """The `flexgen_fitted:` block of a hardware preset, validated (GiB/s and TFLOP/s as in cost_model.py)."""
    d, path = config.load_raw("hardware", name)
    block = d.get("flexgen_fitted")
    if not isinstance(block, dict):
        raise config.ConfigError(path, "flexgen_fitted", "missing: this hardware has no FlexGen fitted constants "
                                                         "(use roofline_rates, or the t4-flexgen preset)")
    out = {k: config._get(block, k, path, "flexgen_fitted.") for k in FITTED_KEYS}
    for k, v in FITTED_DEFAULTS.items():
        out[k] = config._get(block, k, path, "flexgen_fitted.", allow_zero=True, default=v)
    return out


def fitted_rates(name="t4-flexgen", mem_alpha=0.8, ctog_overlap=0.0) -> OffloadRates:
    """FlexGen's fitted constants; capacities from the preset's tiers (hbm = GPU, host_ddr = CPU, disk)."""
    c = load_fitted(name)
    hw = config.load_hardware(name)
    g, t = GIB, TERA
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return OffloadRates(
        ctog_bytes_per_s=f(c["ctog_gib_s"] * g), gtoc_cache_bytes_per_s=f(c["gtoc_cache_gib_s"] * g),
        gtoc_hidden_bytes_per_s=f(c["gtoc_hidden_gib_s"] * g), dtoc_bytes_per_s=f(c["dtoc_gib_s"] * g),
        ctod_cache_prefill_bytes_per_s=f(c["ctod_cache_prefill_gib_s"] * g),
        ctod_hidden_prefill_bytes_per_s=f(c["ctod_hidden_prefill_gib_s"] * g),
        ctod_gen_bytes_per_s=f(c["ctod_gen_gib_s"] * g),
        mm_flops_prefill_per_s=f(c["mm_flops_prefill_tflops"] * t), mm_flops_gen_per_s=f(c["mm_flops_gen_tflops"] * t),
        bmm_flops_prefill_per_s=f(c["bmm_flops_prefill_tflops"] * t),
        bmm_flops_gen_per_s=f(c["bmm_flops_gen_tflops"] * t),
        recompute_flops_per_s=f(c["mm_flops_prefill_tflops"] * t), cpu_flops_per_s=f(c["cpu_flops_tflops"] * t),
        cpu_c1=f(c["cpu_c1"]), cpu_c2=f(c["cpu_c2"]), cpu_c3=f(c["cpu_c3"]),
        gpu_mem_bw_bytes_per_s=f(HUGE_BW), cpu_mem_bw_bytes_per_s=f(HUGE_BW),
        gpu_capacity_bytes=hw.tier_capacity_bytes[HBM], cpu_capacity_bytes=hw.tier_capacity_bytes[HOST_DDR],
        disk_capacity_bytes=hw.tier_capacity_bytes[DISK], mem_alpha=f(mem_alpha), ctog_overlap=f(ctog_overlap))


def roofline_rates(hw: HardwareSpec, mem_alpha=0.8, ctog_overlap=1.0, cpu_attention_from=None) -> OffloadRates:
    """Rates from a roofline hardware spec. Choices: PCIe (host_ddr → main access bandwidth, a measured
    achieved figure) serves both directions; disk reads and writes run at the disk's access bandwidth from the
    CPU; GEMMs at matrix peak × eff; decode attention at matvec peak × eff, bounded by the KV bytes over HBM
    (× eff_memory); CPU attention at the CPU's matvec peak × eff, bounded by host DDR bandwidth, or, with
    `cpu_attention_from=<preset>`, at that preset's FlexGen-fitted CPU rate and corrections (FlexGen's CPU
    attention kernel is measured far below the host's roofline: 12.3 GFLOP/s on its T4 host). Jittable
    except for the preset lookup."""
    pcie = hw.access_bw_bytes_per_s[HOST_DDR, MAIN]
    disk = hw.access_bw_bytes_per_s[DISK, CPU]
    mm = hw.peak_flops_per_s[MAIN, MATRIX] * hw.eff_compute[MATRIX]
    bmm = hw.peak_flops_per_s[MAIN, MATVEC] * hw.eff_compute[MATVEC]
    z = jnp.zeros((), jnp.float32)
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    cpu_flops = hw.peak_flops_per_s[CPU, MATVEC] * hw.eff_compute[MATVEC]
    c1 = c2 = c3 = z
    cpu_bw = hw.tier_bw_bytes_per_s[HOST_DDR]
    if cpu_attention_from is not None:
        c = load_fitted(cpu_attention_from)
        cpu_flops, cpu_bw = f(c["cpu_flops_tflops"] * TERA), f(HUGE_BW)
        c1, c2, c3 = f(c["cpu_c1"]), f(c["cpu_c2"]), f(c["cpu_c3"])
    return OffloadRates(
        ctog_bytes_per_s=pcie, gtoc_cache_bytes_per_s=pcie, gtoc_hidden_bytes_per_s=pcie, dtoc_bytes_per_s=disk,
        ctod_cache_prefill_bytes_per_s=disk, ctod_hidden_prefill_bytes_per_s=disk, ctod_gen_bytes_per_s=disk,
        mm_flops_prefill_per_s=mm, mm_flops_gen_per_s=mm, bmm_flops_prefill_per_s=mm, bmm_flops_gen_per_s=bmm,
        recompute_flops_per_s=mm, cpu_flops_per_s=cpu_flops, cpu_c1=c1, cpu_c2=c2, cpu_c3=c3,
        gpu_mem_bw_bytes_per_s=hw.tier_bw_bytes_per_s[HBM] * hw.eff_memory, cpu_mem_bw_bytes_per_s=cpu_bw,
        gpu_capacity_bytes=hw.tier_capacity_bytes[HBM], cpu_capacity_bytes=hw.tier_capacity_bytes[HOST_DDR],
        disk_capacity_bytes=hw.tier_capacity_bytes[DISK], mem_alpha=f(mem_alpha), ctog_overlap=f(ctog_overlap))


def with_capacity(rates: OffloadRates, gpu_gb=None, cpu_gb=None, disk_gb=None, pcie_gbps=None) -> OffloadRates:
    """Rates with capacities (GB = 1e9) or the PCIe bandwidth (both directions) replaced."""
    ch = {}
    if gpu_gb is not None:
        ch["gpu_capacity_bytes"] = gpu_gb * 1e9
    if cpu_gb is not None:
        ch["cpu_capacity_bytes"] = cpu_gb * 1e9
    if disk_gb is not None:
        ch["disk_capacity_bytes"] = disk_gb * 1e9
    if pcie_gbps is not None:
        for k in ("ctog_bytes_per_s", "gtoc_cache_bytes_per_s", "gtoc_hidden_bytes_per_s"):
            ch[k] = pcie_gbps * 1e9
    return dataclasses.replace(rates, **{k: jnp.asarray(v, jnp.float32) for k, v in ch.items()})


# ---- per-token, per-layer sizes -------------------------------------------------------------------------


def kv_bytes_per_token_layer(m: ModelSpec):
    """K and V of one token in one layer: 2·h_kv·d_h·b_kv."""
    return 2.0 * m.n_kv_heads * m.d_head * m.bytes_per_kv


def act_bytes_per_token_layer(m: ModelSpec):
    """The layer-input activation of one token: d·b_a (half of KV for MHA)."""
    return m.d_model * m.bytes_per_activation


def recompute_flops_per_token_layer(m: ModelSpec):
    """K and V regenerated from a cached activation: two projections, 2·2·d·(h_kv·d_h) FLOPs."""
    return 4.0 * m.d_model * m.n_kv_heads * m.d_head


def weight_bytes_per_layer(m: ModelSpec):
    """wi: the layer's matrix weights (FlexGen's 8h1² + 4h1h2 for OPT at fp16)."""
    return matrix_params_per_layer(m) * m.bytes_per_weight


def hidden_bytes_per_token(m: ModelSpec):
    return m.d_model * m.bytes_per_activation


def cpu_flops_real(r: OffloadRates, gbs, m: ModelSpec):
    """FlexGen's empirical CPU attention rate (lower for small GPU batches and narrow models)."""
    lg = jnp.maximum(0.0, jnp.log2(64.0 / jnp.maximum(gbs, 1e-6)))
    lh = jnp.maximum(0.0, jnp.log2(4096.0 / m.d_model))
    return r.cpu_flops_per_s * jnp.maximum(0.1, 1.0 + r.cpu_c1 * lg * lh - r.cpu_c2 * lg - r.cpu_c3 * lh)


def _disk(p: Placement):
    return 1.0 - p.wg - p.wc, 1.0 - p.cg - p.cc, 1.0 - p.hg - p.hc


# ---- times ----------------------------------------------------------------------------------------------


def decode_layer(m: ModelSpec, r: OffloadRates, p: Placement, bls, gbs, ctx_kv, ctx_act, new_act_share=None,
                 extra_write_bytes=0.0):
    """One decode step of one layer for the whole block. ctx_kv, ctx_act: cached tokens per sequence held as
    K,V and as activations (attended this step); new_act_share: the form of the entry written this step
    (default p.act_share); extra_write_bytes: cache bytes of the block written back besides the new entries
    (e.g. activation entries converted to K,V), placed like them (gtoc for the CPU share, ctod for the disk
    share). Returns a dict of seconds and bytes."""
    new_a = p.act_share if new_act_share is None else new_act_share
    wn, cn, hn = _disk(p)
    kv_b, act_b, hid = kv_bytes_per_token_layer(m), act_bytes_per_token_layer(m), hidden_bytes_per_token(m)
    wi = weight_bytes_per_layer(m)
    off = p.cc + cn  # cache share that lives off the GPU
    kv_tok, act_tok = bls * ctx_kv, bls * ctx_act  # cached tokens of the block, per form
    kv_cpu_att = kv_tok * off * p.cpu_attention  # attended on the CPU where it lives
    kv_gpu_att = kv_tok - kv_cpu_att
    gpu_att = kv_gpu_att + act_tok
    # bytes over PCIe (host → GPU): weights not on the GPU, hidden states, the off-GPU cache the GPU needs
    w_h2d = wi * (p.wc + wn)
    hid_h2d = hid * bls * (p.hc + hn)
    cache_h2d = off * (kv_tok * (1.0 - p.cpu_attention) * kv_b + act_tok * act_b)
    entry_b = (1.0 - new_a) * kv_b + new_a * act_b
    new_entries = bls * entry_b + extra_write_bytes
    ctog = (w_h2d + hid_h2d + cache_h2d) / r.ctog_bytes_per_s
    gtoc = hid_h2d / r.gtoc_hidden_bytes_per_s + new_entries * off / r.gtoc_cache_bytes_per_s
    disk_cache = cn * (kv_tok * kv_b + act_tok * act_b)
    dtoc = safe_div(disk_cache + hid * bls * hn, r.dtoc_bytes_per_s) + safe_div(wi * wn, 0.95 * r.dtoc_bytes_per_s)
    ctod = safe_div(new_entries * cn + hid * bls * hn, r.ctod_gen_bytes_per_s)
    nb = bls / gbs
    gemm = jnp.maximum(bls * 2.0 * matrix_params_per_layer(m) / r.mm_flops_gen_per_s,
                       nb * wi / r.gpu_mem_bw_bytes_per_s)
    att_flops = 4.0 * m.n_heads * m.d_head  # per (query, key) pair: QKᵀ and AV
    attn_gpu = jnp.maximum(gpu_att * att_flops / r.bmm_flops_gen_per_s, gpu_att * kv_b / r.gpu_mem_bw_bytes_per_s)
    attn_cpu = jnp.maximum(kv_cpu_att * att_flops / cpu_flops_real(r, gbs, m),
                           kv_cpu_att * kv_b / r.cpu_mem_bw_bytes_per_s)
    recompute = act_tok * recompute_flops_per_token_layer(m) / r.recompute_flops_per_s
    comp = gemm + attn_gpu + recompute + attn_cpu
    rest = jnp.maximum(jnp.maximum(gtoc, dtoc), jnp.maximum(ctod, comp))
    return {
        "layer_s": combine(ctog, rest, r.ctog_overlap),
        "ctog_s": ctog, "gtoc_s": gtoc, "dtoc_s": dtoc, "ctod_s": ctod, "comp_s": comp,
        "gemm_s": gemm, "attn_gpu_s": attn_gpu, "attn_cpu_s": attn_cpu, "recompute_s": recompute,
        "gpu_s": gemm + attn_gpu + recompute,
        "h2d_bytes": w_h2d + hid_h2d + cache_h2d, "weights_h2d_bytes": w_h2d, "hidden_h2d_bytes": hid_h2d,
        "cache_h2d_bytes": cache_h2d, "d2h_bytes": hid_h2d + new_entries * off,
        "disk_read_bytes": disk_cache + hid * bls * hn + wi * wn,
    }


def prefill_layer(m: ModelSpec, r: OffloadRates, p: Placement, bls, gbs, prompt_len, act_share=None):
    """The prompt's pass through one layer (released model's structure; entries written in form `act_share`)."""
    a = p.act_share if act_share is None else act_share
    s = prompt_len
    wn, cn, hn = _disk(p)
    kv_b, act_b, hid = kv_bytes_per_token_layer(m), act_bytes_per_token_layer(m), hidden_bytes_per_token(m)
    wi = weight_bytes_per_layer(m)
    entries = bls * (s + 1.0) * ((1.0 - a) * kv_b + a * act_b)
    ctog = (wi * (p.wc + wn) + hid * s * bls * (p.hc + hn)) / r.ctog_bytes_per_s
    gtoc = entries * (p.cc + cn) / r.gtoc_cache_bytes_per_s + hid * s * bls * (p.hc + hn) / r.gtoc_hidden_bytes_per_s
    dtoc = safe_div(wi * wn + hid * s * bls * hn, r.dtoc_bytes_per_s)
    ctod = safe_div(entries * cn, r.ctod_cache_prefill_bytes_per_s) + safe_div(hid * s * bls * hn,
                                                                              r.ctod_hidden_prefill_bytes_per_s)
    comp = (bls * s * 2.0 * matrix_params_per_layer(m) / r.mm_flops_prefill_per_s
            + 4.0 * bls * s * s * m.n_heads * m.d_head / r.bmm_flops_prefill_per_s)
    layer = jnp.maximum(jnp.maximum(combine(ctog, dtoc, r.ctog_overlap), combine(gtoc, ctod, r.ctog_overlap)), comp)
    return {"layer_s": layer, "ctog_s": ctog, "gtoc_s": gtoc, "dtoc_s": dtoc, "ctod_s": ctod, "comp_s": comp,
            "h2d_bytes": wi * (p.wc + wn) + hid * s * bls * (p.hc + hn),
            "d2h_bytes": entries * (p.cc + cn) + hid * s * bls * (p.hc + hn)}


def run_time(m: ModelSpec, r: OffloadRates, p: Placement, bls, gbs, prompt_len, gen_len):
    """FlexGen's whole-run estimate: T = l·T_pre + l·(n−1)·T_gen at the mean context s + n/2 (the cache is a
    static share `p.act_share` of activations). Returns (tokens_per_s, prefill_s, decode_s)."""
    ctx = prompt_len + gen_len / 2.0
    a = p.act_share
    t_pre = m.n_layers * prefill_layer(m, r, p, bls, gbs, prompt_len)["layer_s"]
    t_gen = m.n_layers * (gen_len - 1.0) * decode_layer(m, r, p, bls, gbs, (1 - a) * ctx, a * ctx)["layer_s"]
    return bls * gen_len / (t_pre + t_gen), t_pre, t_gen


# ---- memory --------------------------------------------------------------------------------------------


def peak_terms(m: ModelSpec, p: Placement, bls, gbs, prompt_len, kv_tokens, act_tokens):
    """FlexGen's peak-memory terms f[5] (bytes): GPU decode, GPU prefill, CPU decode, CPU prefill, disk,
    generalised to the activation cache. kv_tokens, act_tokens: per-sequence cached tokens at the run's end,
    per form. Affine in the placement fractions for a fixed block (the LP relies on it)."""
    s = prompt_len
    wn, cn, hn = _disk(p)
    kv_b, act_b, hid = kv_bytes_per_token_layer(m), act_bytes_per_token_layer(m), hidden_bytes_per_token(m)
    ba = m.bytes_per_activation
    d, dff, nh, l = m.d_model, m.d_ff, m.n_heads, m.n_layers
    wi = weight_bytes_per_layer(m)
    ctx = kv_tokens + act_tokens
    seq_cache = l * (kv_tokens * kv_b + act_tokens * act_b)  # one sequence's cache, all layers
    act_frac = act_tokens / jnp.maximum(ctx, 1e-9)
    off = p.cc + cn
    gpu_att = p.cg + off * (1.0 - (1.0 - act_frac) * p.cpu_attention)  # cache share attended on the GPU
    # decode peak: home (what lives there) + working set (double-buffered weights, one GPU batch's cache
    # expanded to K,V, its activations in flight, intermediates)
    gpu_home_g = wi * l * p.wg + hid * bls * p.hg + bls * seq_cache * p.cg
    inter_g = gbs * (4 * d * ba + (d * ba + ctx * kv_b / 2 + nh * ctx * ba) * gpu_att
                     + (ctx * kv_b / 2 + d * ba) * gpu_att + 2 * d * ba + dff * ba + d * ba)
    gpu_w_g = (2 * wi * (1 - p.wg) + hid * gbs * (1 - p.hg) + gbs * ctx * kv_b * gpu_att
               + gbs * act_tokens * act_b * off + inter_g)
    # prefill peak (s² attention scores of one GPU batch)
    gpu_home_p = wi * l * p.wg + hid * s * bls * p.hg + bls * seq_cache * p.cg
    inter_p = gbs * s * (4 * d * ba + d * ba + nh * s * ba + d * ba + 2 * d * ba + dff * ba + d * ba)
    gpu_w_p = 2 * wi * (1 - p.wg) + hid * s * gbs * (1 - p.hg) + inter_p
    cpu_home_g = wi * l * p.wc + hid * bls * p.hc + bls * seq_cache * p.cc
    cpu_w_g = wi * wn + 2 * hid * gbs * hn + 2 * ctx * kv_b * gbs * cn + nh * ctx * gbs * ba + hid * gbs
    cpu_home_p = wi * l * p.wc + hid * s * bls * p.hc + bls * seq_cache * p.cc * s / jnp.maximum(ctx, 1e-9)
    cpu_w_p = wi * (1 - p.wg) + hid * s * gbs * (1 - p.hg)
    disk = wi * l * wn + hid * s * bls * hn + bls * seq_cache * cn
    return jnp.stack([gpu_home_g + gpu_w_g, gpu_home_p + gpu_w_p, cpu_home_g + cpu_w_g, cpu_home_p + cpu_w_p,
                      disk])


def footprints(m: ModelSpec, p: Placement, bls, gbs, prompt_len, kv_tokens, act_tokens):
    """Peak bytes on (GPU, CPU, disk): the larger of the prefill and decode peaks."""
    t = peak_terms(m, p, bls, gbs, prompt_len, kv_tokens, act_tokens)
    return jnp.stack([jnp.maximum(t[0], t[1]), jnp.maximum(t[2], t[3]), t[4]])


def capacities(r: OffloadRates):
    """Usable bytes on (GPU, CPU, disk): mem_alpha × capacity."""
    return r.mem_alpha * jnp.stack([r.gpu_capacity_bytes, r.cpu_capacity_bytes, r.disk_capacity_bytes])


def fits(m, r, p, bls, gbs, prompt_len, kv_tokens, act_tokens):
    return jnp.all(footprints(m, p, bls, gbs, prompt_len, kv_tokens, act_tokens) <= capacities(r) * (1 + 1e-6))


# ---- HybridServe's balance ------------------------------------------------------------------------------


def balance_share(m: ModelSpec, r: OffloadRates, p: Placement, bls, gbs, ctx):
    """The activation share a* that equalises PCIe time and GPU time of a decode step at context `ctx`
    (both are affine in a; cache off the GPU, GPU attention), clipped to [0, 1]. HybridServe's balance."""
    t0 = decode_layer(m, r, dataclasses.replace(p, act_share=jnp.float32(0.0)), bls, gbs, ctx, 0.0 * ctx, 0.0)
    t1 = decode_layer(m, r, dataclasses.replace(p, act_share=jnp.float32(1.0)), bls, gbs, 0.0 * ctx, ctx, 1.0)
    io0, io1 = t0["ctog_s"], t1["ctog_s"]
    g0, g1 = t0["comp_s"], t1["comp_s"]
    # io(a) = io0 + a (io1 − io0), gpu(a) = g0 + a (g1 − g0); solve io(a) = gpu(a)
    den = (io0 - io1) + (g1 - g0)
    a = _signed_div(io0 - g0, den)
    return jnp.clip(jnp.where(den > 0, a, jnp.where(io0 > g0, 1.0, 0.0)), 0.0, 1.0)


# ---- FlexGen's policy search (host side: scipy's HiGHS) ----------------------------------------------------

_X = ("wg", "wc", "cg", "cc", "hg", "hc")


def _lp_terms(m, r, x, bls, gbs, prompt_len, gen_len, act_share, cpu_attention):
    """The LP's affine terms at placement x f[6]: prefill (ctog, dtoc, gtoc, ctod, comp), decode (ctog, gtoc,
    dtoc, ctod, comp) per layer in seconds, and the five peak-memory terms in bytes."""
    p = Placement(*[x[i] for i in range(6)], jnp.float32(act_share), jnp.float32(cpu_attention))
    ctx = prompt_len + gen_len / 2.0  # FlexGen's mean decode context
    pre = prefill_layer(m, r, p, bls, gbs, prompt_len)
    gen = decode_layer(m, r, p, bls, gbs, (1 - act_share) * ctx, act_share * ctx)
    end = prompt_len + gen_len
    mem = peak_terms(m, p, bls, gbs, prompt_len, (1 - act_share) * end, act_share * end)
    times = jnp.stack([pre["ctog_s"], pre["dtoc_s"], pre["gtoc_s"], pre["ctod_s"], pre["comp_s"],
                       gen["ctog_s"], gen["gtoc_s"], gen["dtoc_s"], gen["ctod_s"], gen["comp_s"]])
    return times, mem


@jax.jit
def _lp_coefficients(m, r, bls, gbs, prompt_len, gen_len, act_share, cpu_attention):
    """Exact affine coefficients of every LP term: values at x = 0 and at the six unit vectors."""
    pts = jnp.concatenate([jnp.zeros((1, 6)), jnp.eye(6)]).astype(jnp.float32)
    t, mem = jax.vmap(lambda x: _lp_terms(m, r, x, bls, gbs, prompt_len, gen_len, act_share, cpu_attention))(pts)
    return t[0], t[1:] - t[0], mem[0], mem[1:] - mem[0]


def _lp_rates(r: OffloadRates) -> OffloadRates:
    """Rates safe for coefficient extraction: a missing disk (capacity 0) gets a dummy bandwidth, its
    fractions being forced to 0 by the LP's bounds."""
    no_disk = float(r.disk_capacity_bytes) <= 0
    if not no_disk:
        return r
    one = jnp.float32(1e9)
    return dataclasses.replace(r, dtoc_bytes_per_s=one, ctod_cache_prefill_bytes_per_s=one,
                               ctod_hidden_prefill_bytes_per_s=one, ctod_gen_bytes_per_s=one)


@dataclasses.dataclass(frozen=True)
class LPSolution:
    """A solved placement: the fractions, the block, and the LP's predicted throughput (host floats)."""

    ok: bool
    gbs: int
    nb: int
    wg: float = 0.0
    wc: float = 0.0
    cg: float = 0.0
    cc: float = 0.0
    hg: float = 0.0
    hc: float = 0.0
    act_share: float = 0.0
    cpu_attention: float = 0.0
    tokens_per_s: float = 0.0
    total_s: float = float("inf")

    def placement(self) -> Placement:
        return placement(self.wg, self.wc, self.cg, self.cc, self.hg, self.hc, self.act_share, self.cpu_attention)

    def percent(self):
        return [round(100 * v, 1) for v in (self.wg, self.wc, self.cg, self.cc, self.hg, self.hc)]


def lp_matrices(m, r, bls, gbs, prompt_len, gen_len, act_share=0.0, cpu_attention=1.0, fixed=None):
    """FlexGen's LP as (c, A_ub, b_ub, A_eq, b_eq, bounds) over z = (wg, wc, cg, cc, hg, hc, T_pre, T_gen):
    minimise l·T_pre + l·(n−1)·T_gen (i.e. T/bls for this block) subject to the overlap constraints of the
    released model (or the max form when ctog_overlap = 1), the peak-memory terms ≤ mem_alpha × capacity,
    each triple summing to 1 (disk the remainder) and hg + hc = 1 (FlexGen: hidden states never on disk).
    `fixed`: FlexGen's --percent (six numbers 0..100) pins the fractions."""
    rr = _lp_rates(r)
    t0, tc, m0, mc = (np.asarray(v, np.float64) for v in _lp_coefficients(
        m, rr, jnp.float32(bls), jnp.float32(gbs), jnp.float32(prompt_len), jnp.float32(gen_len),
        jnp.float32(act_share), jnp.float32(cpu_attention)))
    l, n = float(m.n_layers), float(gen_len)
    ov = float(r.ctog_overlap) >= 0.5
    A, b = [], []

    def row(coef_x, const, t_col):
        z = np.zeros(8)
        z[:6] = coef_x
        z[t_col] = -1.0
        A.append(z)
        b.append(-const)

    P_CTOG, P_DTOC, P_GTOC, P_CTOD, P_COMP, G_CTOG, G_GTOC, G_DTOC, G_CTOD, G_COMP = range(10)
    pairs = [(P_CTOG, P_DTOC), (P_GTOC, P_CTOD)]
    for i, j in pairs:
        if ov:
            row(tc[:, i], t0[i], 6)
            row(tc[:, j], t0[j], 6)
        else:
            row(tc[:, i] + tc[:, j], t0[i] + t0[j], 6)
    row(tc[:, P_COMP], t0[P_COMP], 6)
    for k in (G_GTOC, G_DTOC, G_CTOD, G_COMP):
        if ov:
            row(tc[:, k], t0[k], 7)
        else:
            row(tc[:, G_CTOG] + tc[:, k], t0[G_CTOG] + t0[k], 7)
    if ov:
        row(tc[:, G_CTOG], t0[G_CTOG], 7)
    caps = np.asarray(capacities(r), np.float64)
    for k, cap in zip(range(5), (caps[0], caps[0], caps[1], caps[1], caps[2])):
        z = np.zeros(8)
        z[:6] = mc[:, k] / 1e9  # GB rows keep the matrix well scaled
        A.append(z)
        b.append((cap - m0[k]) / 1e9)
    for i in (0, 2):  # wg + wc <= 1, cg + cc <= 1 (disk gets the rest)
        z = np.zeros(8)
        z[i] = z[i + 1] = 1.0
        A.append(z)
        b.append(1.0)
    A_eq, b_eq = [np.array([0, 0, 0, 0, 1, 1, 0, 0], float)], [1.0]
    bounds = [(0.0, 1.0)] * 6 + [(0.0, None), (0.0, None)]
    if fixed is not None:
        bounds[:6] = [(v / 100.0, v / 100.0) for v in fixed]
    if float(r.disk_capacity_bytes) <= 0:  # no disk: every triple lives on GPU and CPU
        A_eq += [np.array([1, 1, 0, 0, 0, 0, 0, 0], float), np.array([0, 0, 1, 1, 0, 0, 0, 0], float)]
        b_eq += [1.0, 1.0]
    c = np.array([0, 0, 0, 0, 0, 0, l, l * (n - 1.0)])
    return c, np.array(A), np.array(b), np.array(A_eq), np.array(b_eq), bounds


def flexgen_lp(m, r, bls, gbs, prompt_len, gen_len, act_share=0.0, cpu_attention=1.0, fixed=None) -> LPSolution:
    """Solve FlexGen's LP for one block (bls = gbs × nb) with scipy's HiGHS."""
    from scipy.optimize import linprog  # 0.4 s to import, and only this solve needs it

    c, A, b, Aeq, beq, bounds = lp_matrices(m, r, bls, gbs, prompt_len, gen_len, act_share, cpu_attention, fixed)
    res = linprog(c, A_ub=A, b_ub=b, A_eq=Aeq, b_eq=beq, bounds=bounds, method="highs")
    if res.status != 0:
        return LPSolution(False, int(gbs), int(round(bls / gbs)), act_share=act_share, cpu_attention=cpu_attention)
    x = res.x
    total = float(res.fun)
    return LPSolution(True, int(gbs), int(round(bls / gbs)), *[float(v) for v in x[:6]], act_share=float(act_share),
                      cpu_attention=float(cpu_attention), tokens_per_s=bls * gen_len / total, total_s=total)


def _gbs_candidates(limit):
    g, out = 1, []
    while g <= limit:
        out.append(g)
        g = g + 1 if g < 4 else g * 2
    return out


def flexgen_search(m, r, prompt_len, gen_len, act_share=0.0, cpu_attention=(0.0, 1.0), max_gbs=1024,
                   max_nb=4096, fixed=None) -> LPSolution:
    """FlexGen's batch search (released cost_model.py `solve`): gbs = 1, 2, 3, 4, then doubling; for each, the
    feasible upper bound of nb by doubling and bisection, then nb = 1.. until throughput drops; the best
    LP solution wins. `cpu_attention` lists the delegation settings searched (`--cpu-cache-compute` on and
    off)."""
    best = LPSolution(False, 0, 0)
    for cpu_att in (cpu_attention if isinstance(cpu_attention, (tuple, list)) else (cpu_attention,)):
        solve = lambda gbs, nb: flexgen_lp(m, r, gbs * nb, gbs, prompt_len, gen_len, act_share, cpu_att,  # noqa
                                           fixed)
        for gbs in _gbs_candidates(max_gbs):
            nb = 1
            while nb <= max_nb and solve(gbs, nb).ok:
                nb *= 2
            lo, hi = max(nb // 2, 1), min(nb, max_nb + 1)
            if not solve(gbs, lo).ok:
                break  # not even one GPU batch of this size fits: larger ones will not either
            while lo + 1 < hi:  # largest feasible nb in [lo, hi)
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if solve(gbs, mid).ok else (lo, mid)
            prev = 0.0
            for nb in range(1, lo + 1):
                sol = solve(gbs, nb)
                if sol.tokens_per_s < prev:
                    break
                prev = sol.tokens_per_s
                if sol.tokens_per_s > best.tokens_per_s:
                    best = sol
    return best


# ---- HybridServe's plan: balance share + the largest block that fits ----------------------------------------


def _affine_root(f, lo, hi):
    """x where the affine f(x) = 0, from two evaluations (f(lo), f(hi))."""
    f0, f1 = f(lo), f(hi)
    return lo + _signed_div(-f0, f1 - f0) * (hi - lo)


def _signed_div(num, den):
    """num / den for signed values; ±inf (num's sign) where den is 0, 0 where both are."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), jnp.sign(num) * jnp.inf)


def max_weights_on_gpu(m, r, p: Placement, gbs, prompt_len, kv_tokens, act_tokens):
    """The largest wg (rest of the weights on the CPU) whose GPU peaks (prefill and decode) fit, clipped to
    [0, 1]. Each peak is affine in wg and independent of bls while cache and hidden states live off the GPU."""
    cap = capacities(r)[0]

    def slack(wg, i):
        q = dataclasses.replace(p, wg=wg, wc=1.0 - wg)
        return peak_terms(m, q, gbs, gbs, prompt_len, kv_tokens, act_tokens)[i] - cap
    zero, one = jnp.float32(0.0), jnp.float32(1.0)
    roots = [_affine_root(lambda w, i=i: slack(w, i), zero, one) for i in (0, 1)]
    return jnp.clip(jnp.minimum(*roots), 0.0, 1.0)


def max_block(m, r, p: Placement, gbs, prompt_len, kv_tokens, act_tokens):
    """The largest block size bls (float, ≥ 0) whose CPU peaks (prefill, decode) and disk peak fit; each is
    affine in bls for a fixed GPU batch size."""
    caps = capacities(r)
    gbs = jnp.asarray(gbs, jnp.float32)

    def slack(bls, i, cap):
        return peak_terms(m, p, bls, gbs, prompt_len, kv_tokens, act_tokens)[i] - cap
    b_cpu = jnp.minimum(*[_affine_root(lambda b, i=i: slack(b, i, caps[1]), gbs, 2.0 * gbs) for i in (2, 3)])
    disk_used = (1.0 - p.cg - p.cc) > 0
    b_disk = jnp.where(disk_used, _affine_root(lambda b: slack(b, 4, caps[2]), gbs, 2.0 * gbs), jnp.inf)
    return jnp.maximum(jnp.minimum(b_cpu, b_disk), 0.0)


def hybridserve_plan(m, r, gbs, prompt_len, gen_len, rounds=3, share=None):
    """HybridServe's static plan for GPU batch size `gbs`: cache and hidden states in host memory, attention
    on the GPU, the largest weight share that fits the GPU, the activation share from the balance (at the
    mean decode context), and the largest block that then fits host memory, iterated `rounds` times (the
    balance drifts with the block only through the weights' share of PCIe time). `share` fixes the activation
    share instead (0 = the all-KV baseline with the same rule). Jittable; returns (placement, bls float)."""
    ctx = prompt_len + gen_len / 2.0
    end = prompt_len + gen_len
    a = jnp.float32(0.5) if share is None else jnp.asarray(share, jnp.float32)
    p = placement(0.0, 1.0, 0.0, 1.0, 0.0, 1.0, a, 0.0)
    bls = jnp.asarray(gbs, jnp.float32)
    for _ in range(rounds):
        wg = max_weights_on_gpu(m, r, p, gbs, prompt_len, (1 - a) * end, a * end)
        p = dataclasses.replace(p, wg=wg, wc=1.0 - wg, act_share=a)
        bls = max_block(m, r, p, gbs, prompt_len, (1 - a) * end, a * end)
        if share is None:
            a = balance_share(m, r, p, jnp.maximum(bls, gbs), gbs, ctx)
    wg = max_weights_on_gpu(m, r, p, gbs, prompt_len, (1 - a) * end, a * end)
    p = dataclasses.replace(p, wg=wg, wc=1.0 - wg, act_share=a)
    return p, max_block(m, r, p, gbs, prompt_len, (1 - a) * end, a * end)
