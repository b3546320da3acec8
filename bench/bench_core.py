"""Throughput of the simulator core: full-model decode-iteration estimates per second.

The JAX path is `jax.jit(jax.vmap(f))` over stacked hardware specs, batch sizes and context lengths (one
model, everything in HBM, the main site); the baseline is a plain numpy re-implementation of the same
per-kernel roofline, one configuration at a time in a Python loop. Both run here, on the same
configurations, and must agree.

    .venv/bin/python bench/bench_core.py            # ~1 minute on 2 CPU cores
    .venv/bin/python bench/bench_core.py --model gpt3-175b --sizes 1 1024 65536
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from memgym.sim import config, kernels, roofline, specs

PLACEMENT = np.zeros((len(specs.TENSORS), len(specs.TIERS)), np.float32)
PLACEMENT[:, specs.HBM] = 1.0


# ---- the JAX core ---------------------------------------------------------------------------------------


def decode_iteration_s(m, hw, batch, context):
    """Full-model decode iteration: n_layers × one layer's kernel times + the LM head (as `estimate`)."""
    table = kernels.decode_kernels(m, batch, batch * context, kv_reads_per_query_head=hw.kv_reads_per_query_head,
                                   fused_attention=hw.decode_attention_fused)
    layer = roofline.kernel_times(table, hw, specs.MAIN, PLACEMENT)["time_s"].sum()
    head_flops, head_bytes, head_comm = kernels.lm_head(m, batch)
    head = kernels.KernelTable(flops=head_flops[None], bytes=head_bytes[None], comm_bytes=head_comm[None],
                               rows=table.rows, unit=(specs.MATRIX,))
    return m.n_layers * layer + roofline.kernel_times(head, hw, specs.MAIN, PLACEMENT)["time_s"][0]


# ---- the numpy baseline: the same formulas, one configuration at a time ----------------------------------


def numpy_decode_iteration_s(m: dict, hw: dict, batch: float, context: float) -> float:
    d, dh, ff = m["d_model"], m["d_head"], m["d_ff"]
    h, hkv, nf, bias = m["n_heads"], m["n_kv_heads"], m["n_ffn_matrices"], m["has_bias"]
    bw, ba, bkv = m["bytes_per_weight"], m["bytes_per_activation"], m["bytes_per_kv"]
    T, L = batch, batch * context
    qkv = (h + 2 * hkv) * dh
    nup = nf - 1
    reads = 1 + hw["kv_reads_per_query_head"] * (h / hkv - 1)
    fused = hw["decode_attention_fused"]
    scores = (1 - fused) * h * L * ba  # fused attention keeps the scores on chip
    q = T * h * dh * ba
    kv_read = L * reads * hkv * dh * bkv
    M, V, MV = specs.MATRIX, specs.VECTOR, specs.MATVEC
    # (unit, flops, bytes) per kernel, in kernels.KERNELS order
    rows = [
        (V, 7 * T * d, m["norm_params"] * d * bw + 2 * T * d * ba),
        (M, 2 * T * d * qkv, (d * qkv + bias * qkv) * bw + T * (d + qkv) * ba),
        (V, m["uses_rope"] * 3 * T * (h + hkv) * dh, m["uses_rope"] * 2 * T * (h + hkv) * dh * ba),
        (V, 0.0, 2 * T * hkv * dh * bkv),
        (MV, 2 * h * dh * L, kv_read + q + scores),
        (V, 5 * h * L, 2 * scores),
        (MV, 2 * h * dh * L, kv_read + scores + q),
        (M, 2 * T * h * dh * d, (h * dh * d + bias * d) * bw + T * (h * dh + d) * ba),
        (V, 0.0, 0.0),
        (V, T * d + bias * T * (qkv + d), 3 * T * d * ba),
        (V, 7 * T * d, m["norm_params"] * d * bw + 2 * T * d * ba),
        (M, 2 * nup * T * d * ff, (nup * d * ff + bias * nup * ff) * bw + T * (d + nup * ff) * ba),
        (V, m["act_flops_per_elem"] * T * ff, nf * T * ff * ba),
        (M, 2 * T * ff * d, (ff * d + bias * d) * bw + T * (ff + d) * ba),
        (V, 0.0, 0.0),
        (V, T * d + bias * T * (nup * ff + d), 3 * T * d * ba),
        (M, 2 * T * d * m["vocab_size"], d * m["vocab_size"] * bw + T * (d + m["vocab_size"]) * ba),  # LM head
    ]
    peak, eff, over = hw["peak_flops_per_s"][specs.MAIN], hw["eff_compute"], hw["overhead_s"]
    mem_bw = hw["access_bw_bytes_per_s"][specs.HBM, specs.MAIN] * hw["eff_memory"]
    util = T / (T + hw["matrix_fill_rows"])
    lat, overlap = hw["tier_latency_s"][specs.HBM], hw["overlap"]
    launches = [1.0] * len(rows)
    launches[5] = launches[6] = 1 - fused  # fused: softmax and AV run inside the QK^T kernel
    times = []
    for (unit, flops, nbytes), launch in zip(rows, launches):
        c = flops / (peak[unit] * eff[unit] * (util if unit == M else 1.0))
        mem = nbytes / mem_bw
        t = max(c, mem) + (1 - overlap) * min(c, mem)
        t += (lat if nbytes > 0 else 0.0) + (over[unit] * launch if flops > 0 or nbytes > 0 else 0.0)
        times.append(t)
    return float(m["n_layers"] * sum(times[:-1]) + times[-1])


