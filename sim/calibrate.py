"""Fit the GEMM efficiency knobs of the GPU presets to measured kernel times (host-side, not jitted).

Data (`sim/data/`, shipped with the package; `sim/data/README.md` gives each file's source and licence):

- Vidur's Llama-2-70B GEMM medians on A100-80GB and H100 (ms): QKV (`attn_pre_proj`), O (`attn_post_proj`),
  gate+up fused (`mlp_up_proj`), down (`mlp_down_proj`) for 1…4096 tokens at tensor parallelism 1, 2, 4, 8.
- LLMCompass's per-kernel times of one GPT-3 175B layer on 4×A100 (TP 4), used as a validation check.
- Published end-to-end per-token decode latencies (`published_decode_latency.csv`: gpt-fast and the PyTorch
  blog's eager baseline, LMDeploy TurboMind), the check of the two launch profiles (`published_decode_check`).

Each GEMM is costed with the project's own kernel table (`kernels.decode_kernels` with T tokens: FLOPs
2·T·K·N, bytes = weights + activations in and out, per device under TP) and timed as `roofline.kernel_times`
times a matrix kernel on the main site with everything in HBM:

    t = max(F / (ηc·P), B / (ηm·BW)) + t0 + HBM latency

Three numbers per device (ηc, ηm, t0) are fitted with `scipy.optimize.least_squares` on relative errors at
TP1 and TP8; TP2 and TP4 are held out. The uncalibrated baseline is max(F/P, B/BW) at the spec peaks.

    python -m memgym.sim.calibrate      # prints the fit and the errors; copy the numbers into the YAMLs
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from . import config
from .estimate import estimate
from .kernels import KERNELS, decode_kernels
from .roofline import kernel_times
from .specs import HBM, MAIN, MATRIX, TENSORS, TIERS

log = logging.getLogger(__name__)

VIDUR_CSV = "vidur_llama2_70b_gemm_medians.csv"
LLMCOMPASS_CSV = "llmcompass_gpt3_layer_a100_tp4.csv"
PUBLISHED_DECODE_CSV = "published_decode_latency.csv"
VIDUR_VECTOR_COLUMNS = ("input_layernorm_ms", "post_attention_layernorm_ms", "attn_rope_ms", "mlp_act_ms", "add_ms")
DEVICE_PRESETS = {"a100": "a100-80gb", "h100": "h100-sxm"}
# Vidur column -> the project's kernel name
GEMM_COLUMNS = {"attn_pre_proj_ms": "qkv_proj", "attn_post_proj_ms": "o_proj", "mlp_up_proj_ms": "ffn_up",
                "mlp_down_proj_ms": "ffn_down"}
FIT_TP = (1, 8)
HELD_OUT_TP = (2, 4)


DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"


def data_path(name: str) -> pathlib.Path:
    """Path of a measured-data file shipped in the package (`memgym/sim/data/`)."""
    return DATA_DIR / name


def _require(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (the measured data ships in memgym/sim/data/; "
                                f"reinstall the package)")
    return path


def load_gemm_points(path=None) -> pd.DataFrame:
    """One row per (device, tp, tokens, gemm): the measured median time (s) and the kernel table's FLOPs
    and bytes per device."""
    raw = pd.read_csv(_require(pathlib.Path(path) if path else data_path(VIDUR_CSV)))
    keys = ["device", "num_tensor_parallel_workers", "num_tokens"]
    med = raw.groupby(keys, as_index=False)[list(GEMM_COLUMNS)].median()
    model = config.load_model("llama2-70b")
    dims = raw[["n_head", "n_kv_head", "n_embd", "n_expanded_embd"]].drop_duplicates()
    expected = (float(model.n_heads), float(model.n_kv_heads), float(model.d_model), float(model.d_ff))
    if len(dims) != 1 or tuple(float(x) for x in dims.iloc[0]) != expected:
        raise ValueError(f"{path or VIDUR_CSV}: expected Llama-2-70B dimensions {expected}, got {dims.values}")

    def table(tokens, tp):
        t = decode_kernels(model, tokens, 0.0, tp=tp)
        return t.flops, t.bytes.sum(axis=1)

    flops, nbytes = jax.vmap(table)(jnp.asarray(med["num_tokens"], jnp.float32),
                                    jnp.asarray(med["num_tensor_parallel_workers"], jnp.float32))
    flops, nbytes = np.asarray(flops, np.float64), np.asarray(nbytes, np.float64)
    rows = []
    for col, kernel in GEMM_COLUMNS.items():
        k = KERNELS.index(kernel)
        rows.append(pd.DataFrame({
            "device": med["device"], "tp": med["num_tensor_parallel_workers"], "tokens": med["num_tokens"],
            "gemm": kernel, "measured_s": med[col] * 1e-3, "flops": flops[:, k], "bytes": nbytes[:, k]}))
    return pd.concat(rows, ignore_index=True)


def _peaks(preset: str):
    hw = config.load_hardware(preset)
    return (float(hw.peak_flops_per_s[MAIN, MATRIX]), float(hw.access_bw_bytes_per_s[HBM, MAIN]),
            float(hw.tier_latency_s[HBM]))


def predict(flops, nbytes, peak, bw, eta_c=1.0, eta_m=1.0, t0=0.0, latency=0.0):
    """max(F/(ηc·P), B/(ηm·BW)) + t0 + latency, in seconds (numpy)."""
    return np.maximum(flops / (eta_c * peak), nbytes / (eta_m * bw)) + t0 + latency


def mape(pred, measured) -> float:
    """Mean absolute percentage error, in percent."""
    return float(np.mean(np.abs(pred / measured - 1.0)) * 100.0)


def fit_device(points: pd.DataFrame, peak: float, bw: float, latency: float = 0.0) -> dict:
    """Least-squares fit of (ηc, ηm, t0) to relative errors. Several starts: the max() makes the loss
    piecewise smooth, so one start can stall on a kink."""
    f, b, y = (points[c].to_numpy(np.float64) for c in ("flops", "bytes", "measured_s"))

    def resid(p):
        return predict(f, b, peak, bw, p[0], p[1], p[2] * 1e-6, latency) / y - 1.0

    best = None
    for start in ([0.7, 0.8, 10.0], [0.5, 0.6, 5.0], [0.9, 0.95, 15.0]):
        r = least_squares(resid, start, bounds=([0.05, 0.05, 0.0], [1.0, 1.0, 200.0]), x_scale=[0.1, 0.1, 5.0])
        if best is None or r.cost < best.cost:
            best = r
    eta_c, eta_m, t0_us = best.x
    return {"eta_c": float(eta_c), "eta_m": float(eta_m), "t0_us": float(t0_us)}


def calibrate(points: pd.DataFrame | None = None) -> list[dict]:
    """Fit each device on TP1/TP8 and report MAPE (percent): held out (TP2/TP4), in sample, uncalibrated
    (spec peaks, max(tc, tm), no t0) over all points. `points` defaults to `load_gemm_points()`."""
    points = load_gemm_points() if points is None else points
    out = []
    for device, preset in DEVICE_PRESETS.items():
        pts = points[points["device"] == device]
        fit_pts = pts[pts["tp"].isin(FIT_TP)]
        held = pts[pts["tp"].isin(HELD_OUT_TP)]
        peak, bw, latency = _peaks(preset)
        p = fit_device(fit_pts, peak, bw, latency)

        def err(df, **kw):
            return mape(predict(df["flops"].to_numpy(), df["bytes"].to_numpy(), peak, bw, **kw),
                        df["measured_s"].to_numpy())

        cal = dict(eta_c=p["eta_c"], eta_m=p["eta_m"], t0=p["t0_us"] * 1e-6, latency=latency)
        row = dict(device=device, preset=preset, **p, held_out_mape=err(held, **cal),
                   in_sample_mape=err(fit_pts, **cal), uncalibrated_mape=err(pts),
                   uncalibrated_held_out_mape=err(held), n_fit=len(fit_pts), n_held_out=len(held))
        log.info("%s: %s", device, row)
        out.append(row)
    return out


def preset_gemm_times(points: pd.DataFrame, preset) -> np.ndarray:
    """The GEMM times the hardware preset gives as stored (`roofline.kernel_times` on the main site, all
    tensors in HBM), one per row of `points`."""
    hw = config.load_hardware(preset)
    placement = np.zeros((len(TENSORS), len(TIERS)), np.float32)
    placement[:, HBM] = 1.0
    model = config.load_model("llama2-70b")

    @jax.jit
    def times(tokens, tp):
        return kernel_times(decode_kernels(model, tokens, 0.0, tp=tp), hw, MAIN, placement)["time_s"]

    t = np.asarray(jax.vmap(times)(jnp.asarray(points["tokens"], jnp.float32),
                                   jnp.asarray(points["tp"], jnp.float32)), np.float64)
    idx = np.array([KERNELS.index(g) for g in points["gemm"]])
    return t[np.arange(len(points)), idx]


def preset_mape(preset: str, tps=HELD_OUT_TP, points: pd.DataFrame | None = None) -> float:
    """MAPE (percent) of the preset as stored on Vidur's GEMMs of its device at the given TP degrees."""
    device = {v: k for k, v in DEVICE_PRESETS.items()}[preset]
    points = load_gemm_points() if points is None else points
    pts = points[(points["device"] == device) & points["tp"].isin(tps)]
    return mape(preset_gemm_times(pts, preset), pts["measured_s"].to_numpy())


