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

# H2M2 (arXiv 2504.14893), speedups over LPDDR-only: 1.46/1.55/2.94 are stated in the paper's text; the other
# policies' figures are read off its plots (less certain)
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
        kv_tokens = ctx + params.batch
        t_base = asymmetric.homogeneous_time(m, params.baseline_hw, params.batch, ctx)
        for r in asymmetric.REPLACEMENTS:  # the strict hierarchy, per cache organisation (default first)
            key = "hierarchical" if r == asymmetric.REPLACEMENTS[0] else f"hierarchical_{r}"
            out[key] = t_base / asymmetric.hierarchical_time(m, hw, params.batch, ctx, kv_tokens, r)
        # sublayer granularity with both chips on every sublayer (the env's whole_sublayer idles one chip)
        out["whole_sublayer_shared"] = t_base / asymmetric.whole_sublayer_time(m, hw, params.batch, ctx, kv_tokens)
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
        paper = H2M2_PAPER[model]
        row["hierarchical"] = _versus(paper.get("hierarchical"), row["speedup_hierarchical"], HIERARCHICAL_MODEL,
                                      {r: row[f"speedup_hierarchical_{r}"] for r in asymmetric.REPLACEMENTS[1:]})
        row["whole_sublayer"] = _versus(paper.get("whole_sublayer"), row["speedup_whole_sublayer_shared"],
                                        WHOLE_SUBLAYER_MODEL, {"one_chip_per_sublayer": row["speedup_whole_sublayer"]})
        result[model] = row
    return result


HIERARCHICAL_MODEL = (
    "HBM a direct-mapped cache of 2 MB pages in front of LPDDR (a hardware DRAM cache: KNL cache mode, 2LM), "
    "both chips computing through it; hits by reuse distance: GQA re-reads within an iteration always, the "
    "iteration's sweep (2C - F)/F of it for C < F < 2C; variants: fully associative LRU, hashed page placement, "
    "a scan-resistant policy")
WHOLE_SUBLAYER_MODEL = (
    "each sublayer's data wholly in HBM or LPDDR (same for all layers, best of 8 that fit), both chips working "
    "on every sublayer, the far one reading over the 960 GB/s link (H2M2's zero-copy remote access); variant: "
    "one chip per sublayer, the other idle (the env's whole_sublayer policy)")


def _versus(paper, simulator, model, variants):
    return {"paper": paper, "simulator": simulator,
            "error": None if paper is None else simulator / paper - 1.0, "model": model, "variants": variants}


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
    out["scenario"] = {"model": "gpt3-175b", "batch": int(params.batch), "iterations": params.max_steps,
                       "finish_prob_per_iteration": float(params.finish_prob),
                       "context_start": [float(params.context_start_min), float(params.context_start_max)],
                       "context_max": float(params.context_max), "bins": bins, "seeds": seeds}
    return out


def reproduce_h2m2(bins: int | None = None) -> dict:
    result = h2m2_sweeps(bins)
    result["dynamic"] = h2m2_dynamic()
    result["rows"] = [{"row": n, "paper": p, "simulator": v, "error": v / p - 1.0} for n, p, v in h2m2_rows(result)]
    return result


def h2m2_rows(result: dict) -> list[tuple]:
    """Every figure H2M2 publishes (or that its plots give) beside the simulator's: (row, paper, simulator)."""
    names = {"h2m2": "H2M2", "oracle": "oracle", "hierarchical": "strict hierarchy", "a_major": "A-major",
             "q_major": "Q-major", "f_major": "F-major", "flexgen_static": "FlexGen LP (static)",
             "whole_sublayer": "whole-sublayer"}
    rows = []
    for model in PAPER_CONTEXTS:
        r = result[model]
        sim = {k: r[f"speedup_{k}"] for k in ("h2m2", "oracle", "a_major", "q_major", "f_major", "flexgen_static")}
        sim["hierarchical"] = _simulated(r, "hierarchical")
        sim["whole_sublayer"] = _simulated(r, "whole_sublayer")
        for k, paper in H2M2_PAPER[model].items():
            rows.append((f"{model} {names[k]}", paper, sim[k]))
        if model == "gpt3-175b":
            rows.append((f"{model} H2M2 / hierarchy", 1.36, sim["h2m2"] / sim["hierarchical"]))
        rows.append((f"{model} H2M2 / oracle", H2M2_OVER_ORACLE[model], r["h2m2_over_oracle"]))
    d = result.get("dynamic")
    if d:
        rows += [("dynamic H2M2", H2M2_PAPER["dynamic"]["h2m2"], d["speedup_h2m2"]),
                 ("dynamic FlexGen LP (static)", H2M2_PAPER["dynamic"]["flexgen_static"], d["speedup_flexgen_static"])]
    return rows


