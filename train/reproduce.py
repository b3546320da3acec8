"""`memgym reproduce h2m2`: the paper's tables beside the simulator's numbers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from memgym.envs.core import rollout
from memgym.envs.kernel_mapping import PAPER_BATCH, PAPER_CONTEXTS, KernelMapping
from memgym.policies import kernel_mapping as km
from memgym.sim import asymmetric
from memgym.sim.specs import stack

# reference/papers.md §1.8 (1.46/1.55/2.94 verified; the rest secondary S1+S2)
H2M2_PAPER = {
    "gpt3-175b": {"h2m2": 1.46, "hierarchical": 1.07, "oracle": 1.51, "a_major": 1.40, "q_major": 1.22,
                  "f_major": 1.12, "flexgen_static": 1.30, "whole_sublayer": 1.27},
    "chinchilla-70b": {"h2m2": 1.55, "hierarchical": 1.33, "oracle": 1.63},
    "llama2-70b": {"h2m2": 2.94, "hierarchical": 2.75, "oracle": 3.00},
    "dynamic": {"h2m2": 1.48, "flexgen_static": 1.25},
}
SWEEP_POLICIES = ("h2m2", "oracle", "a_major", "q_major", "f_major", "flexgen_static", "whole_sublayer")


def _sweep_speedups(model: str, batch: int, contexts, bins: int) -> list[dict]:
    """Speedup over LPDDR-only of each policy's mapping for one decode iteration at (batch, context), for
    every context of the sweep at once (one compiled, vmapped program per model)."""
    env = KernelMapping()
    stacked = stack([env.default_params(model=model, batch=batch, bins=bins, context_start=(s, s),
                                        context_max=s, iterations_per_step=1, max_steps=1) for s in contexts])

    def point(params):
        obs, state = env.reset(jax.random.PRNGKey(0), params)
        out = {}
        for name in SWEEP_POLICIES:
            action = km.POLICIES[name](jax.random.PRNGKey(0), obs, state, params)
            out[name] = env.step(jax.random.PRNGKey(1), state, action, params)[2]
        m, hw = params.model, params.hw
        ctx = state.contexts.sum()
        t_base = asymmetric.homogeneous_time(m, params.baseline_hw, params.n_slots, ctx)
        out["hierarchical"] = t_base / asymmetric.hierarchical_time(m, hw, params.n_slots, ctx,
                                                                    ctx + params.n_slots)
        return out

    res = jax.device_get(jax.jit(jax.vmap(point))(stacked))
    return [{k: float(v[i]) for k, v in res.items()} for i in range(len(contexts))]


def h2m2_sweeps(bins: int | None = None) -> dict:
    """Per model: speedups averaged over the paper's context sweep (bins default: heads + 1, the paper's
    head granularity)."""
    result = {}
    for model, contexts in PAPER_CONTEXTS.items():
        points = _sweep_speedups(model, PAPER_BATCH[model], contexts, bins or _heads(model) + 1)
        row = {f"speedup_{k}": float(np.mean([p[k] for p in points])) for k in points[0]}
        row["per_context"] = {int(s): {k: round(v, 4) for k, v in p.items()} for s, p in zip(contexts, points)}
        row["contexts"] = list(contexts)
        row["batch"] = PAPER_BATCH[model]
        row["bins"] = bins or _heads(model) + 1
        row["paper_h2m2"] = H2M2_PAPER[model]["h2m2"]
        row["paper"] = H2M2_PAPER[model]
        row["h2m2_over_oracle"] = row["speedup_h2m2"] / row["speedup_oracle"]
        result[model] = row
    return result


def _heads(model: str) -> int:
    from memgym.sim import config

    return int(config.load_model(model).n_heads)


def h2m2_dynamic(seeds: int = 8, bins: int = 33) -> dict:
    """H2M2's dynamic experiment: GPT3-175B, batch 32, 128 iterations with early termination and
    replacement; mean speedup of the H2M2 runtime and of the static FlexGen-style split."""
    env = KernelMapping()
    params = env.default_params(model="gpt3-175b", workload="dynamic", bins=bins)
    keys = jax.random.split(jax.random.PRNGKey(2025), seeds)
    out = {}
    for name in ("h2m2", "flexgen_static", "oracle"):
        run = jax.jit(jax.vmap(lambda k, p=km.POLICIES[name]: rollout(env, p, params, k, params.max_steps)[0]))
        out[f"speedup_{name}"] = float(jnp.mean(run(keys)))
    out["paper"] = H2M2_PAPER["dynamic"]
    out["scenario"] = {"model": "gpt3-175b", "batch": params.n_slots, "iterations": params.max_steps,
                       "finish_prob_per_iteration": float(params.finish_prob),
                       "context_start": [float(params.context_start_min), float(params.context_start_max)],
                       "context_max": float(params.context_max), "bins": bins, "seeds": seeds}
    return out


def reproduce_h2m2(bins: int | None = None) -> dict:
    result = h2m2_sweeps(bins)
    result["dynamic"] = h2m2_dynamic()
    return result


def format_h2m2(result: dict) -> str:
    lines = ["H2M2 (arXiv 2504.14893): speedup over LPDDR-only, averaged over the paper's context sweep",
             f"{'model':16}{'batch':>6}{'H2M2':>8}{'paper':>8}{'err':>7}{'oracle':>8}{'H2M2/or':>9}"
             f"{'hier':>7}{'A-maj':>7}{'Q-maj':>7}{'F-maj':>7}{'LP':>7}{'whole':>7}"]
    for model in PAPER_CONTEXTS:
        r = result[model]
        err = r["speedup_h2m2"] / r["paper_h2m2"] - 1
        lines.append(f"{model:16}{r['batch']:>6}{r['speedup_h2m2']:>8.2f}{r['paper_h2m2']:>8.2f}{err:>+7.0%}"
                     f"{r['speedup_oracle']:>8.2f}{r['h2m2_over_oracle']:>9.3f}{r['speedup_hierarchical']:>7.2f}"
                     f"{r['speedup_a_major']:>7.2f}{r['speedup_q_major']:>7.2f}{r['speedup_f_major']:>7.2f}"
                     f"{r['speedup_flexgen_static']:>7.2f}{r['speedup_whole_sublayer']:>7.2f}")
    lines.append("paper (GPT3-175B): oracle ~1.51, hierarchical 1.07, A/Q/F-major 1.40/1.22/1.12, LP 1.30, "
                 "whole-sublayer 1.27; Chinchilla hier 1.33; Llama2 hier 2.75, oracle 3.00")
    d = result.get("dynamic")
    if d:
        lines.append(f"dynamic (GPT3-175B, batch 32, 128 iterations, early termination): H2M2 "
                     f"{d['speedup_h2m2']:.2f} (paper 1.48), static LP split {d['speedup_flexgen_static']:.2f} "
                     f"(paper 1.25), oracle {d['speedup_oracle']:.2f}")
    return "\n".join(lines)


# ---- HybridServe / FlexGen (`memgym reproduce hybridserve`) -------------------------------------------------

# reference/papers.md §3.4 (measured, paper Table 2 / bench_suite.py) and §3.3 (the released model's own
# predictions for the same policies, re-run)
FLEXGEN_T4 = {
    "opt-30b": {"percent": (20, 80, 0, 100, 0, 100), "gbs": 48, "nb": 3, "paper": 7.32, "flexgen_model": 7.14},
    "opt-175b": {"percent": (0, 50, 0, 0, 0, 100), "gbs": 32, "nb": 8, "paper": 0.69, "flexgen_model": 0.15},
}
HYBRIDSERVE_PAPER_SPEEDUP = 2.19  # over FlexGen (arXiv 2501.01792 abstract; papers.md §2.4)
# The reference scenario (papers.md §2.3-2.5: the paper's GPU, host memory and lengths are unverified):
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
HS_GBS = (1, 2, 3, 4, 8, 16, 32, 64)


def flexgen_t4(search: bool = True) -> dict:
    """FlexGen's T4 benchmark (16 GB GPU, 208 GB DRAM, 1.5 TB SSD, prompt 512, 32 generated tokens) with its
    fitted constants and published policies (CPU attention on); `search` adds the LP's own OPT-30B policy."""
    from memgym.sim import config, offload

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
    from memgym.sim import offload

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
    import dataclasses

    import jax.numpy as jnp

    from memgym.sim import config, offload

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
    from memgym.sim import config, offload

    sc = dict(HYBRIDSERVE_SCENARIO, **(scenario or {}))
    m = config.load_model(sc["model"])
    s, n = float(sc["prompt_len"]), float(sc["gen_len"])
    r_fg, r_hs = _scenario_rates(sc, 0.0), _scenario_rates(sc, 1.0)
    fg = offload.flexgen_search(m, r_fg, s, n, max_gbs=64)
    hs = _hybridserve_best(m, r_hs, s, n)
    fixed = _hybridserve_best(m, r_hs, s, n, block=(fg.gbs, fg.nb))
    nan = LPSolutionNaN()
    fg_same = offload.flexgen_search(m, r_hs, s, n, max_gbs=64) if sensitivity else nan  # pipelined FlexGen
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
    import time

    t0 = time.perf_counter()
    out = {"flexgen_t4": flexgen_t4(), "hybridserve_vs_flexgen": hybridserve_vs_flexgen()}
    out["other_scenarios"] = {
        "opt-30b, A100-40GB": hybridserve_vs_flexgen({"model": "opt-30b", "gpu_memory_gb": 40.0}),
        "opt-30b, A100-80GB": hybridserve_vs_flexgen({"model": "opt-30b"}),
    }
    for v in out["other_scenarios"].values():
        for k in ("hybridserve_fixed_batch", "flexgen_same_overlap"):
            v.pop(k)
    out["search_time_s"] = time.perf_counter() - t0
    return out


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
              f"  speedup {h['speedup']:.2f}x (paper {h['paper']}x, {h['error_vs_paper']:+.0%}); at FlexGen's block "
              f"{h['fixed_batch_speedup']:.2f}x, capacity gain {h['capacity_gain']:.2f}x",
              f"  sensitivity: FlexGen with the pipelined overlap {h['speedup_same_overlap']:.2f}x; FlexGen CPU "
              f"attention at the host's roofline {h['speedup_vs_roofline_cpu_attention']:.2f}x; recompute from "
              f"token ids {h['recompute_token_ids_tokens_per_s']:.2f} tok/s"]
    for name, o in result.get("other_scenarios", {}).items():
        lines.append(f"  {name}: FlexGen {o['flexgen']['tokens_per_s']:.1f}, HybridServe "
                     f"{o['hybridserve']['tokens_per_s']:.1f} tok/s -> {o['speedup']:.2f}x (fixed block "
                     f"{o['fixed_batch_speedup']:.2f}x)")
    return "\n".join(lines)
