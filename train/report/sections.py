"""The report's sections, each a list of blocks (`render`): the headline, the benchmark, scores, per scenario,
learning curves, decisions, the time breakdown and the about notes (the paper reproduction is in
`reproduction`)."""

from __future__ import annotations

import datetime as _dt

import numpy as np

from ..evaluation import benchmark
from .data import mean_over_seeds, ordered_policies, read_learning_curves, reference_returns, score_profile, trained_on
from .plots import (MARKS, MIN_VISIBLE, PALETTE, plot_breakdown, plot_panels, plot_performance_profile, plot_scores,
                    to_png)
from .render import Image, Lead, Subheading, Table, fmt

KEY_METRICS = ("iteration_time_s", "speedup", "tokens_per_s", "migration_bytes", "hbm_used_frac", "energy_j")
OUTCOMES = ("reward", "iteration_time_s", "speedup", "tokens_per_s")  # per-step metrics plotted first
MAX_METRIC_COLUMNS = 6
MAX_PANELS = 6
WIN, LOSE = 1.005, 0.995  # a mean score above WIN wins against the heuristic, below LOSE loses


def verdict(ci, reference: float = 1.0) -> str:
    """Where a 95% CI lies against the reference: 'above', 'below' or 'not distinguishable from'."""
    lo, hi = ci
    return "above" if lo > reference else "below" if hi < reference else "not distinguishable from"


def headline_sentences(res: dict) -> tuple[list, str]:
    """The headline as sentences and where they come from ('summary', 'benchmark' or 'derived'): summary.json's
    `headline` (the demo writes it), else `benchmark.headline` over benchmark.json, else one sentence per
    learned policy (best first, at most three) from summary.json and results.csv: its IQM against the
    heuristic with the CI and the scenarios it wins (mean score > WIN) and loses (< LOSE), with the figures."""
    summary, bench = res["summary"], res["benchmark"]
    if summary.get("headline"):
        return [line for line in str(summary["headline"]).splitlines() if line.strip()], "summary"
    if bench and bench.get("learned"):
        lines = [benchmark.headline({**bench, "learned": {g: o}}, trained_on(res, g)) for g, o in bench["learned"].items()]
        return lines, "benchmark"
    stats, heur = summary.get("policies") or {}, summary.get("heuristic", "the heuristic")
    order = ordered_policies(summary)
    learned = [p for p in order if stats[p].get("kind") == "learned"]
    if not learned:
        best = next((p for p in order if stats[p].get("kind") not in ("heuristic", "oracle")), None)
        if best is None:
            return [f"No learned policy and no baseline besides {heur} and the oracle in this evaluation."], "derived"
        s = stats[best]
        return [f"No learned policy in this evaluation; the best policy besides the oracle is {best}: IQM "
                f"{fmt(s.get('iqm'))} of {heur} (95% CI {fmt(s.get('iqm_ci'))}, {verdict(s['iqm_ci'])} {heur})."
                if s.get("iqm_ci") else f"No learned policy in this evaluation; the best besides the oracle is "
                f"{best}."], "derived"
    table = res["table"]
    per = table.groupby(["policy", "scenario"]).score_vs_heuristic.mean() if not table.empty else None
    n_scen, out = len(summary.get("scenarios") or {}), []
    for i, p in enumerate(learned[:3]):
        s = stats[p]
        scen = per.loc[p].to_dict() if per is not None and p in per.index.get_level_values(0) else {}
        scen = {k: scen[k] for k in [*(summary.get("scenarios") or {}), *scen] if k in scen}  # the summary's order
        wins = [f"{k} {fmt(v)}" for k, v in sorted(scen.items(), key=lambda kv: -kv[1]) if v > WIN]
        losses = [f"{k} {fmt(v)}" for k, v in sorted(scen.items(), key=lambda kv: kv[1]) if v < LOSE]
        ties = [k for k, v in scen.items() if LOSE <= v <= WIN]
        ci = s.get("iqm_ci") or [s.get("iqm"), s.get("iqm")]
        who = f"Best of {len(learned)} learned policies, {p}" if i == 0 and len(learned) > 1 else p
        out.append(f"{who}, trained on {trained_on(res, p)}: over {summary.get('seeds', '?')} seeds × {n_scen} "
                   f"scenarios it scores IQM {fmt(s.get('iqm'))} of {heur} (95% CI {fmt(ci)}, {verdict(ci)} "
                   f"{heur}); wins on {', '.join(wins) or 'none'}; loses on {', '.join(losses) or 'none'}"
                   + (f"; ties on {', '.join(ties)}" if ties else "") + " (mean score per scenario).")
    if len(learned) > 3:
        out.append(f"{len(learned) - 3} more learned policies are in the table below.")
    return out, "derived"