def _simulated(row: dict, name: str) -> float:
    """The simulator's figure for a row with a {paper, simulator} entry, else its `speedup_<name>`."""
    entry = row.get(name)
    return entry["simulator"] if isinstance(entry, dict) else row[f"speedup_{name}"]


H2M2_OVER_ORACLE = {"gpt3-175b": 0.97, "chinchilla-70b": 0.95, "llama2-70b": 0.98}  # Table 3 (1 - overhead)


def format_rows(title: str, rows) -> str:
    """paper | simulator | error, one line per published figure."""
    lines = [title, f"| {'row':50} | {'paper':>8} | {'simulator':>9} | {'error':>7} |", f"|{'-' * 52}|{'-' * 10}|{'-' * 11}|{'-' * 9}|"]
    for name, paper, sim in rows:
        lines.append(f"| {name:50} | {paper:>8.3g} | {sim:>9.3g} | {sim / paper - 1:>+7.1%} |")
    return "\n".join(lines)


def format_h2m2(result: dict) -> str:
    lines = ["H2M2 (arXiv 2504.14893): speedup over LPDDR-only, averaged over the paper's context sweep",
             f"{'model':16}{'batch':>6}{'H2M2':>8}{'paper':>8}{'err':>7}{'oracle':>8}{'H2M2/or':>9}"
             f"{'hier':>7}{'A-maj':>7}{'Q-maj':>7}{'F-maj':>7}{'LP':>7}{'whole':>7}{'1-chip':>8}"]
    for model in PAPER_CONTEXTS:
        r = result[model]
        err = r["speedup_h2m2"] / r["paper_h2m2"] - 1
        lines.append(f"{model:16}{r['batch']:>6}{r['speedup_h2m2']:>8.2f}{r['paper_h2m2']:>8.2f}{err:>+7.0%}"
                     f"{r['speedup_oracle']:>8.2f}{r['h2m2_over_oracle']:>9.3f}{_simulated(r, 'hierarchical'):>7.2f}"
                     f"{r['speedup_a_major']:>7.2f}{r['speedup_q_major']:>7.2f}{r['speedup_f_major']:>7.2f}"
                     f"{r['speedup_flexgen_static']:>7.2f}{_simulated(r, 'whole_sublayer'):>7.2f}"
                     f"{r['speedup_whole_sublayer']:>8.2f}")
    lines.append("hier: " + HIERARCHICAL_MODEL)
    lines.append("  " + "; ".join(f"{m}: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                       result[m].get("hierarchical", {}).get("variants", {}).items())
                                  for m in PAPER_CONTEXTS))
    lines.append("whole: " + WHOLE_SUBLAYER_MODEL + " (1-chip)")
    bins = ", ".join(f"{m} {result[m]['bins']}" for m in PAPER_CONTEXTS)
    lines.append(f"mapping granularity (bins per sublayer): {bins}")
    d = result.get("dynamic")
    if d:
        lines.append(f"dynamic (GPT3-175B, batch 32, 128 iterations, early termination, "
                     f"{d['scenario']['bins']} bins): H2M2 "
                     f"{d['speedup_h2m2']:.2f} (paper 1.48), static LP split {d['speedup_flexgen_static']:.2f} "
                     f"(paper 1.25), oracle {d['speedup_oracle']:.2f}")
    lines += ["", format_rows("Every published row (paper figures other than 1.46/1.55/2.94 are read off its plots or "
                              "summaries):", h2m2_rows(result))]
    return "\n".join(lines)