# ---- configurations ----------------------------------------------------------------------------------------


def configurations(n: int, seed: int = 0):
    """n random systems: an A100 or H100 preset with bandwidth and peaks scaled by 0.5-2x, batch 1-256,
    context 128-8192."""
    rng = np.random.default_rng(seed)
    base = specs.stack([config.load_hardware(p) for p in ("a100-80gb", "h100-sxm")])
    pick = rng.integers(0, 2, n)
    hw = jax.tree_util.tree_map(lambda x: np.asarray(x)[pick], base)
    bw_scale = rng.uniform(0.5, 2.0, n).astype(np.float32)
    pk_scale = rng.uniform(0.5, 2.0, n).astype(np.float32)
    hw = specs.replace(hw, access_bw_bytes_per_s=hw.access_bw_bytes_per_s * bw_scale[:, None, None],
                       peak_flops_per_s=hw.peak_flops_per_s * pk_scale[:, None, None])
    batch = rng.integers(1, 257, n).astype(np.float32)
    context = rng.integers(128, 8193, n).astype(np.float32)
    return hw, jnp.asarray(batch), jnp.asarray(context)


def median_time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama2-70b")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 1024, 65536])
    ap.add_argument("--numpy-max", type=int, default=65536,
                    help="loop numpy over at most this many configurations (its rate is per configuration)")
    args = ap.parse_args(argv)

    m = config.load_model(args.model)
    core = jax.jit(jax.vmap(decode_iteration_s, in_axes=(None, 0, 0, 0)))
    m_np = {k: float(v) for k, v in vars(m).items()}
    print(f"memgym core benchmark: {args.model} decode iteration, jax {jax.__version__} on "
          f"{jax.devices()[0].platform} ({platform.processor() or platform.machine()})")
    header = (f"{'configs':>8} {'compile s':>10} {'jax s':>10} {'jax est/s':>12} {'numpy est/s':>12} "
              f"{'speed-up':>9} {'max rel diff':>13}")
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        hw, batch, context = configurations(n)
        t = time.perf_counter()
        out = core(m, hw, batch, context).block_until_ready()
        compile_s = time.perf_counter() - t
        jax_s = median_time(lambda: core(m, hw, batch, context).block_until_ready(), 7 if n < 65536 else 5)

        k = min(n, args.numpy_max)
        hw_np = {f: np.asarray(v, np.float64) for f, v in vars(hw).items()}
        b_np, c_np = np.asarray(batch, np.float64), np.asarray(context, np.float64)

        def loop():
            return [numpy_decode_iteration_s(m_np, {f: v[i] for f, v in hw_np.items()}, b_np[i], c_np[i])
                    for i in range(k)]

        ref = np.asarray(loop())
        np_s = median_time(loop, 3 if k <= 1024 else 1)
        diff = float(np.max(np.abs(np.asarray(out[:k], np.float64) / ref - 1.0)))
        jax_rate, np_rate = n / jax_s, k / np_s
        print(f"{n:>8} {compile_s:>10.2f} {jax_s:>10.2e} {jax_rate:>12.3g} {np_rate:>12.3g} "
              f"{jax_rate / np_rate:>8.3g}x {diff:>13.1e}")
    print("compile s: first call (trace + XLA compile + one run); jax s: median after compile, "
          "block_until_ready; numpy: the same formulas, one configuration per Python call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
