"""`memgym benchmark`: every registered policy and the learned runs on a benchmark's held-out split.

The benchmark (`configs/benchmarks/<name>.yaml`, see `memgym.envs.distribution`) fixes the scenarios, the
evaluation seeds and the key. Every policy plays every scenario × seed from the same keys (`memgym evaluate`
does the playing and writes results.csv, summary.json ...); this module adds the protocol's statistics:

- Learned policies act greedily (their deterministic action: the argmax over the masked logits, or for an
  ordinal head the feasible bin nearest the mean; `sample=True`, `--sample`: drawn from their distribution,
  stated in the table). Each training seed of a run is one training
  run; following rliable, the unit is a training run × task (scenario): a run's score on a task is its mean
  over the evaluation episodes, and the aggregates (IQM, mean, P(improvement over the heuristic)) use a
  stratified bootstrap over runs within each task. Non-learned policies are deterministic functions of the
  episode, so their unit is an evaluation episode × task.
- Per scenario: the heuristic (1.0 by definition), the oracle and its gap over the heuristic (the headroom),
  the best baseline, and each learned run group's mean with its spread over runs and the share of the
  heuristic-to-oracle gap it closed.
- Overall: `gap_closed` = Σ_tasks (learned − heuristic) / Σ_tasks (oracle − heuristic), and the worst task.
"""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pandas as pd

from memgym import policies as policy_registry
from memgym.envs.distribution import load_benchmark
from memgym.envs.registry import canonical_id, descriptor

from ..files import write_atomic
from . import evaluate

ORACLE = evaluate.ORACLE


def default_benchmark(env_id: str) -> str:
    """The benchmark shipped for an environment (its descriptor's `benchmark`: configs/benchmarks/NAME.yaml)."""
    return descriptor(env_id).benchmark


def _group(policy: str) -> str:
    """'learned:run/seed2' -> 'learned:run' (training seeds of one run form one group)."""
    return re.sub(r"/seed\d+$", "", policy)


def run_benchmark(env_id: str, checkpoints=(), split: str = "test", out_dir=None, seeds: int | None = None,
                  benchmark: str | None = None, ray: dict | None = None, sample: bool = False) -> dict:
    """Evaluate every policy and `checkpoints` on the benchmark's `split` (scenario groups as Ray tasks with
    `ray`, see `evaluate.evaluate`); write results and benchmark.json into `out_dir`; return the summary.
    Learned policies act greedily (the headline), or sample their actions with `sample`."""
    env_id = canonical_id(env_id)
    bench = load_benchmark(benchmark or default_benchmark(env_id))
    if bench.env_id != env_id:
        raise ValueError(f"benchmark {bench.name!r} is for {bench.env_id}, not {env_id}")
    scenarios = bench.split(split)
    out = pathlib.Path(out_dir or f"results/benchmark-{bench.name}-{split}")
    n_seeds = bench.seeds if seeds is None else seeds
    evaluate.evaluate(env_id, {}, scenarios, seeds=n_seeds, learned_runs=checkpoints, out_dir=out,
                      seed=bench.seed, config_path=bench.source, ray=ray, sample=sample)
    table = pd.read_csv(out / "results.csv")
    summary = summarize(table, env_id, list(scenarios))
    summary.update(benchmark=bench.name, split=split, seeds=n_seeds, source=bench.source, greedy=not sample,
                   scenarios={k: dict(v) for k, v in scenarios.items()})
    write_atomic(out / "benchmark.json", json.dumps(summary, indent=1))
    return summary


def summarize(table: pd.DataFrame, env_id: str, scenarios: list) -> dict:
    """The protocol's statistics from a results table (see the module docstring)."""
    heuristic = policy_registry.heuristic_name(env_id)
    table = table.assign(group=table.policy.map(_group))
    per_run = table.groupby(["group", "policy", "scenario"]).score_vs_heuristic.mean()
    learned = sorted(g for g in table.group.unique() if table[table.group == g].kind.iloc[0] == "learned")
    matrices = {}
    for g in table.group.unique():
        if g in learned:  # rows: training runs, each its mean over the evaluation episodes
            m = per_run.loc[g].unstack("scenario")[scenarios].to_numpy()
        else:  # rows: evaluation episodes
            m = table[table.group == g].pivot(index="seed", columns="scenario", values="score_vs_heuristic")
            m = m[scenarios].to_numpy()
        matrices[g] = m
    agg = evaluate.aggregate_scores(matrices, heuristic)["policies"]
    means = {g: m.mean(axis=0) for g, m in matrices.items()}
    oracle = means.get(ORACLE, means[heuristic])
    headroom = oracle - 1.0
    baselines = [g for g in matrices if g not in learned and g not in (heuristic, ORACLE, "random")]
    rows = {}
    for t, scen in enumerate(scenarios):
        best = max(baselines, key=lambda g: means[g][t]) if baselines else None
        row = {"heuristic": 1.0, "oracle": float(oracle[t]), "headroom": float(headroom[t]),
               "best_baseline": best, "best_baseline_score": float(means[best][t]) if best else None,
               "random": float(means["random"][t]) if "random" in means else None, "learned": {}}
        for g in learned:
            runs = matrices[g][:, t]
            row["learned"][g] = {"mean": float(runs.mean()), "min_run": float(runs.min()),
                                 "max_run": float(runs.max()), "runs": runs.tolist(),
                                 "gap_closed": float((runs.mean() - 1.0) / headroom[t]) if headroom[t] > 1e-3
                                 else None}
        rows[scen] = row
    overall = {}
    total = float(headroom.sum())
    for g in learned:
        overall[g] = {**agg[g], "n_runs": int(matrices[g].shape[0]),
                      "gap_closed": float((means[g] - 1.0).sum() / total) if total > 1e-6 else None,
                      "worst_scenario": scenarios[int(np.argmin(means[g]))],
                      "worst_scenario_mean": float(means[g].min())}
    return {"env": env_id, "heuristic": heuristic, "per_scenario": rows, "learned": overall,
            "policies": agg,
            "greedy": True}


