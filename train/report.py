"""`memgym report RESULTS_DIR -o report.html`: one self-contained HTML page (plus a Markdown twin) from the
folder that `memgym evaluate` writes, readable without TensorBoard.

The page opens with a headline sentence (what the learned policy was trained on, its IQM against the heuristic
with the CI, the scenarios it wins and loses), then a Benchmark section when `memgym benchmark` wrote
benchmark.json. It embeds every plot as a base64 PNG, carries its CSS inline and loads nothing from outside;
the Markdown twin (`report.md`) saves its plots as PNG files in `report_files/`. Both are rendered from one
list of sections, each a list of blocks (a paragraph string, Lead, Table, Image or Subheading): the page by
the Jinja2 template `templates/report.html.j2`, the twin by `render_markdown`; both written atomically.
Plots use matplotlib's object-oriented API on the Agg canvas (no pyplot, no global state); the plot functions
return the Figure (the tests read its axes) and `to_png` renders it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import logging
import math
import pathlib
import re
import urllib.parse
from collections import namedtuple

import numpy as np
import pandas as pd

from .files import write_atomic

log = logging.getLogger(__name__)

SECTIONS = {"headline": "Headline", "benchmark": "Benchmark", "scores": "Normalised scores",
            "per-scenario": "Per scenario",
            "learning": "Learning curves", "decisions": "Decisions over one episode",
            "breakdown": "Time breakdown", "reproduction": "Paper reproduction", "about": "About this report"}
KEY_METRICS = ("iteration_time_s", "speedup", "tokens_per_s", "migration_bytes", "hbm_used_frac", "energy_j")
OUTCOMES = ("reward", "iteration_time_s", "speedup", "tokens_per_s")  # per-step metrics plotted first
MAX_METRIC_COLUMNS = 6
MAX_PANELS = 6
MAX_WIDE_COLUMNS = 10  # a reproduction table with more columns is shown transposed
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b", "#bcbd22")
KIND_COLORS = {"heuristic": "#222222", "oracle": "#b8860b", "random": "#9a9a9a"}
MARKS = {"heuristic": " ★", "oracle": " ◆"}
NUMERIC = re.compile(r"^([-+\[–]|\d)")  # table cells right-aligned as numbers

Table = namedtuple("Table", "header rows row_classes", defaults=(None,))
Image = namedtuple("Image", "name png alt")
Subheading = namedtuple("Subheading", "text")
Lead = namedtuple("Lead", "text")  # the headline sentence, set apart at the top


def fmt(x) -> str:
    """A number to 3 significant digits ('–' when missing); thousands separated, huge or tiny ones in
    scientific notation; a pair [lo, hi] as an interval; anything else as text."""
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(map(fmt, x)) + "]"
    if x is None or isinstance(x, (bool, str)):
        return "–" if x is None else str(x)
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}" if abs(x) >= 10_000 else str(int(x))
    a = abs(x := float(x))
    if not math.isfinite(x) or a == 0:
        return "0" if a == 0 else "–"
    if a >= 1e6 or a < 1e-3:
        return f"{x:.2e}"
    return f"{float(f'{x:.3g}'):,.0f}" if a >= 1e3 else f"{x:#.3g}".rstrip(".")


def read_json(path: pathlib.Path):
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); re-run `memgym evaluate` to rewrite it") from e


def load_results(results_dir) -> dict:
    """summary.json (required), results.csv, decisions.json, breakdown.json, reproduce.json, benchmark.json
    (optional)."""
    d = pathlib.Path(results_dir)
    summary = read_json(d / "summary.json")
    if summary is None:
        raise ValueError(f"{d}: no summary.json, so not a results folder; make one with "
                         f"`memgym evaluate --config CONFIG -o {d}`")
    table = (pd.read_csv(d / "results.csv") if (d / "results.csv").is_file()
             else pd.DataFrame(columns=["policy", "kind", "scenario", "score_vs_heuristic"]))
    return {"dir": d, "summary": summary, "table": table,
            **{k: read_json(d / f"{k}.json") for k in ("decisions", "breakdown", "reproduce", "benchmark")}}


def ordered_policies(summary: dict) -> list:
    """The summary's policies, best IQM score first."""
    stats = summary.get("policies") or {}
    return sorted(stats, key=lambda p: (-stats[p].get("iqm", -math.inf), p))