# ---- LLMCompass GPT-3 layer (4×A100, TP 4) ------------------------------------------------------------


def llmcompass_layer(path=None) -> dict:
    """Measured vs estimated time of one GPT-3 175B layer on 4×A100-80GB at TP 4 (fp16): decode (batch 8,
    KV length 3072) and prefill (batch 8, 2048 tokens). The estimate costs a one-layer model: LLMCompass
    ran a single layer, and the whole model (87 GB of weights per device at TP 4) would not fit in HBM, so
    `estimate` would spill a third of it to host memory. LLMCompass measured PyTorch's unfused bmm/softmax
    kernels, so decode attention is costed unfused here (the preset's serving default is fused)."""
    measured = pd.read_csv(_require(pathlib.Path(path) if path else data_path(LLMCOMPASS_CSV)))
    one_layer = dataclasses.replace(config.load_model("gpt3-175b"), n_layers=jnp.asarray(1.0, jnp.float32))
    out = {}
    for phase, context, col in (("decode", 3072, "decode_s"), ("prefill", 2048, "prefill_s")):
        est = estimate(one_layer, "a100-80gb", batch=8, context=context, phase=phase, tp=4,
                       decode_attention="unfused")
        meas = float(measured[col].sum())
        out[phase] = {"measured_s": meas, "estimated_s": est["layer_time_s"],
                      "error_pct": (est["layer_time_s"] / meas - 1.0) * 100.0, "placement": est["placement"]}
    return out