def section_headline(res: dict) -> list:
    summary = res["summary"]
    stats, heur = summary.get("policies") or {}, summary.get("heuristic", "heuristic")
    if not stats:
        return ["summary.json lists no policies."]
    sentences, source = headline_sentences(res)
    blocks = [Lead(t) for t in sentences]
    if source != "derived" and res["benchmark"]:
        blocks.append("The figures above are the benchmark's (unit: training run × scenario; see Benchmark); "
                      "the table below scores every evaluated policy, each training seed on its own.")
    rows, classes = [], []
    for p in ordered_policies(summary):
        s, kind = stats[p], stats[p].get("kind", "")
        prob = "–" if p == heur else f"{fmt(s.get('prob_improvement'))} {fmt(s.get('prob_improvement_ci'))}"
        rows.append([p + MARKS.get(kind, ""), kind, fmt(s.get("iqm")), fmt(s.get("iqm_ci")), fmt(s.get("mean")),
                     prob, fmt(s.get("iqm_vs_oracle")), fmt(s.get("optimality_gap"))])
        classes.append(kind)
    header = ["Policy", "Kind", "IQM score", "95% CI", "Mean", f"P(improvement over {heur})", "IQM vs oracle",
              "Optimality gap"]
    return blocks + [
        Table(header, rows, classes),
        f"Score = mean reward divided by {heur}'s on the same scenario and seed: {heur} ★ scores exactly 1, "
        f"higher is better; the oracle ◆ is the environment's exhaustive search (per step, or over static plans, "
        f"which a per-step policy can beat: the environment's card says which). IQM: "
        f"interquartile mean over {summary.get('seeds', '?')} seeds × {len(summary.get('scenarios') or {})} "
        f"scenarios, with a 95% stratified-bootstrap confidence interval."]


def section_benchmark(res: dict) -> list:
    """benchmark.json (`memgym benchmark`): per scenario the oracle, its headroom over the heuristic, the best
    baseline and each learned group's mean with its [min, max] over training runs and the share of the gap it
    closed; the learned groups' aggregates; the protocol."""
    b = res["benchmark"]
    heur, per, learned = b.get("heuristic", "the heuristic"), b.get("per_scenario") or {}, b.get("learned") or {}
    header = ["Scenario", "oracle", "headroom", "best baseline"]
    for g in learned:
        header += [f"{g} mean", "[min, max] over runs", "gap closed"]
    rows = []
    for scen, r in per.items():
        row = [scen, fmt(r.get("oracle")), fmt(r.get("headroom")),
               f"{r['best_baseline']} {fmt(r.get('best_baseline_score'))}" if r.get("best_baseline") else "–"]
        for g in learned:
            x = (r.get("learned") or {}).get(g) or {}
            row += [fmt(x.get("mean")), fmt([x.get("min_run"), x.get("max_run")]),
                    "–" if x.get("gap_closed") is None else f"{x['gap_closed']:+.0%}"]
        rows.append(row)
    blocks = [Table(header, rows)]
    if learned:
        blocks += [Subheading("Learned policies over all scenarios"), Table(
            ["Policy", "training runs", "IQM", "95% CI", "mean", f"P(improvement over {heur})", "gap closed",
             "worst scenario"],
            [[g, fmt(o.get("n_runs")), fmt(o.get("iqm")), fmt(o.get("iqm_ci")), fmt(o.get("mean")),
              fmt(o.get("prob_improvement")), "–" if o.get("gap_closed") is None else f"{o['gap_closed']:.0%}",
              f"{o.get('worst_scenario', '–')} {fmt(o.get('worst_scenario_mean'))}"] for g, o in learned.items()],
            ["learned"] * len(learned))]
    blocks.append(
        f"Benchmark `{b.get('benchmark', '?')}`, {b.get('split', '?')} split: {len(per)} held-out scenarios × "
        f"{b.get('seeds', '?')} evaluation seeds, scores = mean reward / {heur}'s (1.0). Protocol: learned "
        f"policies act greedily (argmax over the masked logits; an ordinal head's bin nearest its mean); the unit is a training run × scenario (a run's "
        f"score on a scenario is its mean over the evaluation episodes), and IQM, mean and P(improvement) use a "
        f"stratified bootstrap over runs within each scenario; other policies are deterministic, their unit is an "
        f"evaluation episode × scenario. Headroom = oracle − 1; gap closed = (learned − 1) / headroom per scenario "
        f"(– where the headroom is under 0.001), overall Σ(learned − 1) / Σ headroom.")
    return blocks