def policy_colors(res: dict) -> dict:
    """One colour per policy for every plot: black heuristic, gold oracle, grey random, learned first."""
    summary, table = res["summary"], res["table"]
    kinds = dict(zip(table.policy, table["kind"])) if "kind" in table else {}
    kinds.update({p: s.get("kind") for p, s in (summary.get("policies") or {}).items()})
    kinds.update({summary.get("heuristic"): "heuristic", summary.get("oracle"): "oracle"})
    for extra in ("decisions", "breakdown"):
        kinds.update({p: kinds.get(p) for p in ((res[extra] or {}).get("policies") or {})})
    others = sorted((p for p in kinds if kinds[p] not in KIND_COLORS), key=lambda p: (kinds[p] != "learned", p))
    colors = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(others)}
    return colors | {p: KIND_COLORS[k] for p, k in kinds.items() if k in KIND_COLORS}


def read_learning_curves(run_paths, results_dir=".") -> tuple[list, list]:
    """Every folder holding TensorBoard event files under each run folder (one per seed or sub-run) as
    {"run", "part", "scalars": {tag: (steps, values)}}, and the run paths where none was found."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves, missing = [], []
    for raw in run_paths:
        run = pathlib.Path(raw)
        if not run.is_absolute() and not run.exists():
            run = pathlib.Path(results_dir) / run
        folders = sorted({p.parent for p in run.rglob("events.out.tfevents.*")}) if run.is_dir() else []
        if not folders:
            missing.append(str(raw))
        for folder in folders:
            acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
            acc.Reload()
            scalars = {tag: tuple(map(np.array, zip(*sorted((e.step, e.value) for e in acc.Scalars(tag)))))
                       for tag in acc.Tags()["scalars"]}
            curves.append({"run": run.name, "part": str(folder.relative_to(run)), "scalars": scalars})
    return curves, missing


def new_figure(nrows=1, ncols=1, size=(8.5, 3.6)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def to_png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def outside_legend(ax) -> None:
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))


def plot_scores(summary: dict, colors: dict):
    """IQM with its 95% CI per policy, normalised to the heuristic (left) and to the oracle (right). The CI is
    a thick translucent bar with caps and the IQM a dot, so a CI of (near) zero width still shows its caps."""
    pols, stats = ordered_policies(summary)[::-1], summary["policies"]
    heur, oracle = summary.get("heuristic", "heuristic"), summary.get("oracle", "oracle")
    panels = [("iqm", "iqm_ci", f"IQM score (1 = {heur})")]
    if any("iqm_vs_oracle" in stats[p] for p in pols):
        panels.append(("iqm_vs_oracle", "iqm_vs_oracle_ci", f"IQM score (1 = {oracle})"))
    fig, axes = new_figure(1, len(panels), (9, 0.42 * len(pols) + 1.6))
    for i, (ax, (key, ci_key, xlabel)) in enumerate(zip(axes[0], panels)):
        for y, p in enumerate(pols):
            v = stats[p].get(key, math.nan)
            lo, hi = stats[p].get(ci_key) or (v, v)
            ax.hlines(y, lo, hi, color=colors.get(p), lw=7, alpha=0.35)  # the 95% CI as a band
            ax.errorbar([v], [y], xerr=[[max(v - lo, 0)], [max(hi - v, 0)]], fmt="o", color=colors.get(p),
                        ms=6, capsize=6, capthick=2, elinewidth=1.5, zorder=3)
        ax.axvline(1.0, color="#666", ls="--", lw=1)
        ax.set_yticks(range(len(pols)), [p + MARKS.get(stats[p].get("kind"), "") for p in pols])
        ax.set_ylim(-0.6, len(pols) - 0.4)
        ax.tick_params(labelleft=i == 0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("policy" if i == 0 else "")
        ax.grid(axis="x", alpha=0.3)
    return fig


def score_profile(res: dict) -> dict | None:
    """Performance profile {"taus", "curves": {policy: fraction of runs scoring above tau}} over the full range
    of observed scores (results.csv's score_vs_heuristic, padded 2 % each side, so every curve runs from 1 down
    to 0); summary.json's profile when results.csv is missing."""
    table, summary = res["table"], res["summary"]
    pols = [p for p in ordered_policies(summary) if p in set(table.policy)] if not table.empty else []
    scores = {p: table.score_vs_heuristic[table.policy == p].to_numpy(float) for p in pols}
    scores = {p: s[np.isfinite(s)] for p, s in scores.items()}
    scores = {p: s for p, s in scores.items() if s.size}
    if not scores:
        prof = summary.get("performance_profile") or {}
        return prof if prof.get("taus") and prof.get("curves") else None
    lo, hi = min(s.min() for s in scores.values()), max(s.max() for s in scores.values())
    pad = 0.02 * (hi - lo) or 0.05
    taus = np.linspace(lo - pad, hi + pad, 301)
    return {"taus": taus.tolist(), "curves": {p: (s[:, None] > taus[None, :]).mean(axis=0).tolist()
                                              for p, s in scores.items()}}