def _acting(s: dict) -> str:
    return "act greedily" if s.get("greedy", True) else "sample their actions (not the greedy headline)"


def format_benchmark(s: dict) -> str:
    """The benchmark as a terminal table."""
    h = s["heuristic"]
    learned = list(s["learned"])
    head = (f"{s['env']} benchmark '{s['benchmark']}', {s['split']} split: {len(s['per_scenario'])} scenarios x "
            f"{s['seeds']} seeds; scores = mean reward / {h}'s (1.0); learned policies {_acting(s)}")
    cols = (f"{'scenario':32}{'oracle':>8}{'best baseline':>26}"
            + "".join(f"{g[8:][:28]:>30}" for g in learned))
    lines = [head, cols]
    for scen, r in s["per_scenario"].items():
        base = f"{r['best_baseline']} {r['best_baseline_score']:.3f}" if r["best_baseline"] else "-"
        cells = ""
        for g in learned:
            x = r["learned"][g]
            closed = f" ({x['gap_closed']:+.0%})" if x["gap_closed"] is not None else ""
            cells += " " + f"{x['mean']:.3f} [{x['min_run']:.3f}, {x['max_run']:.3f}]{closed}".rjust(29)
        lines.append(f"{scen[:31]:32}{r['oracle']:>8.3f} {base:>25}{cells}")
    lines.append("")
    lines.append(f"{'policy':34}{'IQM':>8}{'95% CI':>18}{'mean':>8}{'P(>' + h + ')':>12}")
    for g, a in sorted(s["policies"].items(), key=lambda kv: -kv[1]["iqm"]):
        ci = f"[{a['iqm_ci'][0]:.3f}, {a['iqm_ci'][1]:.3f}]"
        lines.append(f"{g[:33]:34}{a['iqm']:>8.3f}{ci:>18}{a['mean']:>8.3f}{a['prob_improvement']:>12.2f}")
    for g, o in s["learned"].items():
        closed = f"{o['gap_closed']:.0%}" if o["gap_closed"] is not None else "n/a (no headroom)"
        lines.append(f"{g}: {o['n_runs']} training runs x {len(s['per_scenario'])} scenarios (the unit); "
                     f"IQM {o['iqm']:.3f} [{o['iqm_ci'][0]:.3f}, {o['iqm_ci'][1]:.3f}], {h}-to-oracle gap "
                     f"closed {closed}, worst scenario {o['worst_scenario']} at {o['worst_scenario_mean']:.3f}")
    return "\n".join(lines)


def describe_distribution(dist) -> str:
    """A distribution in one phrase, e.g. "512 scenarios drawn over model ∈ {gpt3-175b, ...}, batch 16–128"."""
    parts = []
    keys = sorted({k for v in dist.variants for k in v})
    for k in keys:
        parts.append(f"{k} in {{{', '.join(str(v.get(k)) for v in dist.variants)}}}")
    parts += [f"{k} in {{{', '.join(map(str, v))}}}" for k, v in dist.choices.items()]
    for k, spec in dist.ranges.items():
        lo, hi = spec["log"] if isinstance(spec, dict) else spec
        parts.append(f"{k} {lo:g}-{hi:g}")
    return f"{dist.size} scenarios drawn over " + "; ".join(parts)


def headline(summary: dict, trained_on: str) -> str:
    """One sentence per learned run group: what it was trained on, its test-split IQM against the heuristic
    with the CI, and where it wins and loses."""
    h = summary["heuristic"]
    out = []
    for g, o in summary["learned"].items():
        per = {s: r["learned"][g]["mean"] for s, r in summary["per_scenario"].items()}
        wins = [f"{s} {v:.3f}" for s, v in sorted(per.items(), key=lambda kv: -kv[1]) if v > 1.005]
        losses = [f"{s} {v:.3f}" for s, v in sorted(per.items(), key=lambda kv: kv[1]) if v < 0.995]
        ties = [s for s, v in per.items() if 0.995 <= v <= 1.005]
        ci = o["iqm_ci"]
        verdict = "above" if ci[0] > 1.0 else "below" if ci[1] < 1.0 else "not distinguishable from"
        out.append(
            f"{g} ({o['n_runs']} training runs, {'greedy' if summary.get('greedy', True) else 'sampled'}), trained on {trained_on}: on the {summary['split']} split's "
            f"{len(per)} held-out scenarios it scores IQM {o['iqm']:.3f} of {h} (95% CI [{ci[0]:.3f}, {ci[1]:.3f}], "
            f"{verdict} {h}); wins on {', '.join(wins) or 'none'}; loses on {', '.join(losses) or 'none'}"
            + (f"; ties on {', '.join(ties)}" if ties else "") + ".")
    return "\n".join(out)
