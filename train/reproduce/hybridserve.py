"""`memgym reproduce hybridserve`: FlexGen's T4 benchmark (arXiv 2303.06865) and HybridServe's speedup over
FlexGen (arXiv 2501.01792), each system with its own best policy on the same machine (CacheRatio-v0's server
model), with one row per published figure."""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp

from memgym.sim import config, offload

from . import format_rows

# FlexGen (arXiv 2303.06865) on a T4: measured tokens/s (paper Table 2 / its bench_suite.py) and the released
# cost model's own predictions for the same policies, re-run
FLEXGEN_T4 = {
    "opt-30b": {"percent": (20, 80, 0, 100, 0, 100), "gbs": 48, "nb": 3, "paper": 7.32, "flexgen_model": 7.14},
    "opt-175b": {"percent": (0, 50, 0, 0, 0, 100), "gbs": 32, "nb": 8, "paper": 0.69, "flexgen_model": 0.15},
}
HYBRIDSERVE_PAPER_SPEEDUP = 2.19  # over FlexGen (arXiv 2501.01792 abstract)
# The reference scenario (the paper's GPU, host memory and lengths are unverified):
# one A100-80GB over PCIe 4 (25 GB/s measured H2D), 128 GB host memory (Capture's README `--host-mem-size-GB
# 128`), OPT-66B at fp16 (the largest model Capture's README lists; its 131 GB of weights do not fit the GPU,
# the regime both systems target), prompt 512 (FlexGen's benchmark), 128 generated tokens (Capture's README
# `--gen-len 128`). No disk (host budget only). FlexGen's CPU attention runs at its fitted rate (t4-flexgen:
# 12.3 GFLOP/s with the c1-c3 corrections; the roofline CPU, DDR-bound at 205 GB/s, is reported as a
# sensitivity), and FlexGen keeps the overlap structure of its released, measured fit (T_gen = ctog +
# max(rest)); HybridServe's pipeline overlaps the transfer with the GPU's work (T_gen = max(all)) - the
# mechanism the paper describes ("recomputation ... while model parameters are transferred").
HYBRIDSERVE_SCENARIO = {"hardware": "a100-80gb-pcie4", "gpu_memory_gb": 80.0, "host_memory_gb": 128.0,
                        "model": "opt-66b", "prompt_len": 512, "gen_len": 128, "disk": False,
                        "flexgen_cpu_attention_rate": "t4-flexgen fitted", "flexgen_overlap": "released (ctog + max)",
                        "hybridserve_overlap": "pipelined (max)"}
# Which FlexGen the paper measured. The headline `speedup` keeps FlexGen's released, measured overlap (the
# weight copy serialised with the rest of the step) and gives HybridServe its pipeline; `speedup_same_overlap`
# gives FlexGen the same pipeline. The evidence points to the first: HybridServe ran FlexGen's released system,
# and that system's measured behaviour is what the fit describes.
HYBRIDSERVE_OVERLAP_ASSUMPTION = (
    "FlexGen as released and measured: T_gen = ctog + max(gtoc, dtoc, ctod, comp), HybridServe pipelined: "
    "T = max(all). Evidence: (1) FlexGen's own cost model (experimental/cost_model.py) has the overlapped form "
    "Tgen = max(ctog, ...) written and commented out, replaced by ctog + max(...), with constants fitted by "
    "gradient descent on measured runs; that fit reproduces the measured OPT-30B T4 throughput here (7.14 vs "
    "7.32 tok/s); (2) FlexGen's code path: load_weight issues the next layer's copy before compute, but "
    "general_copy stages an unpinned host source through pin_memory() on the Python thread that also runs the "
    "CPU attention, so the host side of the copy does not overlap (OPT-175B runs with --pin-weight 0); "
    "(3) HybridServe's text names FlexGen (the released system) as its baseline and motivates itself by the GPU "
    "idling while weights load over PCIe. Under this reading the paper's 2.19x compares with `speedup`; "
    "`speedup_same_overlap` is the gain over an idealised FlexGen that pipelines as HybridServe does.")
HS_GBS = (1, 2, 3, 4, 8, 16, 32, 64)