def plot_performance_profile(profile: dict, summary: dict, colors: dict):
    fig, axes = new_figure()
    ax = axes[0][0]
    for p in ordered_policies(summary) + [p for p in profile["curves"] if p not in (summary.get("policies") or {})]:
        if p in profile["curves"]:
            ax.plot(profile["taus"], profile["curves"][p], color=colors.get(p), lw=2, label=p)
    ax.axvline(1.0, color="#666", ls="--", lw=1)
    ax.set(xlabel=f"normalised score τ (1 = {summary.get('heuristic', 'heuristic')})",
           ylabel="fraction of runs with score > τ", ylim=(-0.02, 1.02),
           xlim=(profile["taus"][0], profile["taus"][-1]))
    ax.grid(alpha=0.3)
    outside_legend(ax)
    return fig


def plot_panels(lines: list, keys: list, xlabel: str, steps: bool = False, refs: dict | None = None):
    """Small multiples, one panel per key; `lines` are (label or None, colour, {key: (x, y) or (x, y, lo, hi)}),
    lo..hi drawn as a shaded band (the spread over training seeds); `refs` draws
    dashed horizontal reference lines {key: [(label, colour, value)]}. The legend sits outside the panels."""
    from matplotlib.ticker import MaxNLocator

    ncols, nrows = min(3, len(keys)), math.ceil(len(keys) / 3)
    fig, axes = new_figure(nrows, ncols, (9, 2.6 * nrows + 0.4) if ncols > 1 else (8.5, 3.6))
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        ys = []
        for label, color, series in lines:
            if key in series:
                x, y = series[key][:2]
                ax.plot(x, y, color=color, lw=1.5, label=label, drawstyle="steps-post" if steps else "default")
                if len(series[key]) == 4:
                    ax.fill_between(x, series[key][2], series[key][3], color=color, alpha=0.2, lw=0)
                ys += list(y)
        for label, color, value in (refs or {}).get(key, []):
            ax.axhline(value, color=color, ls="--", lw=1.3, label=label)
        if steps and ys and min(ys) >= 0 and max(ys) <= 1:  # shares: show the whole [0, 1] range
            ax.set_ylim(-0.05, 1.05)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        if len(keys) == 1:
            ax.set_ylabel(key, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    legend = {}
    for ax in axes.flat[:len(keys)]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, h)
    if legend and len(keys) == 1:
        outside_legend(axes.flat[0])
    elif legend:
        fig.legend(list(legend.values()), list(legend), fontsize=7, loc="outside right upper")
    return fig


MIN_VISIBLE = 0.015  # a breakdown part narrower than this share of the longest bar is drawn at that width