def section_scores(res: dict) -> list:
    summary = res["summary"]
    if not summary.get("policies"):
        return ["No scores to plot."]
    blocks = [Image("scores", to_png(plot_scores(summary, res["colors"])), "IQM normalised scores with 95% CIs"),
              "Dots: IQM score; shaded bars with caps: 95% confidence interval (caps alone where it is narrow); "
              "dashed line: the reference (1.0)."]
    if prof := score_profile(res):
        blocks += [Subheading("Performance profile"),
                   Image("profile", to_png(plot_performance_profile(prof, summary, res["colors"])),
                         "performance profile"),
                   f"Fraction of runs (seeds × scenarios) scoring above τ, over the whole range of scores "
                   f"({fmt(prof['taus'][0])} to {fmt(prof['taus'][-1])}); a curve further right dominates."]
    return blocks


def section_per_scenario(res: dict) -> list:
    table, summary = res["table"], res["summary"]
    if table.empty:
        return ["results.csv is missing or empty."]
    order = list(dict.fromkeys(ordered_policies(summary) + list(table.policy.unique())))
    scen = list(dict.fromkeys(table.scenario))
    means = table.pivot_table(index="policy", columns="scenario", values="score_vs_heuristic", aggfunc="mean")
    overall = table.groupby("policy").score_vs_heuristic.mean()
    blocks = [Table(["Policy", *scen, "all"], [[p, *(fmt(means.loc[p, s]) for s in scen), fmt(overall[p])]
                                               for p in order if p in means.index]),
              f"Mean score vs {summary.get('heuristic', 'the heuristic')} per scenario (mean over seeds)."]
    if summary.get("scenarios"):
        overrides = {k: ", ".join(f"{a}={b}" for a, b in (v or {}).items()) for k, v in summary["scenarios"].items()}
        blocks.append("Scenarios: " + "; ".join(f"{k} ({v or 'defaults'})" for k, v in overrides.items()) + ".")
    metric_cols = [c for c in table.columns if c.startswith("metric_")]
    if metric_cols:
        chosen = [f"metric_{m}" for m in KEY_METRICS if f"metric_{m}" in metric_cols]
        chosen += [c for c in metric_cols if c not in chosen][: max(0, MAX_METRIC_COLUMNS - len(chosen))]
        raw = table.groupby("policy")[chosen].mean()
        blocks += [Subheading("Environment metrics"),
                   Table(["Policy", *(c[len("metric_"):] for c in chosen)],
                         [[p, *(fmt(raw.loc[p, c]) for c in chosen)] for p in order if p in raw.index]),
                   "Episode means of the raw metrics over all scenarios and seeds (units in the names)."]
        if rest := [c[len("metric_"):] for c in metric_cols if c not in chosen]:
            blocks.append("Other metrics in results.csv: " + ", ".join(rest) + ".")
    return blocks