def flexgen_t4(search: bool = True) -> dict:
    """FlexGen's T4 benchmark (16 GB GPU, 208 GB DRAM, 1.5 TB SSD, prompt 512, 32 generated tokens) with its
    fitted constants and published policies (CPU attention on); `search` adds the LP's own OPT-30B policy."""
    rates = offload.fitted_rates("t4-flexgen", ctog_overlap=0.0)
    out = {}
    for model, pol in FLEXGEN_T4.items():
        m = config.load_model(model)
        p = offload.from_percent(pol["percent"], cpu_attention=1.0)
        bls = pol["gbs"] * pol["nb"]
        tps, pre, dec = offload.run_time(m, rates, p, bls, pol["gbs"], 512.0, 32.0)
        d = offload.decode_layer(m, rates, p, bls, pol["gbs"], 528.0, 0.0)
        foot = offload.footprints(m, p, bls, pol["gbs"], 512.0, 544.0, 0.0)
        caps = offload.capacities(rates)
        out[model] = {
            "tokens_per_s": float(tps), "paper": pol["paper"], "flexgen_model": pol["flexgen_model"],
            "error_vs_paper": float(tps) / pol["paper"] - 1.0, "prefill_s": float(pre), "decode_s": float(dec),
            "policy": {"percent": list(pol["percent"]), "gbs": pol["gbs"], "num_gpu_batches": pol["nb"],
                       "cpu_cache_compute": True},
            "decode_layer_s": {k: float(d[k]) for k in ("ctog_s", "gtoc_s", "dtoc_s", "ctod_s", "comp_s", "layer_s")},
            "peak_gb": {"gpu": float(foot[0]) / 1e9, "cpu": float(foot[1]) / 1e9, "disk": float(foot[2]) / 1e9},
            "usable_gb": {"gpu": float(caps[0]) / 1e9, "cpu": float(caps[1]) / 1e9, "disk": float(caps[2]) / 1e9},
        }
    out["opt-175b"]["note"] = (
        "KV on disk: the decode step is disk-bound (dtoc {:.1f} s of a {:.1f} s layer step at the fitted 0.473 GiB/s); "
        "the released constants were fitted on CPU-offload runs and underestimate disk-cache runs (FlexGen's own "
        "model predicts 0.15 for a measured 0.69)".format(out["opt-175b"]["decode_layer_s"]["dtoc_s"],
                                                           out["opt-175b"]["decode_layer_s"]["layer_s"]))
    if search:
        m = config.load_model("opt-30b")
        sol = offload.flexgen_search(m, rates, 512.0, 32.0, cpu_attention=(1.0,))
        out["opt-30b"]["lp_search"] = {"tokens_per_s": sol.tokens_per_s, "gbs": sol.gbs, "num_gpu_batches": sol.nb,
                                       "percent": sol.percent(), "flexgen_rerun": "32 x 5, 12/78/10 weights, 7.09"}
    return out


