"""`memgym presets [models|hardware]`: the shipped presets with their key numbers and sources."""

from __future__ import annotations

import numpy as np
import yaml

from memgym.sim import config, specs

KINDS = ("models", "hardware")


def _source(kind: str, name: str) -> str:
    data = yaml.safe_load(config.preset_path(kind, name).read_text()) or {}
    return " ".join(str(data.get("source", "")).split())


def model_rows() -> list[dict]:
    rows = []
    for name in config.presets("models"):
        m = config.load_model(name)
        rows.append({"name": name, "layers": int(m.n_layers), "d_model": int(m.d_model),
                     "heads": f"{int(m.n_heads)}/{int(m.n_kv_heads)}", "d_ff": int(m.d_ff),
                     "params_b": float(specs.param_count(m)) / 1e9,
                     "weights_gb": float(specs.weight_bytes(m)) / 1e9,
                     "kv_mb_per_token": float(specs.kv_bytes_per_token(m)) / 1e6,
                     "source": _source("models", name)})
    return rows


def hardware_rows() -> list[dict]:
    rows = []
    for name in config.presets("hardware"):
        hw = config.load_hardware(name)
        cap = np.asarray(hw.tier_capacity_bytes, np.float64) / 1e9
        bw = np.asarray(hw.access_bw_bytes_per_s, np.float64)[:, specs.MAIN] / 1e9
        own = np.asarray(hw.tier_bw_bytes_per_s, np.float64) / 1e9
        tiers = {t: {"capacity_gb": float(cap[i]), "bw_gbps": float(bw[i] if bw[i] > 0 else own[i]),
                     "reached_by_main": bool(bw[i] > 0)}
                 for i, t in enumerate(specs.TIERS) if cap[i] > 0}
        peak = float(np.asarray(hw.peak_flops_per_s)[specs.MAIN, specs.MATRIX]) / 1e12
        rows.append({"name": name, "tiers": tiers, "peak_matrix_tflops": peak, "source": _source("hardware", name)})
    return rows


def rows(kind: str) -> list[dict]:
    if kind not in KINDS:
        raise ValueError(f"presets: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return model_rows() if kind == "models" else hardware_rows()


def format_models(rs: list[dict]) -> str:
    head = (f"{'model':16}{'layers':>7}{'d_model':>8}{'heads q/kv':>11}{'d_ff':>7}{'params B':>9}{'weights GB':>11}"
            f"{'KV MB/tok':>10}  source")
    lines = [head]
    for r in rs:
        lines.append(f"{r['name']:16}{r['layers']:>7}{r['d_model']:>8}{r['heads']:>11}{r['d_ff']:>7}"
                     f"{r['params_b']:>9.1f}{r['weights_gb']:>11.1f}{r['kv_mb_per_token']:>10.3f}  {r['source']}")
    lines.append("weights at each preset's own dtype; KV per token summed over layers (K and V)")
    return "\n".join(lines)


def format_hardware(rs: list[dict]) -> str:
    tiers = [", ".join(f"{t} {v['capacity_gb']:g} @ {v['bw_gbps']:g}{'' if v['reached_by_main'] else '*'}"
                       for t, v in r["tiers"].items()) for r in rs]
    w = max(len(t) for t in tiers + ["tiers: capacity GB @ GB/s"])
    lines = [f"{'hardware':24}{'matrix TF/s':>12}  {'tiers: capacity GB @ GB/s':{w}}  source"]
    for r, t in zip(rs, tiers):
        lines.append(f"{r['name']:24}{r['peak_matrix_tflops']:>12.1f}  {t:{w}}  {r['source']}")
    lines.append("GB/s: the bandwidth the main site (the GPU or accelerator) sees; * the tier's own (reached "
                 "through another engine)")
    return "\n".join(lines)


def format_rows(kind: str, rs: list[dict]) -> str:
    return format_models(rs) if kind == "models" else format_hardware(rs)