# ---- HybridServe / FlexGen (`memgym reproduce hybridserve`) -------------------------------------------------

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
    import time

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


# ---- TDMem / secure disaggregated memory (`memgym reproduce tdmem`) --------------------------------------------

# Only TDMem's abstract (arXiv 2108.11507) is known ("comparable performance to the latest software-based
# techniques", fine-grained hardware allocation, obliviousness); the figures below are the related systems' and
# the derived ones the reconstruction rests on.
TDMEM_BAND_US = (3.0, 6.0)  # related systems' latency ladder: an FPGA engine (Clio-class 2.5 us) + pipelined crypto
TDMEM_ORAM_SIZES = {"1GiB": 2**18, "4GiB": 2**20, "16GiB": 2**22}  # 4 KB pages
TDMEM_ORAM_EXPECTED = {"1GiB": 136, "4GiB": 152, "16GiB": 168}  # 2·Z·(L+1), Z = 4, L = log2(pages/Z) (derived)
TDMEM_ORAM_Z = 4.0
TDMEM_ODRP = {"fine_grained_4kb": 1.0, "static_slabs_max": 0.583, "gain": "1.72-12x",
              "register_us_per_4kb": 80.0, "register_us_per_mb": 600.0, "source": "ODRP (NSDI'25) §2.2, §5.2"}
TDMEM_REMOTE_SWEEP_GB = (16, 32, 48, 64, 96, 128, 256, 512)
TDMEM_COMPARABLE = 0.15  # "comparable performance": the same block within +-15 %
TDMEM_UTILISATION_GB = (64.0, 16.0)


def _tdmem_run(params, mode, share_bin=None, batch_bin=None):
    """One static plan (the mode's own `plan` unless given) through the episode: throughput = block ·
    gen_len / Σ step times (prefill included), and what it used."""
    from memgym.envs import secure_disagg as sd
    from memgym.sim import disagg

    mode = jnp.asarray(mode, jnp.int32)
    if share_bin is None:
        share_bin, batch_bin = sd.plan(params, mode)
    state, out = sd.play_plan(params, mode, share_bin, batch_bin)
    total, net = out["total"], out["net"]
    return {"tokens_per_s": state.batch * params.gen_len / total.sum(), "batch": state.batch,
            "share_bin": jnp.asarray(share_bin, jnp.int32), "block_bin": jnp.asarray(batch_bin, jnp.int32),
            "episode_s": total.sum(), "net_time_frac": net.sum() / total.sum(), "fits": sd.fits(params, state),
            "remote_used_gb": sd.remote_used(params, state.batch, state.tokens) / 1e9,
            "remote_usable_gb": disagg.usable_bytes(params.remote, mode) / 1e9}


def _tdmem_scenario(p):
    """Every mode's own plan, every mode at the software baseline's and at plain's (share, block) bins, and
    the tdmem heuristic's plan, on one derived scenario: 22 plays through one vmapped program (jittable;
    vmapped over scenarios by `tdmem_scenarios`)."""
    from memgym.envs import secure_disagg as sd
    from memgym.policies import secure_disagg as ps
    from memgym.sim import disagg

    n = len(disagg.MODES)
    modes = jnp.arange(n, dtype=jnp.int32)
    si, bb = jax.vmap(lambda md: sd.plan(p, md))(modes)
    heur = ps.cheapest_secure_mode(p)
    rep = lambda x: jnp.full(n, x, jnp.int32)  # noqa: E731
    md_all = jnp.concatenate([modes, modes, modes, heur[None]])
    si_all = jnp.concatenate([si, rep(si[disagg.RDMA_SLAB]), rep(si[disagg.PLAIN]), si[heur][None]])
    bb_all = jnp.concatenate([bb, rep(bb[disagg.RDMA_SLAB]), rep(bb[disagg.PLAIN]), bb[heur][None]])
    r = jax.vmap(lambda md, s, b: _tdmem_run(p, md, s, b))(md_all, si_all, bb_all)
    part = lambda a, b: {k: v[a:b] for k, v in r.items()}  # noqa: E731
    oram_pages = disagg.oram_pages(p.remote)
    return {"own": part(0, n), "at_baseline": part(n, 2 * n), "at_plain": part(2 * n, 3 * n),
            "heuristic": dict({k: v[3 * n] for k, v in r.items()}, mode=heur),
            "max_batch": p.max_batch, "base_batch": p.base_batch, "wg": p.wg, "oram_pages": oram_pages,
            "oram_levels": disagg.oram_levels(oram_pages, p.remote.oram_z),
            "oram_blocks": disagg.oram_blocks_per_access(oram_pages, p.remote.oram_z)}