def section_learning(res: dict) -> list:
    runs = res["summary"].get("runs") or []
    if not runs:
        return ["No training runs were part of this evaluation, so there are no learning curves; pass run "
                "folders with `memgym evaluate --checkpoints RUN ...` to include them."]
    curves, missing = read_learning_curves(runs, res["dir"])
    blocks = ["No TensorBoard event files found in: " + ", ".join(missing) + "."] if missing else []
    run_colors = {r: PALETTE[i % len(PALETTE)] for i, r in enumerate(dict.fromkeys(c["run"] for c in curves))}
    lines = [(run, run_colors[run], mean_over_seeds([c["scalars"] for c in curves if c["run"] == run]))
             for run in run_colors]  # one line per run: the mean over its seeds, the min-max band shaded
    refs = {}
    for c in curves:
        for name, value in reference_returns(c["scalars"]).items():
            refs.setdefault(name, []).append(value)
    if any("rollout/ep_rew_mean" in c["scalars"] for c in curves):
        dashed = [(f"{k} (reference)", res["colors"].get(k, "#444"), float(np.mean(v))) for k, v in refs.items()]
        blocks += [Image("learning", to_png(plot_panels(lines, ["rollout/ep_rew_mean"], "environment steps",
                                                        refs={"rollout/ep_rew_mean": dashed})),
                         "episode return in training"),
                   f"Mean episode return (sampled actions) against environment steps: one line per run, the mean "
                   f"over its training seeds with their min-max range shaded ({len(curves)} seed log folders from "
                   f"{len(run_colors)} run{'s' * (len(run_colors) != 1)}); dashed: the heuristic's return on the "
                   f"training scenario or distribution (`baseline/<name>/ep_rew_mean`)."]
    elif curves:
        blocks.append("The runs hold no `rollout/ep_rew_mean` scalars.")
    key_first = lambda t: (KEY_METRICS.index(t[4:]) if t[4:] in KEY_METRICS else len(KEY_METRICS), t)  # noqa: E731
    if env_tags := sorted({t for c in curves for t in c["scalars"] if t.startswith("env/")}, key=key_first):
        blocks += [Subheading("Environment metrics during training"),
                   Image("env-metrics", to_png(plot_panels(lines, env_tags[:MAX_PANELS], "environment steps")),
                         "env/* tags")]
        if len(env_tags) > MAX_PANELS:
            blocks.append(f"{len(env_tags) - MAX_PANELS} more env/* tags are in the event files.")
    return blocks


def section_decisions(res: dict) -> list:
    dec = res["decisions"] or {}
    pols = dec.get("policies") or {}
    if not pols:
        return ["No decisions.json in the results folder."]
    blocks = [f"Scenario {dec.get('scenario', '?')}, seed {dec.get('seed', '?')}: what each policy decides at "
              f"every step of one episode (above) and what it gets (below)."]
    for field, name, limit in (("actions", "actions", MAX_PANELS), ("metrics", "outcomes", 3)):
        keys = list(dict.fromkeys(k for d in pols.values() for k in (d.get(field) or {})))
        keys = sorted(keys, key=lambda k: OUTCOMES.index(k) if k in OUTCOMES else len(OUTCOMES))[:limit]
        lines = [(p, res["colors"].get(p), {k: (d.get("step") or list(range(len(y))), y)
                                             for k, y in (d.get(field) or {}).items()}) for p, d in pols.items()]
        if keys:
            blocks.append(Image(name, to_png(plot_panels(lines, keys, "step", steps=field == "actions")),
                                f"{name} by step"))
    return blocks


def section_breakdown(res: dict) -> list:
    bd = res["breakdown"] or {}
    pols = {p: d["parts"] for p, d in (bd.get("policies") or {}).items() if d.get("parts")}
    if not pols:
        return ["No breakdown.json in the results folder."]
    parts = list(dict.fromkeys(k for d in pols.values() for k in d))
    return [f"Scenario {bd.get('scenario', '?')}: where each policy's iteration time goes (mean seconds per part).",
            Image("breakdown", to_png(plot_breakdown(pols, parts)), "stacked time breakdown per policy"),
            f"Parts under {MIN_VISIBLE:.1%} of the longest bar are drawn hatched at that width, their value written "
            f"beside the bar.",
            Table(["Policy", *parts, "total"],
                  [[p, *(fmt(d.get(k)) for k in parts), fmt(sum(d.values()))] for p, d in pols.items()])]


def section_about(res: dict) -> list:
    s = res["summary"]
    heur, oracle, scen = s.get("heuristic", "the heuristic"), s.get("oracle", "oracle"), s.get("scenarios") or {}
    made = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return [f"Scores: 1.0 = the paper's heuristic ({heur}) on the same scenario and seed; above 1 is better. The "
            f"oracle (`{oracle}`: exhaustive search over the discretised actions, per step or over static plans as "
            f"the environment's card says) scores "
            f"{fmt(((s.get('policies') or {}).get(oracle) or {}).get('iqm'))} (IQM); "
            f"'IQM vs oracle' is the fraction of it a policy reaches.",
            f"{s.get('seeds', '?')} seeds × {len(scen)} scenarios ({', '.join(scen) or '–'}) on "
            f"{s.get('env', '?')}. "
            f"IQM and 95% CIs by stratified bootstrap (rliable); P(improvement): the chance that a run of the "
            f"policy beats {heur} on the same scenario; optimality gap: mean shortfall of the score vs the oracle "
            f"below 1.0 (0 = the oracle).",
            f"Made {made} by `memgym report` from `{res['dir']}` (evaluated {s.get('created', '?')}, config "
            f"`{s.get('config') or '–'}`)."]
