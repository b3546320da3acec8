"""A tiny fake `memgym evaluate` results folder for the report tests: results.csv, summary.json,
decisions.json, breakdown.json, optionally reproduce.json, a `memgym benchmark` benchmark.json and one training
run (config.yaml and real TensorBoard event files). No JAX and no simulator: the numbers are made up but
consistent (scores are ratios to the heuristic)."""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
import pandas as pd

SCENARIOS = {"short": {"context": 512}, "long": {"context": 4096, "batch": 16}}
LEVELS = {"h2m2": 1.0, "oracle": 1.15, "random": 0.62, "a_major": 0.93}  # mean score vs the heuristic
KINDS = {"h2m2": "heuristic", "oracle": "oracle", "random": "random", "a_major": "baseline"}
ACTIONS = ("hbm_share_attention", "hbm_share_qkv", "hbm_share_fc")
TRAIN_STEPS = (256, 512, 768, 1024, 1280)
RUN_CONFIG = {"name": "ppo-tiny", "env": "memgym/KernelMapping-v0", "env_params": {"model": "gpt3-175b", "batch": 32},
              "algorithm": "ppo_jax", "n_seeds": 3}
BENCH_RUNS = {"short": [1.05, 1.06, 1.07], "long": [0.95, 0.97, 0.99]}  # three training runs' mean scores
ENV_TAGS = ("env/iteration_time_s", "env/speedup", "env/hbm_share_attention")


def iqm(x) -> float:
    x = np.sort(np.ravel(x))
    n = len(x)
    return float(x[n // 4: n - n // 4].mean())


def write_event_file(logdir, scalars: dict) -> bool:
    """Write {tag: [(step, value), ...]} to a TensorBoard event file in `logdir` with tensorboard's own
    writer (or torch's SummaryWriter); False if neither is available."""
    logdir = pathlib.Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return False
        with SummaryWriter(str(logdir)) as w:
            for tag, points in scalars.items():
                for step, value in points:
                    w.add_scalar(tag, value, step)
        return True
    writer = EventFileWriter(str(logdir))
    for tag, points in scalars.items():
        for step, value in points:
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])
            writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))
    writer.close()
    return True


