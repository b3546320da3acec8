"""`estimate`: the per-kernel cost of one iteration of a model on a hardware preset (host-side convenience
over the jittable core in `kernels` and `roofline`)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import config, validate
from .kernels import KERNELS, decode_kernels, lm_head, prefill_kernels
from .roofline import bound_of, kernel_times
from .specs import (MAIN, TENSORS, TIERS, HardwareSpec, ModelSpec, ideal as ideal_hw, kv_bytes_per_token, replace,
                    weight_bytes)


def spill_placement(hw: HardwareSpec, need_bytes: float, site: int = MAIN) -> np.ndarray:
    """Fill the tiers `site` reaches fastest-first up to their capacity (GenZ-style offload): the same
    fractions for every tensor class, f[C, M]."""
    bw = np.asarray(hw.access_bw_bytes_per_s)[:, site]
    cap = np.asarray(hw.tier_capacity_bytes, np.float64)
    frac = np.zeros(len(TIERS))
    left = float(need_bytes)
    for m in np.argsort(-bw):
        if bw[m] <= 0 or left <= 0:
            continue
        take = min(left, cap[m])
        frac[m] = take / need_bytes
        left -= take
    if left > 1e-6 * need_bytes:  # nothing reachable holds the rest: keep it in the fastest tier (flagged)
        frac[int(np.argmax(bw))] += left / need_bytes
    return np.tile(frac, (len(TENSORS), 1)).astype(np.float32)


def kernel_table(model: ModelSpec, hw: HardwareSpec, batch, context, phase: str, tp: int = 1,
                 fused_norm: float = 0.0):
    if phase == "decode":
        return decode_kernels(model, batch, batch * context, tp=tp,
                              kv_reads_per_query_head=hw.kv_reads_per_query_head,
                              fused_attention=hw.decode_attention_fused, fused_norm=fused_norm)
    if phase == "prefill":
        return prefill_kernels(model, batch, context, tp=tp, fused_norm=fused_norm)
    raise ValueError(f"phase must be 'decode' or 'prefill', got {phase!r}")


@functools.partial(jax.jit, static_argnames=("phase",))
def _numbers(m: ModelSpec, hw: HardwareSpec, batch, context, tp, fused_norm, placement, phase: str) -> dict:
    """The arrays behind one estimate, as one compiled program per phase (`estimate` calls it with scalars,
    as floats, so a call never retraces) and one transfer back: the layer's kernel table and times, and the LM head's."""
    table = kernel_table(m, hw, batch, context, phase, tp, fused_norm=fused_norm)
    t = kernel_times(table, hw, MAIN, placement)
    head_flops, head_bytes, head_comm = lm_head(m, batch, tp=tp)
    head_tab = type(table)(flops=head_flops[None], bytes=head_bytes[None], comm_bytes=jnp.asarray(head_comm)[None],
                           rows=table.rows, unit=(0,))
    return {"table": {"flops": table.flops, "bytes": table.bytes, "comm_bytes": table.comm_bytes},
            "times": {k: t[k] for k in ("compute_s", "memory_s", "comm_s", "overhead_s", "time_s")},
            "head": (head_flops, head_bytes, head_comm),
            "head_s": kernel_times(head_tab, hw, MAIN, placement)["time_s"][0]}


def estimate(model: str | ModelSpec, hardware: str | HardwareSpec, batch: int, context: int,
             phase: str = "decode", ideal: bool = False, tp: int = 1, dtype: str | None = None,
             decode_attention: str | None = None, launch: str = "eager") -> dict:
    """Cost of one iteration: `batch` sequences at `context` tokens (decode: one new token each over a
    context of `context`; prefill: a prompt of `context` tokens). `decode_attention` ('fused' | 'unfused')
    overrides the preset's choice. `launch` is the launch profile: 'eager' (the default: every kernel
    launched from PyTorch, the preset's `calibration.overhead_us`) or 'graph' (a serving engine: CUDA-graph
    replay, `calibration.overhead_us_graph`, with each norm fused into the residual add before it; prefill
    gets the same table, where overheads are a negligible share); a HardwareSpec argument keeps its own
    overheads and `launch` only fuses the norms. Returns a JSON-ready dict with `iteration_time_s`, per-token
    figures and a `kernels` list (one decoder layer, times in seconds). The LM head runs vocabulary-parallel under `tp`."""
    batch = validate.number(batch, validate.SCENARIO["batch"], "<arguments>", "batch")
    context = validate.number(context, validate.TOKENS, "<arguments>", "context")
    tp = validate.number(tp, validate.COUNT, "<arguments>", "tp")
    fused_norm = config.fused_norm(launch)
    m_name, h_name = (model if isinstance(model, str) else "<spec>"), (hardware if isinstance(hardware, str) else "<spec>")
    m = config.load_model(model, dtype=dtype) if isinstance(model, str) else model
    hw = config.load_hardware(hardware, launch=launch) if isinstance(hardware, str) else hardware
    heads, kv_heads = int(m.n_heads), int(m.n_kv_heads)
    if heads % tp or (kv_heads % tp and tp % kv_heads):
        valid = [d for d in range(1, heads + 1) if heads % d == 0 and (kv_heads % d == 0 or d % kv_heads == 0)]
        raise validate.ConfigError("<arguments>", "tp", f"must divide the model's {heads} attention heads (and "
                                   f"divide or be a multiple of its {kv_heads} KV heads); valid: {valid}; got {tp}")
    if ideal:
        hw = ideal_hw(hw)
    if decode_attention is not None:
        if decode_attention not in config.DECODE_ATTENTION:
            raise ValueError(f"decode_attention must be 'fused' or 'unfused', got {decode_attention!r}")
        hw = replace(hw, decode_attention_fused=config.DECODE_ATTENTION[decode_attention])
    if isinstance(hardware, str):
        config.check_fits(m, hw, m_name, h_name, tp=tp, batch=batch, context=context)
    need = float(weight_bytes(m)) / tp + float(kv_bytes_per_token(m)) * batch * context / tp
    placement = spill_placement(hw, need)
    n = jax.device_get(_numbers(m, hw, float(batch), float(context), float(tp), float(fused_norm), placement, phase))
    table, t, (head_flops, head_bytes, head_comm), head_s = n["table"], n["times"], n["head"], float(n["head_s"])
    tokens = batch * (1 if phase == "decode" else context)
    n_layers = float(m.n_layers)
    layer_s = float(t["time_s"].sum())
    iteration_s = n_layers * layer_s + head_s
    bounds = bound_of(t)
    kernels = []
    flops, nbytes, comm = table["flops"], table["bytes"], table["comm_bytes"]
    for k, name in enumerate(KERNELS):
        row = {"name": name, "flops": float(flops[k])}
        for c, cls in enumerate(TENSORS):
            row[f"bytes_{cls}"] = float(nbytes[k, c])
        row.update(comm_bytes=float(comm[k]), compute_s=float(t["compute_s"][k]),
                   memory_s=float(t["memory_s"][k]), time_s=float(t["time_s"][k]), bound=str(bounds[k]))
        kernels.append(row)
    return {
        "model": m_name, "hardware": h_name, "phase": phase, "batch": int(batch), "context": int(context),
        "tp": int(tp), "ideal": bool(ideal), "decode_attention": "fused" if float(hw.decode_attention_fused) else "unfused",
        "launch": launch,
        "placement": {TIERS[i]: float(placement[0, i]) for i in range(len(TIERS)) if placement[0, i] > 0},
        "iteration_time_s": iteration_s,
        "layer_time_s": layer_s,
        "lm_head_s": head_s,
        "lm_head_flops": float(head_flops), "lm_head_comm_bytes": float(head_comm),
        "per_token_latency_s": iteration_s if phase == "decode" else iteration_s / context,
        "tokens_per_s": tokens / iteration_s,
        "flops_per_iteration": n_layers * float(flops.sum()) + float(head_flops),
        "bytes_per_iteration": n_layers * float(nbytes.sum()) + float(head_bytes.sum()),
        "kernels": kernels,
        "warning": spill_warning(m_name, batch, context, tp, need, hw, placement[0]),
    }


def spill_warning(model_name: str, batch, context, tp, need_bytes: float, hw: HardwareSpec, frac) -> str | None:
    """One line when weights and KV cache do not fit the fastest tier and part of them is placed (spilled)
    in slower ones, naming the tiers and shares; None when everything fits."""
    bw = np.asarray(hw.access_bw_bytes_per_s)[:, MAIN]
    fastest = int(np.argmax(bw))
    frac = np.asarray(frac, np.float64)
    spilled = [(TIERS[i], float(frac[i])) for i in np.argsort(-bw) if i != fastest and frac[i] > 0]
    if not spilled:
        return None
    cap = float(np.asarray(hw.tier_capacity_bytes)[fastest])
    where = " and ".join(f"{f:.0%} ({f * need_bytes / 1e9:.0f} GB) to {t}" for t, f in spilled)
    return (f"warning: {model_name} at batch {batch}, context {context}, tp {tp} needs {need_bytes / 1e9:.0f} GB of "
            f"weights and KV cache per device but {TIERS[fastest]} holds {cap / 1e9:.0f} GB: {where} spills, "
            f"and every kernel reads that share at the slower tier's bandwidth")


def format_table(result: dict) -> str:
    """The estimate as a plain-text table (what `memgym estimate` prints)."""
    head = (f"{result['model']} on {result['hardware']}: {result['phase']}, batch {result['batch']}, "
            f"context {result['context']}, tp {result['tp']}{' (ideal roofline)' if result['ideal'] else ''}, "
            f"{result['decode_attention']} decode attention, {result.get('launch', 'eager')} launch; "
            "tensors in " + ", ".join(f"{t} {f:.0%}" for t, f in result["placement"].items()))
    cols = ["kernel", "GFLOP", "W MB", "A MB", "KV MB", "compute us", "memory us", "time us", "bound"]
    lines = ([result["warning"]] if result.get("warning") else []) + [head, "one decoder layer:", " ".join(f"{c:>{14 if i == 0 else 12}}" for i, c in enumerate(cols))]
    for r in result["kernels"]:
        lines.append(" ".join([f"{r['name']:>14}", f"{r['flops'] / 1e9:12.3f}", f"{r['bytes_weights'] / 1e6:12.2f}",
                               f"{r['bytes_activations'] / 1e6:12.2f}", f"{r['bytes_kv'] / 1e6:12.2f}",
                               f"{r['compute_s'] * 1e6:12.1f}", f"{r['memory_s'] * 1e6:12.1f}",
                               f"{r['time_s'] * 1e6:12.1f}", f"{r['bound']:>12}"]))
    lines += [
        f"layer time          {result['layer_time_s'] * 1e3:10.3f} ms",
        f"LM head             {result['lm_head_s'] * 1e3:10.3f} ms",
        f"iteration time      {result['iteration_time_s'] * 1e3:10.3f} ms",
        f"per-token latency   {result['per_token_latency_s'] * 1e3:10.3f} ms",
        f"throughput          {result['tokens_per_s']:10.1f} tokens/s",
    ]
    return "\n".join(lines)