def _hybridserve_best(m, rates, prompt_len, gen_len, gbs_list=HS_GBS, block=None):
    """HybridServe's plan for each GPU batch size (balance + largest block, or a fixed `block`), best kept."""
    best = None
    for gbs in gbs_list:
        p, bls = offload.hybridserve_plan(m, rates, float(gbs), float(prompt_len), float(gen_len))
        nb = int(float(bls) // gbs) if block is None else block[1]
        if block is not None and gbs != block[0]:
            continue
        if nb < 1:
            continue
        a = float(p.act_share)
        if not bool(offload.fits(m, rates, p, gbs * nb, gbs, prompt_len, (1 - a) * (prompt_len + gen_len),
                                 a * (prompt_len + gen_len))) and block is None:
            continue
        tps = float(offload.run_time(m, rates, p, gbs * nb, gbs, float(prompt_len), float(gen_len))[0])
        if best is None or tps > best["tokens_per_s"]:
            best = {"tokens_per_s": tps, "gbs": gbs, "num_gpu_batches": nb, "wg": float(p.wg),
                    "activation_share": a}
    return best


def _scenario_rates(sc, overlap, roofline_cpu=False):
    hw = config.load_hardware(sc["hardware"])
    r = offload.roofline_rates(hw, cpu_attention_from=None if roofline_cpu else "t4-flexgen")
    r = offload.with_capacity(r, gpu_gb=sc["gpu_memory_gb"], cpu_gb=sc["host_memory_gb"], disk_gb=0.0)
    return dataclasses.replace(r, ctog_overlap=jnp.float32(overlap))


class LPSolutionNaN:
    """Stands in for a sensitivity search that was skipped."""

    tokens_per_s, gbs, nb = float("nan"), 0, 0


def hybridserve_vs_flexgen(scenario: dict | None = None, sensitivity: bool = True) -> dict:
    """Each system with its own best policy on the same machine: FlexGen's LP + batch search (CPU attention
    on and off), HybridServe's balance + the largest block that fits; the fixed-block ratio (HybridServe at
    FlexGen's block) separates the overlap gain from the capacity gain."""
    sc = dict(HYBRIDSERVE_SCENARIO, **(scenario or {}))
    m = config.load_model(sc["model"])
    s, n = float(sc["prompt_len"]), float(sc["gen_len"])
    r_fg, r_hs = _scenario_rates(sc, 0.0), _scenario_rates(sc, 1.0)
    fg = offload.flexgen_search(m, r_fg, s, n, max_gbs=64)
    hs = _hybridserve_best(m, r_hs, s, n)
    fixed = _hybridserve_best(m, r_hs, s, n, block=(fg.gbs, fg.nb))
    nan = LPSolutionNaN()
    fg_same = offload.flexgen_search(m, r_hs, s, n, max_gbs=64)  # FlexGen with HybridServe's pipelined overlap
    fg_cpu = offload.flexgen_search(m, _scenario_rates(sc, 0.0, roofline_cpu=True), s, n,
                                    max_gbs=64) if sensitivity else nan
    p_tok = offload.placement(hs["wg"], 1 - hs["wg"], 1.0, 0.0, 0.0, 1.0, 0.0, 0.0)  # nothing cached
    bls = hs["gbs"] * hs["num_gpu_batches"]
    steps = [float(offload.prefill_layer(m, r_hs, p_tok, bls, hs["gbs"], s + i)["layer_s"]) for i in range(int(n))]
    recompute_tps = bls * n / (float(m.n_layers) * sum(steps))
    return {
        "speedup": hs["tokens_per_s"] / fg.tokens_per_s, "paper": HYBRIDSERVE_PAPER_SPEEDUP,
        "error_vs_paper": hs["tokens_per_s"] / fg.tokens_per_s / HYBRIDSERVE_PAPER_SPEEDUP - 1.0,
        "fixed_batch_speedup": fixed["tokens_per_s"] / fg.tokens_per_s,
        "capacity_gain": hs["tokens_per_s"] / fixed["tokens_per_s"],
        "speedup_same_overlap": hs["tokens_per_s"] / fg_same.tokens_per_s,
        "same_overlap_error_vs_paper": hs["tokens_per_s"] / fg_same.tokens_per_s / HYBRIDSERVE_PAPER_SPEEDUP - 1.0,
        "overlap_assumption": HYBRIDSERVE_OVERLAP_ASSUMPTION,
        "speedup_vs_roofline_cpu_attention": hs["tokens_per_s"] / fg_cpu.tokens_per_s,
        "hybridserve": hs, "hybridserve_fixed_batch": fixed,
        "flexgen": {"tokens_per_s": fg.tokens_per_s, "gbs": fg.gbs, "num_gpu_batches": fg.nb, "percent": fg.percent(),
                    "cpu_cache_compute": bool(fg.cpu_attention)},
        "flexgen_same_overlap": {"tokens_per_s": fg_same.tokens_per_s, "gbs": fg_same.gbs,
                                 "num_gpu_batches": fg_same.nb},
        "recompute_token_ids_tokens_per_s": recompute_tps,
        "scenario": sc,
    }


def reproduce_hybridserve() -> dict:
    t0 = time.perf_counter()
    out = {"flexgen_t4": flexgen_t4(), "hybridserve_vs_flexgen": hybridserve_vs_flexgen()}
    out["other_scenarios"] = {
        "opt-30b, A100-40GB": hybridserve_vs_flexgen({"model": "opt-30b", "gpu_memory_gb": 40.0}),
        "opt-30b, A100-80GB": hybridserve_vs_flexgen({"model": "opt-30b"}),
    }
    for v in out["other_scenarios"].values():
        for k in ("hybridserve_fixed_batch", "flexgen_same_overlap", "overlap_assumption"):
            v.pop(k)
    out["rows"] = [{"row": n, "paper": p, "simulator": v, "error": v / p - 1.0} for n, p, v in hybridserve_rows(out)]
    out["search_time_s"] = time.perf_counter() - t0
    return out


def hybridserve_rows(result: dict) -> list[tuple]:
    """FlexGen's and HybridServe's published figures beside the simulator's: (row, paper, simulator)."""
    t4, h = result["flexgen_t4"], result["hybridserve_vs_flexgen"]
    rows = [(f"FlexGen T4 {m} tok/s (measured)", FLEXGEN_T4[m]["paper"], t4[m]["tokens_per_s"]) for m in FLEXGEN_T4]
    rows += [(f"FlexGen T4 {m} tok/s (FlexGen's own model)", FLEXGEN_T4[m]["flexgen_model"], t4[m]["tokens_per_s"])
             for m in FLEXGEN_T4]
    if "lp_search" in t4["opt-30b"]:
        rows.append(("FlexGen T4 opt-30b LP search tok/s (re-run)", 7.09, t4["opt-30b"]["lp_search"]["tokens_per_s"]))
    rows += [("HybridServe / FlexGen, FlexGen serial (headline)", HYBRIDSERVE_PAPER_SPEEDUP, h["speedup"]),
             ("HybridServe / FlexGen, same pipelined overlap", HYBRIDSERVE_PAPER_SPEEDUP, h["speedup_same_overlap"])]
    return rows


def format_hybridserve(result: dict) -> str:
    t4 = result["flexgen_t4"]
    lines = ["FlexGen (arXiv 2303.06865) on a T4 (16 GB GPU, 208 GB DRAM, 1.5 TB SSD; prompt 512, 32 generated), "
             "fitted constants, published policies:",
             f"{'model':10}{'policy':28}{'tok/s':>8}{'paper':>8}{'err':>7}{'FlexGen model':>15}"]
    for model in FLEXGEN_T4:
        r = t4[model]
        pol = f"{' '.join(map(str, r['policy']['percent']))}, {r['policy']['gbs']}x{r['policy']['num_gpu_batches']}"
        lines.append(f"{model:10}{pol:28}{r['tokens_per_s']:>8.2f}{r['paper']:>8.2f}{r['error_vs_paper']:>+7.0%}"
                     f"{r['flexgen_model']:>15.2f}")
    if "lp_search" in t4["opt-30b"]:
        ls = t4["opt-30b"]["lp_search"]
        lines.append(f"  OPT-30B LP search (HiGHS): {ls['gbs']}x{ls['num_gpu_batches']}, percent {ls['percent']}, "
                     f"{ls['tokens_per_s']:.2f} tok/s (FlexGen's own re-run: 32x5, 7.09)")
    lines.append(f"  OPT-175B: {t4['opt-175b']['note']}")
    h = result["hybridserve_vs_flexgen"]
    sc = h["scenario"]
    lines += ["", f"HybridServe (arXiv 2501.01792) vs FlexGen, each with its own best policy: {sc['model']}, "
                  f"{sc['hardware']} ({sc['gpu_memory_gb']:.0f} GB GPU), {sc['host_memory_gb']:.0f} GB host, "
                  f"prompt {sc['prompt_len']}, gen {sc['gen_len']}",
              f"  FlexGen     {h['flexgen']['tokens_per_s']:7.2f} tok/s  {h['flexgen']['gbs']}x"
              f"{h['flexgen']['num_gpu_batches']}, percent {h['flexgen']['percent']}, cpu attention "
              f"{h['flexgen']['cpu_cache_compute']}",
              f"  HybridServe {h['hybridserve']['tokens_per_s']:7.2f} tok/s  {h['hybridserve']['gbs']}x"
              f"{h['hybridserve']['num_gpu_batches']}, wg {h['hybridserve']['wg']:.2f}, activation share "
              f"{h['hybridserve']['activation_share']:.2f}",
              f"  FlexGen, HybridServe's pipelined overlap {h['flexgen_same_overlap']['tokens_per_s']:7.2f} tok/s  "
              f"{h['flexgen_same_overlap']['gbs']}x{h['flexgen_same_overlap']['num_gpu_batches']}",
              f"  speedup {h['speedup']:.2f}x over FlexGen's released (serial) overlap (paper {h['paper']}x, "
              f"{h['error_vs_paper']:+.0%}); {h['speedup_same_overlap']:.2f}x with the same pipelined overlap for both "
              f"({h['same_overlap_error_vs_paper']:+.0%})",
              "  assumption: " + h["overlap_assumption"],
              f"  at FlexGen's block {h['fixed_batch_speedup']:.2f}x, capacity gain {h['capacity_gain']:.2f}x",
              f"  sensitivity: FlexGen CPU "
              f"attention at the host's roofline {h['speedup_vs_roofline_cpu_attention']:.2f}x; recompute from "
              f"token ids {h['recompute_token_ids_tokens_per_s']:.2f} tok/s"]
    for name, o in result.get("other_scenarios", {}).items():
        lines.append(f"  {name}: FlexGen {o['flexgen']['tokens_per_s']:.1f}, HybridServe "
                     f"{o['hybridserve']['tokens_per_s']:.1f} tok/s -> {o['speedup']:.2f}x, same overlap "
                     f"{o['speedup_same_overlap']:.2f}x (fixed block {o['fixed_batch_speedup']:.2f}x)")
    lines += ["", format_rows("Every published row:", hybridserve_rows(result))]
    return "\n".join(lines)