# ---- launch profiles against published per-token decode latencies ------------------------------------


def graph_vector_overhead_us(device: str = "a100", max_tokens: int = 64, path=None) -> float:
    """The graph profile's vector overhead: the median of Vidur's kernel-only vector-op times (both norms,
    RoPE, activation, residual add; medians per TP degree and token count) at decode sizes (<= `max_tokens`
    tokens), TP 1-8, in microseconds. Under CUDA-graph replay the host's launch is hidden and a small kernel
    costs its kernel-only time."""
    raw = pd.read_csv(_require(pathlib.Path(path) if path else data_path(VIDUR_CSV)))
    small = raw[(raw["device"] == device) & (raw["num_tokens"] <= max_tokens)]
    med = small.groupby(["num_tensor_parallel_workers", "num_tokens"])[list(VIDUR_VECTOR_COLUMNS)].median()
    return float(np.median(med.to_numpy()) * 1e3)


def published_decode_check(path=None, hardware: str = "a100-80gb") -> pd.DataFrame:
    """Every published per-token decode latency (`published_decode_latency.csv`) beside the estimate of
    both launch profiles at the row's model, GPUs (tensor parallel), batch and mean decode context (prompt +
    half the generated tokens): columns eager_ms, graph_ms, eager_error_pct, graph_error_pct and
    profile_error_pct (the error of the profile that matches the row's system, its `launch` column)."""
    rows = pd.read_csv(_require(pathlib.Path(path) if path else data_path(PUBLISHED_DECODE_CSV)))
    out = rows.copy()
    for launch in config.LAUNCH:
        ms = [estimate(r.model, hardware, int(r.batch), int(r.context), tp=int(r.gpus), launch=launch)
              ["per_token_latency_s"] * 1e3 for r in rows.itertuples()]
        out[f"{launch}_ms"] = ms
        out[f"{launch}_error_pct"] = (out[f"{launch}_ms"] / out["published_ms_per_token"] - 1.0) * 100.0
    out["profile_error_pct"] = np.where(out["launch"] == "eager", out["eager_error_pct"], out["graph_error_pct"])
    return out