def plot_breakdown(parts_by_policy: dict, parts: list):
    """Stacked seconds per iteration; a part too small to see (under MIN_VISIBLE of the longest bar) is drawn
    hatched at that minimum width and its value written beside the bar."""
    pols = list(parts_by_policy)[::-1]
    fig, axes = new_figure(size=(9, 0.45 * len(pols) + 1.5))
    ax, left = axes[0][0], np.zeros(len(pols))
    values = np.array([[parts_by_policy[p].get(part, 0.0) for p in pols] for part in parts], dtype=float)
    floor = MIN_VISIBLE * values.sum(axis=0).max() if values.size else 0.0
    tiny = [[] for _ in pols]
    for i, (part, widths) in enumerate(zip(parts, values)):
        small = (widths > 0) & (widths < floor)
        bars = ax.barh(range(len(pols)), np.where(small, floor, widths), left=left, color=f"C{i % 10}", label=part)
        for j in np.flatnonzero(small):
            bars[j].set(hatch="////", edgecolor="#333", linewidth=0.5)
            tiny[j].append(f"{part} {fmt(widths[j])} s")
        left += np.where(small, floor, widths)
    for j, notes in enumerate(tiny):
        if notes:
            ax.annotate(", ".join(notes), (left[j], j), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize=8)
    if any(tiny):
        ax.set_xlim(0, left.max() * 1.35)
    ax.set_yticks(range(len(pols)), pols)
    ax.set_xlabel("seconds per iteration")
    ax.set_ylabel("policy")
    ax.grid(axis="x", alpha=0.3)
    outside_legend(ax)
    return fig


WIN, LOSE = 1.005, 0.995  # a mean score above WIN wins against the heuristic, below LOSE loses


def verdict(ci, reference: float = 1.0) -> str:
    """Where a 95% CI lies against the reference: 'above', 'below' or 'not distinguishable from'."""
    lo, hi = ci
    return "above" if lo > reference else "below" if hi < reference else "not distinguishable from"


def run_name(policy: str) -> str:
    """'learned:run/seed2' -> 'run' (the training run folder's name)."""
    return re.sub(r"/seed\d+$", "", policy.removeprefix("learned:"))


def trained_on(res: dict, policy: str) -> str:
    """What a learned policy was trained on, from its run's config.yaml (the run among summary.json's `runs`
    named like the policy, or the only run); 'its training scenario' when no config is reachable."""
    import yaml

    runs = [pathlib.Path(r) for r in res["summary"].get("runs") or []]
    runs = [r if r.is_absolute() or r.exists() else res["dir"] / r for r in runs]
    named = [r for r in runs if r.name == run_name(policy)] or (runs if len(runs) == 1 else [])
    config = named[0] / "config.yaml" if named else None
    if config is None or not config.is_file():
        return "its training scenario"
    try:
        cfg = yaml.safe_load(config.read_text()) or {}
    except yaml.YAMLError:
        return "its training scenario"
    dist, params = cfg.get("distribution"), cfg.get("env_params") or {}
    if dist:
        try:
            from memgym.envs import distribution, registry

            from .benchmark import describe_distribution

            return describe_distribution(distribution.resolve(registry.canonical_id(cfg.get("env")), dist))
        except Exception as e:  # noqa: BLE001 (a config the installed package cannot resolve: say what it names)
            log.warning("%s: cannot describe its distribution (%s)", config, e)
            return f"the {dist} benchmark's train split" if isinstance(dist, str) else "a scenario distribution"
    return ("one scenario (" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")" if params
            else f"{cfg.get('env', 'the environment')}'s default scenario")


def headline_sentences(res: dict) -> tuple[list, str]:
    """The headline as sentences and where they come from ('summary', 'benchmark' or 'derived'): summary.json's
    `headline` (the demo writes it), else `benchmark.headline` over benchmark.json, else one sentence per
    learned policy (best first, at most three) from summary.json and results.csv: its IQM against the
    heuristic with the CI and the scenarios it wins (mean score > WIN) and loses (< LOSE), with the figures."""
    summary, bench = res["summary"], res["benchmark"]
    if summary.get("headline"):
        return [line for line in str(summary["headline"]).splitlines() if line.strip()], "summary"
    if bench and bench.get("learned"):
        from .benchmark import headline

        lines = [headline({**bench, "learned": {g: o}}, trained_on(res, g)) for g, o in bench["learned"].items()]
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
        f"higher is better; the oracle ◆ is the environment's exhaustive search (KernelMapping-v0: per step; "
        f"CacheRatio-v0 and SecureDisagg-v0: over static plans, which a per-step policy can beat). IQM: "
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
        f"policies act greedily (argmax over the masked logits); the unit is a training run × scenario (a run's "
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