_tdmem_scenarios_jit = jax.jit(jax.vmap(_tdmem_scenario))


def tdmem_scenarios(overrides: dict | None, remote_gb, tenants) -> dict:
    """`_tdmem_scenario` for each (remote GB, tenant) pair of `memgym.make("SecureDisagg-v0", **overrides)`:
    each scenario derived by `make` (one compiled `derive` serves them all: same static settings), then one
    compiled, vmapped program runs them; numpy results with a leading scenario axis."""
    import memgym

    ps = [memgym.make("SecureDisagg-v0", **{**(overrides or {}), "remote_memory_gb": float(g), "tenant": int(k)})[1]
          for g, k in zip(remote_gb, tenants)]
    out = _tdmem_scenarios_jit(stack(ps))
    return jax.tree_util.tree_map(np.asarray, jax.device_get(out))


def _tdmem_row(tree, i, mode=None):
    """Scenario i (and mode, where the leaves have a mode axis) as a dict of Python scalars."""
    def scalar(v):
        x = v[i] if mode is None else v[i, mode]
        return bool(x) if x.dtype == bool else (int(x) if np.issubdtype(x.dtype, np.integer) else float(x))
    return {k: scalar(v) for k, v in tree.items()}


def _tdmem_defaults(overrides):
    from memgym.envs.secure_disagg import SecureDisaggScenario

    return {**SecureDisaggScenario.defaults(), **(overrides or {})}