def format_published_check(df: pd.DataFrame) -> str:
    """The check as a Markdown table: source | system | model/GPUs/batch/context | published | eager | graph."""
    lines = ["| source | system (profile) | model, GPUs x A100, batch, context | published ms/token | eager ms "
             "(error) | graph ms (error) |", "|---|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.source} | {r.system.split(' (')[0]} ({r.launch}) | {r.model}, {r.gpus}, {r.batch}, "
                     f"{r.context} | {r.published_ms_per_token:.2f} | {r.eager_ms:.2f} ({r.eager_error_pct:+.0f} %) | "
                     f"{r.graph_ms:.2f} ({r.graph_error_pct:+.0f} %) |")
    return "\n".join(lines)


def main() -> int:
    """Print the fit (the numbers to copy into configs/hardware/{a100-80gb,h100-sxm}.yaml) and the errors."""
    points = load_gemm_points()
    rows = calibrate(points)
    print("Vidur Llama-2-70B GEMMs: fit on TP1+TP8, held out TP2+TP4; MAPE in percent")
    print(f"{'device':>7} {'eta_c':>7} {'eta_m':>7} {'t0 us':>7} {'held-out':>9} {'in-sample':>10} "
          f"{'uncal.':>7} {'preset':>8}")
    for r in rows:
        stored = preset_mape(r["preset"], points=points)
        print(f"{r['device']:>7} {r['eta_c']:7.3f} {r['eta_m']:7.3f} {r['t0_us']:7.2f} {r['held_out_mape']:9.2f} "
              f"{r['in_sample_mape']:10.2f} {r['uncalibrated_mape']:7.2f} {stored:8.2f}")
    print("(uncal. = spec peaks, max(tc, tm), no t0, all TPs; preset = the YAML as stored, held-out TPs)")
    print("\nLLMCompass GPT-3 175B layer, 4xA100 TP4 (a100-80gb preset):")
    for phase, r in llmcompass_layer().items():
        print(f"{phase:>8}: measured {r['measured_s'] * 1e3:8.3f} ms, estimated {r['estimated_s'] * 1e3:8.3f} ms,"
              f" error {r['error_pct']:+6.1f} %")
    print("\nGraph-profile vector overhead (median of Vidur's kernel-only vector ops, <= 64 tokens): "
          + ", ".join(f"{d} {graph_vector_overhead_us(d):.1f} us" for d in DEVICE_PRESETS))
    print("\nPublished per-token decode latency vs the two launch profiles (a100-80gb):")
    print(format_published_check(published_decode_check()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