def reference_returns(scalars: dict) -> dict:
    """{name: mean} of the `baseline/<name>/ep_rew_mean` series (the heuristic's return during training)."""
    return {t.split("/")[1]: float(np.mean(v)) for t, (_, v) in scalars.items()
            if t.startswith("baseline/") and t.endswith("/ep_rew_mean") and t.count("/") == 2 and len(v)}


def mean_over_seeds(seed_scalars: list) -> dict:
    """{tag: (steps, mean, min, max)} over the seeds' series, at the steps every seed logged ({tag: (x, y)} for a
    single seed)."""
    if len(seed_scalars) == 1:
        return seed_scalars[0]
    out = {}
    for tag in set.intersection(*(set(s) for s in seed_scalars)):
        series = [dict(zip(*s[tag])) for s in seed_scalars]
        steps = sorted(set.intersection(*(set(d) for d in series)))
        if steps:
            ys = np.array([[d[x] for x in steps] for d in series], dtype=float)
            out[tag] = (steps, ys.mean(axis=0), ys.min(axis=0), ys.max(axis=0))
    return out


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


DETAIL_KEYS = {"per_context"}  # per-point detail stays in reproduce.json; the page shows the averages


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dicts become dotted keys; lists and per-point detail (`DETAIL_KEYS`) are left out."""
    out = {}
    for k, v in d.items():
        if k in DETAIL_KEYS:
            continue
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif not isinstance(v, (list, tuple)):
            out[f"{prefix}{k}"] = v
    return out


def reproduction_table(block: dict, name: str = "") -> Table:
    """Rows: the block's entries (models), or the block itself when it holds no dicts; columns: speedup_*, other
    numbers, the paper's values, other nested values."""
    rows = {k: flatten(v) for k, v in block.items() if isinstance(v, dict)} or {name: flatten(block)}
    cols = sorted(dict.fromkeys(k for r in rows.values() for k in r),
                  key=lambda k: 0 if k.startswith("speedup") else 2 if k.startswith("paper") else 3 if "." in k else 1)
    if len(cols) > MAX_WIDE_COLUMNS:
        return Table(["Quantity", *rows], [[c, *(fmt(r.get(c)) for r in rows.values())] for c in cols])
    return Table(["Model", *cols], [[row, *(fmt(r.get(c)) for c in cols)] for row, r in rows.items()])


def tdmem_tables(block: dict) -> list:
    """`memgym reproduce tdmem` as three small tables (per mode, the headline ratios, the remote-size sweep);
    the rest stays in reproduce.json."""
    access, cap = block.get("remote_4k_access_us") or {}, (block.get("capacity_utilisation") or {})
    usable = next((v for k, v in cap.items() if k.endswith("GB")), {}) or {}
    modes = (block.get("obliviousness_cost") or {}).get("modes") or {}
    per_mode = Table(["Mode", "4 KB access µs", "traffic per byte", "usable remote", "throughput vs plain"],
                     [[m, fmt(access.get(m)), fmt(v.get("traffic")), fmt(usable.get(m)), fmt(v.get("vs_plain"))]
                      for m, v in modes.items()])
    svr = block.get("secure_vs_software_rdma") or {}
    oram = block.get("oram_blocks_per_access") or {}
    head = Table(["Quantity", "simulator", "reference"], [
        ["secure / software RDMA, default scenario", fmt(svr.get("ratio")), "ahead when remote memory is tight"],
        ["secure / software RDMA, same block and share", fmt((svr.get("same_block") or {}).get("ratio")),
         "comparable (±15 %)"],
        ["secure 4 KB access, µs", fmt(access.get("secure")), "3–6 (related systems)"],
        ["FlexGen's policy search on the tier, secure / RDMA slabs",
         fmt(((block.get("flexgen_on_remote") or {}).get("secure") or {}).get("vs_rdma_slab")), "–"],
        *[[f"Path ORAM blocks per access, {k}", fmt(v.get("blocks")), fmt(v.get("expected"))]
          for k, v in oram.items() if isinstance(v, dict) and "expected" in v]])
    sweep = svr.get("by_remote_gb") or {}
    by_gb = Table(["Remote GB", "RDMA block", "TDMem block", "ratio", "same-block ratio"],
                  [[gb, fmt(v.get("rdma_slabs_batch")), fmt(v.get("tdmem_batch")), fmt(v.get("ratio")),
                    fmt(v.get("same_block_ratio"))] for gb, v in sweep.items()])
    return [head, per_mode, by_gb]