def reproduce_tdmem(overrides: dict | None = None, remote_sweep_gb=TDMEM_REMOTE_SWEEP_GB) -> dict:
    """TDMem's claims against the simulator: a 4 KB access per mode and the related systems' band, Path ORAM's
    blocks per access, the tdmem heuristic's throughput over software RDMA in 1 GB slabs on
    `memgym.make("SecureDisagg-v0")`'s scenario (`overrides`: keyword arguments of `default_params`), at the
    same block and across remote memory sizes, capacity utilisation per mode, and what each level of
    obliviousness costs."""
    import time

    import memgym
    from memgym.sim import disagg

    t0 = time.perf_counter()
    sc = _tdmem_defaults(overrides)
    _, params = memgym.make("SecureDisagg-v0", **(overrides or {}))
    t = params.remote
    modes = disagg.MODES
    cap0 = float(t.capacity_bytes) / 1e9
    tenant0 = int(round(float(params.tenant)))
    # one program: the remote sweep at the scenario's tenant, then every tenant at the scenario's remote
    sweep = [float(g) for g in remote_sweep_gb]
    tenants = list(range(len(disagg.REQUIREMENTS)))
    r = tdmem_scenarios(overrides, sweep + [cap0] * len(tenants), [tenant0] * len(sweep) + tenants)
    i0 = len(sweep) + tenant0  # the scenario itself

    # -- one 4 KB access per mode
    acc = {m: float(disagg.access_time(t, i, 4096.0)) * 1e6 for i, m in enumerate(modes)}
    lo, hi = TDMEM_BAND_US
    access = dict(acc, band_us=list(TDMEM_BAND_US), in_band=bool(lo <= acc["secure"] <= hi),
                  modes_in_band=[m for m in modes if lo <= acc[m] <= hi],
                  latency_us={m: float(disagg.latency_s(t, i)) * 1e6 for i, m in enumerate(modes)},
                  link_gbps=float(t.link_bytes_per_s) / 1e9)

    # -- Path ORAM
    oram = {}
    for key, n in TDMEM_ORAM_SIZES.items():
        oram[key] = {"pages": n, "blocks": float(disagg.oram_blocks_per_access(n, TDMEM_ORAM_Z)),
                     "levels": float(disagg.oram_levels(n, TDMEM_ORAM_Z)), "expected": TDMEM_ORAM_EXPECTED[key]}
    oram["z"] = TDMEM_ORAM_Z
    oram["default_scenario"] = {
        "pages": float(r["oram_pages"][i0]), "blocks": float(r["oram_blocks"][i0]),
        "levels": float(r["oram_levels"][i0]), "z": float(t.oram_z),
        "usable_gb": float(disagg.usable_bytes(t, disagg.ORAM)) / 1e9,
        "traffic": float(disagg.traffic(t, disagg.ORAM))}

    # -- secure (tdmem heuristic) vs software RDMA in slabs
    def pair(i):
        sec = _tdmem_row(r["own"], i, disagg.SECURE)
        rdma = _tdmem_row(r["own"], i, disagg.RDMA_SLAB)
        same = _tdmem_row(r["at_baseline"], i, disagg.SECURE)
        return sec, rdma, same

    sec, rdma, same = pair(i0)
    by_remote = {}
    for i, g in enumerate(sweep):
        s_i, r_i, m_i = pair(i)
        by_remote[f"{g:g}"] = {
            "ratio": s_i["tokens_per_s"] / r_i["tokens_per_s"],
            "same_block_ratio": m_i["tokens_per_s"] / r_i["tokens_per_s"],
            "tdmem_tokens_per_s": s_i["tokens_per_s"], "rdma_slabs_tokens_per_s": r_i["tokens_per_s"],
            "tdmem_batch": s_i["batch"], "rdma_slabs_batch": r_i["batch"], "max_batch": float(r["max_batch"][i]),
            "tdmem_net_time_frac": s_i["net_time_frac"], "rdma_slabs_net_time_frac": r_i["net_time_frac"],
            "best_tokens_per_s_any_mode": float(r["own"]["tokens_per_s"][i].max())}
    scenario = {"model": sc["model"], "hardware": sc["hardware"],
                "host_memory_gb": float(params.rates.cpu_capacity_bytes) / 1e9, "remote_memory_gb": cap0,
                "link_gbps": float(t.link_bytes_per_s) / 1e9, "rtt_us": float(t.engine_rtt_s) * 1e6,
                "rdma_rtt_us": float(t.rdma_rtt_s) * 1e6, "prompt_len": float(params.prompt_len),
                "gen_len": float(params.gen_len), "gbs": float(params.gbs), "tenant": tenant0,
                "max_steps": params.max_steps, "bins": params.bins, "batch_bins": params.batch_bins,
                "max_batch": float(r["max_batch"][i0]), "wg": float(r["wg"][i0])}
    versus = {
        "ratio": sec["tokens_per_s"] / rdma["tokens_per_s"], "tdmem": dict(sec, mode="secure"),
        "rdma_slabs": dict(rdma, mode="rdma_slab"),
        "same_block": {"ratio": same["tokens_per_s"] / rdma["tokens_per_s"], "batch": same["batch"],
                       "share_bin": same["share_bin"], "secure_tokens_per_s": same["tokens_per_s"],
                       "rdma_slabs_tokens_per_s": rdma["tokens_per_s"],
                       "comparable": bool(abs(same["tokens_per_s"] / rdma["tokens_per_s"] - 1) <= TDMEM_COMPARABLE),
                       "tolerance": TDMEM_COMPARABLE},
        "by_remote_gb": by_remote, "scenario": scenario,
        "throughput": "block x gen_len / sum of step times (prefill included), one episode, static plans",
    }

    # -- capacity utilisation and the RDMA registration alternative
    util = {}
    for gb in TDMEM_UTILISATION_GB:
        tg = disagg.with_remote(t, capacity_gb=gb)
        util[f"{gb:g}GB"] = {m: float(disagg.usable_bytes(tg, i) / tg.capacity_bytes) for i, m in enumerate(modes)}
    cache_b = sec["remote_used_gb"] * 1e9
    per_4k, per_mb = float(t.rdma_register_s_per_page), float(t.rdma_register_s_per_byte) * disagg.MB
    page = float(t.page_bytes)
    util["odrp"] = TDMEM_ODRP
    util["registration"] = {
        "remote_cache_gb": sec["remote_used_gb"], "capacity_gb": cap0,
        "per_4kb_s": cache_b / page * per_4k, "per_mb_s": cache_b / disagg.MB * per_mb,
        "capacity_per_4kb_s": cap0 * 1e9 / page * per_4k, "capacity_per_mb_s": cap0 * 1e9 / disagg.MB * per_mb,
        "tdmem_hardware_allocation_s": 0.0, "tdmem_episode_s": sec["episode_s"],
        "note": "the remote cache the tdmem plan fills by the run's end, registered as 4 KB or 1 MB regions"}

    # -- obliviousness
    plain = _tdmem_row(r["own"], i0, disagg.PLAIN)
    obl = {}
    for i, m in enumerate(modes):
        own = _tdmem_row(r["own"], i0, i)
        at_p = _tdmem_row(r["at_plain"], i0, i)
        obl[m] = {"level": disagg.LEVELS[i], "traffic": float(disagg.traffic(t, i)),
                  "tokens_per_s": own["tokens_per_s"], "vs_plain": own["tokens_per_s"] / plain["tokens_per_s"],
                  "batch": own["batch"], "net_time_frac": own["net_time_frac"],
                  "at_plain_block_vs_plain": at_p["tokens_per_s"] / plain["tokens_per_s"],
                  "at_plain_block_batch": at_p["batch"]}
    by_tenant = {}
    for k in tenants:
        i = len(sweep) + k
        h = _tdmem_row(r["heuristic"], i)
        s_i = _tdmem_row(r["own"], i, disagg.SECURE)
        by_tenant[disagg.REQUIREMENTS[k]] = {
            "level": k, "mode": modes[h["mode"]], "tokens_per_s": h["tokens_per_s"], "batch": h["batch"],
            "vs_secure": h["tokens_per_s"] / s_i["tokens_per_s"],
            "vs_rdma_slabs": h["tokens_per_s"] / float(r["own"]["tokens_per_s"][i, disagg.RDMA_SLAB]),
            "net_time_frac": h["net_time_frac"]}
    obl_out = {"modes": obl, "by_tenant": by_tenant,
               "oram_slowdown_vs_secure": by_tenant["none"]["tokens_per_s"] / by_tenant["oblivious"]["tokens_per_s"]}

    return {"remote_4k_access_us": access, "oram_blocks_per_access": oram, "secure_vs_software_rdma": versus,
            "capacity_utilisation": util, "obliviousness_cost": obl_out,
            "flexgen_on_remote": flexgen_on_remote(params), "scenario": scenario,
            "time_s": time.perf_counter() - t0}