def build_results(root, *, seeds: int = 10, learned: str = "ppo", with_runs: bool = True,
                  with_reproduce: bool = True, with_benchmark: bool = True) -> pathlib.Path:
    """Write a fake results folder under `root/results` (and a run under `root/runs`); return its path."""
    root = pathlib.Path(root)
    out = root / "results"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    levels = {**LEVELS, learned: 1.04}
    kinds = {**KINDS, learned: "learned"}
    rows = []
    for scen in SCENARIOS:
        base = rng.uniform(0.8, 1.2, seeds)  # the heuristic's mean reward per seed
        best = base * levels["oracle"] * rng.uniform(0.99, 1.01, seeds)
        for p, level in levels.items():
            mean_r = base if p == "h2m2" else best if p == "oracle" else base * level * rng.normal(1, 0.04, seeds)
            if p not in ("h2m2", "oracle"):
                mean_r = mean_r * np.where(np.arange(seeds) == 0, 1.6, 1.0)  # an outlier: mean and IQM differ
            for s in range(seeds):
                rows.append({"policy": p, "kind": kinds[p], "scenario": scen, "seed": s,
                             "episode_return": 16 * mean_r[s], "mean_reward": mean_r[s],
                             "score_vs_heuristic": mean_r[s] / base[s], "score_vs_oracle": mean_r[s] / best[s],
                             "metric_iteration_time_s": 0.05 / level, "metric_tokens_per_s": 4000 * level,
                             "metric_migration_bytes": 3.2e9 * rng.uniform(), "metric_hbm_used_frac": 0.9,
                             "metric_energy_j": 12.5, "metric_speedup": 1.4 * level,
                             **{f"metric_{a}": rng.uniform() for a in ACTIONS}, "metric_projected": 0.0})
    table = pd.DataFrame(rows)
    table.to_csv(out / "results.csv", index=False)

    def matrix(p, col):
        return table[table.policy == p].pivot(index="seed", columns="scenario", values=col).to_numpy()

    taus = np.linspace(0.5, 1.5, 21)
    heur = matrix("h2m2", "score_vs_heuristic")
    policies, curves = {}, {}
    for p in levels:
        sc, so = matrix(p, "score_vs_heuristic"), matrix(p, "score_vs_oracle")
        boot = [iqm(sc[rng.integers(0, seeds, seeds)]) for _ in range(200)]
        prob = float(np.mean([(sc[:, j, None] > heur[None, :, j]).mean() for j in range(sc.shape[1])]))
        policies[p] = {"kind": kinds[p], "iqm": iqm(sc), "iqm_ci": [float(np.percentile(boot, 2.5)),
                                                                      float(np.percentile(boot, 97.5))],
                       "mean": float(sc.mean()), "mean_ci": [float(sc.mean()) - 0.02, float(sc.mean()) + 0.02],
                       "prob_improvement": 0.5 if p == "h2m2" else prob,
                       "prob_improvement_ci": [0.5, 0.5] if p == "h2m2" else [max(prob - 0.1, 0), min(prob + 0.1, 1)],
                       "optimality_gap": float(np.maximum(1 - sc, 0).mean()),
                       "iqm_vs_oracle": iqm(so), "iqm_vs_oracle_ci": [iqm(so) - 0.01, iqm(so) + 0.01]}
        curves[p] = [float((sc > t).mean()) for t in taus]

    runs = []
    if with_runs:
        run = root / "runs" / f"{learned}-tiny"
        for i in range(2):  # the JAX trainer writes one folder per seed
            ok = write_event_file(run / "tb" / "ppo_jax" / f"seed_{i}", {
                "rollout/ep_rew_mean": [(s, 10 + 4 * k + i) for k, s in enumerate(TRAIN_STEPS)],
                "baseline/h2m2/ep_rew_mean": [(s, 24.0) for s in TRAIN_STEPS],
                **{tag: [(s, j + 0.1 * k) for k, s in enumerate(TRAIN_STEPS)] for j, tag in enumerate(ENV_TAGS)}})
        if ok:
            runs.append(str(run))
            (run / "config.yaml").write_text(json.dumps(RUN_CONFIG))  # JSON is YAML
    summary = {"env": "KernelMapping-v0", "heuristic": "h2m2", "oracle": "oracle", "seeds": seeds,
               "scenarios": SCENARIOS, "policies": policies,
               "performance_profile": {"taus": taus.tolist(), "curves": curves}, "runs": runs,
               "created": "2025-01-01T00:00:00+00:00", "config": "configs/experiments/tiny.yaml"}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))

    steps = list(range(16))
    decisions = {"scenario": "short", "seed": 0, "policies": {
        p: {"step": steps,
            "actions": {a: [round(float(x), 2) for x in np.clip(0.5 + 0.3 * np.sin(np.arange(16) / (3 + j + k)), 0, 1)]
                        for j, a in enumerate(ACTIONS)},
            "metrics": {"iteration_time_s": [0.05 / levels[p] * (1 + 0.01 * t) for t in steps],
                        "speedup": [1.4 * levels[p]] * 16, "reward": [levels[p]] * 16}}
        for k, p in enumerate(("h2m2", "oracle", learned))}}
    (out / "decisions.json").write_text(json.dumps(decisions))
    breakdown = {"scenario": "short", "policies": {  # migration: far too small to see at the bars' scale
        p: {"parts": {"attention_hbm": 0.01 / levels[p], "attention_lpddr": 0.02, "qkv_hbm": 0.008,
                      "fc_lpddr": 0.012, "migration": 2e-5}} for p in ("h2m2", "oracle", learned)}}
    (out / "breakdown.json").write_text(json.dumps(breakdown))
    if with_reproduce:
        reproduce = {
            "h2m2": {m: {"speedup_h2m2": s, "speedup_oracle": s * 1.03, "paper_h2m2": paper, "batch": 8,
                         "h2m2_over_oracle": 1 / 1.03, "contexts": [512, 1024], "paper": {"h2m2": paper}}
                     for m, s, paper in (("gpt3-175b", 1.41, 1.46), ("chinchilla-70b", 1.52, 1.55),
                                         ("llama2-70b", 2.9, 2.94))},
            "hybridserve": {"opt-30b": {"local_hit_rate": 0.87, "paper": {"local_hit_rate": 0.9}}}}
        reproduce["h2m2"]["dynamic"] = {"speedup_h2m2": 1.45, "speedup_flexgen_static": 1.22,
                                        "paper": {"h2m2": 1.48, "flexgen_static": 1.25}}
        (out / "reproduce.json").write_text(json.dumps(reproduce, indent=1))
    if with_benchmark:
        (out / "benchmark.json").write_text(json.dumps(benchmark_summary(f"learned:{learned}-tiny"), indent=1))
    return out


def benchmark_summary(group: str) -> dict:
    """A benchmark.json as `memgym benchmark` writes it: one learned group of three training runs that wins on
    'short' and loses on 'long'; the statistics are consistent with `BENCH_RUNS` (the CI is made up)."""
    oracle = {"short": 1.15, "long": 1.10}
    per = {}
    for scen, runs in BENCH_RUNS.items():
        mean, headroom = float(np.mean(runs)), oracle[scen] - 1.0
        per[scen] = {"heuristic": 1.0, "oracle": oracle[scen], "headroom": headroom, "best_baseline": "a_major",
                     "best_baseline_score": 0.93, "random": 0.62,
                     "learned": {group: {"mean": mean, "min_run": min(runs), "max_run": max(runs), "runs": runs,
                                         "gap_closed": (mean - 1.0) / headroom}}}
    scores = np.array(list(BENCH_RUNS.values())).T  # [runs, scenarios]
    means = scores.mean(axis=0)
    agg = {"iqm": iqm(scores), "iqm_ci": [0.97, 1.05], "mean": float(scores.mean()), "mean_ci": [0.98, 1.04],
           "optimality_gap": float(np.maximum(1 - scores, 0).mean()), "prob_improvement": 0.5,
           "prob_improvement_ci": [0.2, 0.8]}
    learned = {group: {**agg, "n_runs": 3, "gap_closed": float((means - 1).sum() / sum(v - 1 for v in oracle.values())),
                       "worst_scenario": "long", "worst_scenario_mean": float(means.min())}}
    return {"env": "KernelMapping-v0", "heuristic": "h2m2", "per_scenario": per, "learned": learned,
            "policies": {group: agg}, "greedy": True, "benchmark": "kernel-mapping", "split": "test", "seeds": 10,
            "source": "configs/benchmarks/kernel-mapping.yaml", "scenarios": SCENARIOS}