REPRO_TOLERANCE = 0.15  # a simulator figure within ±15 % of the paper's is a match
CONFIG_KEYS = ("batch", "bins", "contexts", "scenario")


def paper_comparison(block: dict) -> tuple[Table, Table] | None:
    """Blocks whose entries carry a `paper` dict (H2M2's): one row per (model, policy) with the paper's value,
    the simulator's (`speedup_<policy>`) and the relative error, grouped by model, rows outside
    `REPRO_TOLERANCE` flagged; the entries' configuration (batch, bins, contexts, scenario) in a table of its
    own. None for other blocks."""
    entries = {k: v for k, v in block.items() if isinstance(v, dict) and isinstance(v.get("paper"), dict)}
    if not entries:
        return None
    rows, classes, config_rows = [], [], []
    for model, entry in entries.items():
        for policy, paper in entry["paper"].items():
            given = entry.get(policy)  # reproduce h2m2's {paper, simulator, ...} entries come first
            sim = given["simulator"] if isinstance(given, dict) else entry.get(f"speedup_{policy}", given)
            err = (sim / paper - 1.0) if isinstance(sim, (int, float)) and paper else None
            out = err is not None and abs(err) > REPRO_TOLERANCE
            rows.append([model, policy, fmt(paper), fmt(sim), "–" if err is None else f"{err:+.1%}",
                         f"✗ outside ±{REPRO_TOLERANCE:.0%}" if out else "✓"])
            classes.append("flag" if out else "")
        cfg = {k: entry[k] for k in CONFIG_KEYS if k in entry}
        cfg.update(cfg.pop("scenario", {}) or {})
        if cfg:
            config_rows.append([model, ", ".join(f"{k} {v if not isinstance(v, list) else '–'.join(map(str, v))}"
                                                 for k, v in cfg.items())])
    table = Table(["Model", "Figure", "paper", "simulator", "error", f"within ±{REPRO_TOLERANCE:.0%}"], rows, classes)
    return table, (Table(["Model", "configuration"], config_rows) if config_rows else None)


def section_reproduction(res: dict) -> list:
    repro = res["reproduce"]
    if not repro:
        return ["No reproduce.json in the results folder. `memgym evaluate --reproduce ...` writes it; "
                "`memgym reproduce h2m2` prints the same tables (the paper's numbers beside the simulator's)."]
    blocks = []
    for paper, block in repro.items():
        compared = paper_comparison(block) if isinstance(block, dict) else None
        if paper == "tdmem" and isinstance(block, dict):
            blocks += [Subheading(paper), *tdmem_tables(block)]
        elif compared is not None:
            n_out = sum(c == "flag" for c in compared[0].row_classes)
            blocks += [Subheading(paper), compared[0],
                       f"{n_out} of {len(compared[0].rows)} figures lie outside ±{REPRO_TOLERANCE:.0%} of the "
                       f"paper's (flagged ✗). Figure: a policy's speedup (`speedup_<policy>`) or a named quantity."]
            if compared[1] is not None:
                blocks += [Subheading(f"{paper}: configuration"), compared[1]]
        elif isinstance(block, dict):
            blocks += [Subheading(paper), reproduction_table(block, paper)]
    return blocks + ["Tables without the paper's values list the simulator's figures: speedup_*: speedups; "
                     "nested values have dotted names; lists are left out."]


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


TEMPLATE = "report.html.j2"  # under train/templates/, shipped as package data


def inline_html(text: str):
    """Escape text; `backticked` parts become <code>."""
    from markupsafe import Markup, escape

    return Markup("".join(f"<code>{escape(p)}</code>" if i % 2 else str(escape(p))
                          for i, p in enumerate(str(text).split("`"))))