TDMEM_FLEXGEN_MODES = ("rdma_slab", "secure", "dummy", "oram")


def flexgen_on_remote(params, modes=TDMEM_FLEXGEN_MODES) -> dict:
    """FlexGen's own policy search (its LP over the nine placement fractions and its batch search) with the
    remote tier in its third-tier slot (`disagg.as_disk_tier`), per mode, and with no remote memory: an
    existing policy run on the tier, placing weights as well as cache and hidden states there."""
    from memgym.sim import disagg, offload

    m, prompt, gen = params.model, float(params.prompt_len), float(params.gen_len)
    rows = {name: offload.with_capacity(params.rates, disk_gb=0.0) if name == "no_remote"
            else disagg.as_disk_tier(params.rates, params.remote, disagg.MODES.index(name))
            for name in ("no_remote", *modes)}
    out = {}
    for name, rates in rows.items():
        sol = offload.flexgen_search(m, rates, prompt, gen, cpu_attention=(0.0,))
        out[name] = {"tokens_per_s": sol.tokens_per_s, "gbs": sol.gbs, "num_gpu_batches": sol.nb,
                     "percent": sol.percent(), "remote_share_of_cache": round(1.0 - sol.cg - sol.cc, 4)}
    base = out["rdma_slab"]["tokens_per_s"] if "rdma_slab" in out else None
    for v in out.values():
        v["vs_rdma_slab"] = v["tokens_per_s"] / base if base else None
    return out


def format_tdmem(result: dict) -> str:
    from memgym.sim import disagg

    v = result["secure_vs_software_rdma"]
    sc = v["scenario"]
    acc = result["remote_4k_access_us"]
    util = result["capacity_utilisation"]
    obl = result["obliviousness_cost"]
    lo, hi = acc["band_us"]
    ukeys = [k for k in util if k.endswith("GB")]
    lines = [f"TDMem (arXiv 2108.11507, abstract only; reconstruction: sim/disagg.py, configs/hardware/a100-80gb-pcie4-tdmem.yaml) on SecureDisagg-v0: "
             f"{sc['model']}, {sc['hardware']}, {sc['host_memory_gb']:.0f} GB host, {sc['remote_memory_gb']:.0f} GB "
             f"remote, link {sc['link_gbps']:.1f} GB/s, engine RTT {sc['rtt_us']:.1f} us (RDMA {sc['rdma_rtt_us']:.1f}"
             f" us), prompt {sc['prompt_len']:.0f}, gen {sc['gen_len']:.0f}, gbs {sc['gbs']:.0f}, tenant "
             f"{sc['tenant']:.0f}",
             "",
             f"Per mode: one 4 KB access (related systems' band {lo:g}-{hi:g} us), traffic per useful byte, usable "
             "remote fraction, throughput of the mode's own plan vs plain:",
             f"{'mode':15}{'level':>6}{'4KB us':>9}{'traffic':>9}"
             + "".join(f"{'usable ' + k:>14}" for k in ukeys) + f"{'block':>7}{'tok/s':>8}{'vs plain':>10}"
             f"{'net frac':>10}{'@plain blk':>12}"]
    for m in disagg.MODES:
        o = obl["modes"][m]
        lines.append(f"{m:15}{o['level']:>6}{acc[m]:>9.2f}{o['traffic']:>9.3f}"
                     + "".join(f"{util[k][m]:>14.1%}" for k in ukeys)
                     + f"{o['batch']:>7.0f}{o['tokens_per_s']:>8.2f}{o['vs_plain']:>10.3f}{o['net_time_frac']:>10.2f}"
                     f"{o['at_plain_block_vs_plain']:>12.3f}")
    lines.append(f"  secure 4 KB access {acc['secure']:.2f} us: {'in' if acc['in_band'] else 'OUT OF'} the "
                 f"{lo:g}-{hi:g} us band (in band: {', '.join(acc['modes_in_band'])})")
    o = result["oram_blocks_per_access"]
    parts = [f"{k} ({o[k]['pages']} pages): L={o[k]['levels']:.0f}, {o[k]['blocks']:.0f} (2·Z·(L+1) = "
             f"{o[k]['expected']})" for k in TDMEM_ORAM_SIZES]
    d = o["default_scenario"]
    lines += ["", f"Path ORAM blocks per access, Z={o['z']:.0f}: " + "; ".join(parts),
              f"  this scenario's ORAM: {d['usable_gb']:.1f} GB usable = {d['pages']:,.0f} pages, L={d['levels']:.0f},"
              f" {d['blocks']:.0f} blocks per access, traffic x{d['traffic']:.1f}"]
    t, b, s = v["tdmem"], v["rdma_slabs"], v["same_block"]
    comparable = "comparable" if s["comparable"] else "NOT comparable"
    lines += ["", "Throughput (block x gen / episode time), tdmem heuristic (secure) vs software RDMA in 1 GB slabs:"]
    for label, x in (("rdma_slabs", b), ("tdmem     ", t)):
        lines.append(f"  {label} {x['tokens_per_s']:7.2f} tok/s  block {x['batch']:.0f} (bin {x['block_bin']}), "
                     f"share bin {x['share_bin']}, remote {x['remote_used_gb']:.1f}/{x['remote_usable_gb']:.1f} GB "
                     f"usable, net {x['net_time_frac']:.0%} of the time")
    lines += [f"  ratio {v['ratio']:.3f}x; same block and share as the baseline ({s['batch']:.0f}, bin "
              f"{s['share_bin']}): {s['ratio']:.3f}x ({comparable}, +-{s['tolerance']:.0%})",
              f"  {'remote GB':>10}{'max blk':>9}{'rdma blk':>10}{'rdma tok/s':>12}{'tdmem blk':>11}"
              f"{'tdmem tok/s':>13}{'ratio':>8}{'same blk':>10}{'tdmem net':>11}{'best any':>10}"]
    for g, row in v["by_remote_gb"].items():
        lines.append(f"  {g:>10}{row['max_batch']:>9.0f}{row['rdma_slabs_batch']:>10.0f}"
                     f"{row['rdma_slabs_tokens_per_s']:>12.2f}{row['tdmem_batch']:>11.0f}"
                     f"{row['tdmem_tokens_per_s']:>13.2f}{row['ratio']:>8.3f}{row['same_block_ratio']:>10.3f}"
                     f"{row['tdmem_net_time_frac']:>11.0%}{row['best_tokens_per_s_any_mode']:>10.2f}")
    lines.append("  (tight remote: slabs waste capacity, so TDMem's 4 KB allocation holds a larger block; ample "
                 "remote: the largest-block rule pushes the block into the network-bound regime)")
    lines += ["", "Tenants (the tdmem heuristic: the cheapest secure mode each requirement allows):",
              f"  {'requirement':13}{'mode':>8}{'block':>7}{'tok/s':>8}{'vs secure':>11}{'vs rdma':>9}{'net frac':>10}"]
    for name, row in obl["by_tenant"].items():
        lines.append(f"  {name:13}{row['mode']:>8}{row['batch']:>7.0f}{row['tokens_per_s']:>8.2f}"
                     f"{row['vs_secure']:>11.3f}{row['vs_rdma_slabs']:>9.3f}{row['net_time_frac']:>10.0%}")
    lines.append(f"  Path ORAM is {obl['oram_slowdown_vs_secure']:.0f}x slower than secure (no requirement vs "
                 "oblivious tenant)")
    reg = util["registration"]
    od = util["odrp"]
    lines += ["", f"Capacity: ODRP: fine-grained 4 KB {od['fine_grained_4kb']:.0%}, static slabs <= "
                  f"{od['static_slabs_max']:.1%} ({od['gain']}); here "
              + ", ".join(f"{k}: slabs {util[k]['rdma_slab']:.1%}, secure {util[k]['secure']:.2%}" for k in ukeys),
              f"  registering the tdmem plan's {reg['remote_cache_gb']:.1f} GB remote cache with RDMA: "
              f"{reg['per_4kb_s']:,.0f} s at 80 us per 4 KB, {reg['per_mb_s']:,.1f} s at 600 us per 1 MB "
              f"(whole {reg['capacity_gb']:.0f} GB: {reg['capacity_per_4kb_s']:,.0f} / "
              f"{reg['capacity_per_mb_s']:,.1f} s); TDMem's hardware allocation ~0 s; the episode takes "
              f"{reg['tdmem_episode_s']:,.0f} s"]
    fg = result.get("flexgen_on_remote") or {}
    if fg:
        lines += ["", "FlexGen's own policy search (LP + batch search) with remote memory as its third tier:"]
        lines += [f"  {name:10s} {v['tokens_per_s']:7.2f} tok/s  {v['gbs']}x{v['num_gpu_batches']}, placement "
                  f"{v['percent']}, cache remote {v['remote_share_of_cache']:.0%}"
                  + (f", {v['vs_rdma_slab']:.2f}x rdma_slab" if v.get("vs_rdma_slab") else "")
                  for name, v in fg.items()]
    lines.append(f"(computed in {result['time_s']:.1f} s)")
    return "\n".join(lines)