def html_template():
    """The page template (Jinja2, autoescaped) with the report's filters and block tests."""
    from importlib import resources

    import jinja2
    from markupsafe import Markup, escape

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update(inline=inline_html, b64=lambda png: base64.b64encode(png).decode(),
                       wbr=lambda h: Markup(re.sub(r"([_.])", r"\1<wbr>", str(escape(str(h))))))  # long names break
    env.tests.update(numeric=lambda v: bool(NUMERIC.match(v)), lead=lambda b: isinstance(b, Lead),
                     subheading=lambda b: isinstance(b, Subheading), image=lambda b: isinstance(b, Image))
    return env.from_string((resources.files("memgym.train") / "templates" / TEMPLATE).read_text("utf-8"))


def render_html(title: str, subtitle: str, sections: list) -> str:
    return html_template().render(title=title, subtitle=subtitle, sections=[
        {"id": sid, "title": SECTIONS[sid], "blocks": blocks} for sid, blocks in sections])


def md_text(text: str) -> str:
    """Markdown-safe text: `<` outside code spans is escaped so that names like <name> are not read as HTML."""
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(str(text).split("`")))


def render_markdown(title: str, subtitle: str, sections: list, files_dir: str) -> tuple[str, dict]:
    """The Markdown text and {file name: PNG bytes} of its images (to be saved in `files_dir`)."""
    lines, files = [f"# {md_text(title)}", "", md_text(subtitle), ""], {}
    cells = lambda row: "| " + " | ".join(md_text(v).replace("|", r"\|").replace("\n", " ") for v in row) + " |"  # noqa
    for sid, blocks in sections:
        lines += [f"## {SECTIONS[sid]}", ""]
        for b in blocks:
            if isinstance(b, str):
                lines += [md_text(b), ""]
            elif isinstance(b, Subheading):
                lines += [f"### {md_text(b.text)}", ""]
            elif isinstance(b, Lead):
                lines += [f"> **{md_text(b.text)}**", ""]
            elif isinstance(b, Image):
                files[name := f"{sid}-{b.name}.png"] = b.png
                lines += [f"![{md_text(b.alt)}]({urllib.parse.quote(f'{files_dir}/{name}')})", ""]
            else:
                lines += [cells(b.header), "|" + "|".join(["---"] + ["---:"] * (len(b.header) - 1)) + "|",
                          *(cells(row) for row in b.rows), ""]
    return "\n".join(lines), files


def write_report(results_dir, out_html=None) -> tuple[pathlib.Path, pathlib.Path]:
    """Write the HTML report (default RESULTS_DIR/report.html) and its Markdown twin (same path with .md, images
    in `<stem>_files/`); return both paths."""
    out_html = pathlib.Path(out_html) if out_html is not None else pathlib.Path(results_dir) / "report.html"
    if out_html.suffix.lower() == ".md":
        raise ValueError(f"{out_html}: the report is HTML (its Markdown twin is written beside it); use .html")
    res = load_results(results_dir)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    res["colors"] = policy_colors(res)
    makers = {"headline": section_headline, "benchmark": section_benchmark, "scores": section_scores,
              "per-scenario": section_per_scenario, "learning": section_learning, "decisions": section_decisions,
              "breakdown": section_breakdown, "reproduction": section_reproduction, "about": section_about}
    sections = [(sid, makers[sid](res)) for sid in SECTIONS if sid != "benchmark" or res["benchmark"]]
    s = res["summary"]
    title = f"memgym report: {s.get('env', '?')}"
    subtitle = (f"Results in `{res['dir']}`; scores normalised to the paper's heuristic ({s.get('heuristic', '?')} "
                f"= 1.0); {s.get('seeds', '?')} seeds × {len(s.get('scenarios') or {})} scenarios.")
    files_dir = out_html.parent / f"{out_html.stem}_files"
    md, files = render_markdown(title, subtitle, sections, files_dir.name)
    files_dir.mkdir(exist_ok=True)
    for name, png in files.items():
        write_atomic(files_dir / name, png)
    md_path = out_html.with_suffix(".md")
    write_atomic(md_path, md.encode("utf-8"))
    write_atomic(out_html, render_html(title, subtitle, sections).encode("utf-8"))
    log.info("report written to %s and %s", out_html, md_path)
    return out_html, md_path
