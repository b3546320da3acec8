"""`memgym report RESULTS_DIR -o report.html`: one self-contained HTML page (plus a Markdown twin) from the
folder that `memgym evaluate` writes, readable without TensorBoard.

The page embeds every plot as a base64 PNG, carries its CSS inline and loads nothing from outside; the
Markdown twin (`report.md`) saves its plots as PNG files in `report_files/`. Both are rendered from one list of
sections, each a list of blocks (a paragraph string, Table, Image or Subheading), and written atomically.
Plots use matplotlib's object-oriented API on the Agg canvas (no pyplot, no global state).
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

SECTIONS = {"headline": "Headline", "scores": "Normalised scores", "per-scenario": "Per scenario",
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
    """summary.json (required), results.csv, decisions.json, breakdown.json, reproduce.json (optional)."""
    d = pathlib.Path(results_dir)
    summary = read_json(d / "summary.json")
    if summary is None:
        raise ValueError(f"{d}: no summary.json, so not a results folder; make one with "
                         f"`memgym evaluate --config CONFIG -o {d}`")
    table = (pd.read_csv(d / "results.csv") if (d / "results.csv").is_file()
             else pd.DataFrame(columns=["policy", "kind", "scenario", "score_vs_heuristic"]))
    return {"dir": d, "summary": summary, "table": table,
            **{k: read_json(d / f"{k}.json") for k in ("decisions", "breakdown", "reproduce")}}


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


def plot_scores(summary: dict, colors: dict) -> bytes:
    """IQM with its 95% CI per policy, normalised to the heuristic (left) and to the oracle (right)."""
    pols, stats = ordered_policies(summary)[::-1], summary["policies"]
    panels = [("iqm", "iqm_ci", f"IQM score vs {summary.get('heuristic', 'heuristic')} (= 1)")]
    if any("iqm_vs_oracle" in stats[p] for p in pols):
        panels.append(("iqm_vs_oracle", "iqm_vs_oracle_ci", f"IQM score vs {summary.get('oracle', 'oracle')} (= 1)"))
    fig, axes = new_figure(1, len(panels), (9, 0.42 * len(pols) + 1.3))
    for i, (ax, (key, ci_key, title)) in enumerate(zip(axes[0], panels)):
        for y, p in enumerate(pols):
            v = stats[p].get(key, math.nan)
            lo, hi = stats[p].get(ci_key) or (v, v)
            ax.errorbar([v], [y], xerr=[[max(v - lo, 0)], [max(hi - v, 0)]], fmt="o", color=colors.get(p),
                        capsize=4, lw=2)
        ax.axvline(1.0, color="#666", ls="--", lw=1)
        ax.set_yticks(range(len(pols)), [p + MARKS.get(stats[p].get("kind"), "") for p in pols])
        ax.tick_params(labelleft=i == 0)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    return to_png(fig)


def plot_performance_profile(summary: dict, colors: dict) -> bytes:
    prof = summary["performance_profile"]
    fig, axes = new_figure()
    ax = axes[0][0]
    for p in ordered_policies(summary):
        if p in prof["curves"]:
            ax.plot(prof["taus"], prof["curves"][p], color=colors.get(p), lw=2, label=p)
    ax.axvline(1.0, color="#666", ls="--", lw=1)
    ax.set(xlabel=f"normalised score τ (1 = {summary.get('heuristic', 'heuristic')})",
           ylabel="fraction of runs with score > τ", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    outside_legend(ax)
    return to_png(fig)


def plot_panels(lines: list, keys: list, xlabel: str, steps: bool = False, refs: dict | None = None) -> bytes:
    """Small multiples, one panel per key; `lines` are (label or None, colour, {key: (x, y)}); `refs` draws
    dashed horizontal reference lines {key: [(label, colour, value)]}."""
    from matplotlib.ticker import MaxNLocator

    ncols, nrows = min(3, len(keys)), math.ceil(len(keys) / 3)
    fig, axes = new_figure(nrows, ncols, (9, 2.6 * nrows + 0.4) if ncols > 1 else (8.5, 3.6))
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for i, (ax, key) in enumerate(zip(axes.flat, keys)):
        ys = []
        for label, color, series in lines:
            if key in series:
                ax.plot(*series[key], color=color, lw=1.5, label=label, drawstyle="steps-post" if steps else "default")
                ys += list(series[key][1])
        for label, color, value in (refs or {}).get(key, []):
            ax.axhline(value, color=color, ls="--", lw=1.3, label=label)
        if steps and ys and min(ys) >= 0 and max(ys) <= 1:  # shares: show the whole [0, 1] range
            ax.set_ylim(-0.05, 1.05)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if i == 0 and ax.get_legend_handles_labels()[1]:
            outside_legend(ax) if len(keys) == 1 else ax.legend(fontsize=7)
    return to_png(fig)


def plot_breakdown(parts_by_policy: dict, parts: list) -> bytes:
    pols = list(parts_by_policy)[::-1]
    fig, axes = new_figure(size=(9, 0.45 * len(pols) + 1.5))
    ax, left = axes[0][0], np.zeros(len(pols))
    for i, part in enumerate(parts):
        widths = np.array([parts_by_policy[p].get(part, 0.0) for p in pols], dtype=float)
        ax.barh(range(len(pols)), widths, left=left, color=f"C{i % 10}", label=part)
        left += widths
    ax.set_yticks(range(len(pols)), pols)
    ax.set_xlabel("seconds per iteration")
    ax.grid(axis="x", alpha=0.3)
    outside_legend(ax)
    return to_png(fig)


def section_headline(res: dict) -> list:
    summary = res["summary"]
    stats, heur = summary.get("policies") or {}, summary.get("heuristic", "heuristic")
    if not stats:
        return ["summary.json lists no policies."]
    rows, classes = [], []
    for p in ordered_policies(summary):
        s, kind = stats[p], stats[p].get("kind", "")
        prob = "–" if p == heur else f"{fmt(s.get('prob_improvement'))} {fmt(s.get('prob_improvement_ci'))}"
        rows.append([p + MARKS.get(kind, ""), kind, fmt(s.get("iqm")), fmt(s.get("iqm_ci")), fmt(s.get("mean")),
                     prob, fmt(s.get("iqm_vs_oracle")), fmt(s.get("optimality_gap"))])
        classes.append(kind)
    header = ["Policy", "Kind", "IQM score", "95% CI", "Mean", f"P(improvement over {heur})", "IQM vs oracle",
              "Optimality gap"]
    blocks = [Table(header, rows, classes),
              f"Score = mean reward divided by {heur}'s on the same scenario and seed: {heur} ★ scores exactly 1, "
              f"higher is better; the oracle ◆ is the environment's exhaustive search (KernelMapping-v0: per step; CacheRatio-v0 "
              f"and SecureDisagg-v0: over static plans, which a per-step policy can beat). IQM: interquartile mean "
              f"over {summary.get('seeds', '?')} seeds × {len(summary.get('scenarios') or {})} scenarios, with "
              f"a 95% stratified-bootstrap confidence interval."]
    for p in ordered_policies(summary):
        if stats[p].get("kind") == "learned" and stats[p].get("iqm_ci"):
            lo, hi = stats[p]["iqm_ci"]
            verdict = "better than" if lo > 1 else "worse than" if hi < 1 else "not distinguishable from"
            blocks.append(f"{p}: IQM {fmt(stats[p]['iqm'])} {fmt(stats[p]['iqm_ci'])}, {verdict} {heur} "
                          f"(P(improvement) {fmt(stats[p].get('prob_improvement'))}).")
    return blocks


def section_scores(res: dict) -> list:
    summary = res["summary"]
    if not summary.get("policies"):
        return ["No scores to plot."]
    blocks = [Image("scores", plot_scores(summary, res["colors"]), "IQM normalised scores with 95% CIs"),
              "Dots: IQM score; bars: 95% confidence interval; dashed line: the reference (1.0)."]
    prof = summary.get("performance_profile") or {}
    if prof.get("taus") and prof.get("curves"):
        blocks += [Subheading("Performance profile"),
                   Image("profile", plot_performance_profile(summary, res["colors"]), "performance profile"),
                   "Fraction of runs (seeds × scenarios) scoring above τ; a curve further right dominates."]
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


def section_learning(res: dict) -> list:
    runs = res["summary"].get("runs") or []
    if not runs:
        return ["No training runs were part of this evaluation, so there are no learning curves; pass run "
                "folders with `memgym evaluate --checkpoints RUN ...` to include them."]
    curves, missing = read_learning_curves(runs, res["dir"])
    blocks = ["No TensorBoard event files found in: " + ", ".join(missing) + "."] if missing else []
    run_colors = {r: PALETTE[i % len(PALETTE)] for i, r in enumerate(dict.fromkeys(c["run"] for c in curves))}
    lines = [(c["run"] if i == 0 or curves[i - 1]["run"] != c["run"] else None, run_colors[c["run"]], c["scalars"])
             for i, c in enumerate(curves)]  # one legend entry per run, one line per seed folder
    refs = {}
    for c in curves:
        for name, value in reference_returns(c["scalars"]).items():
            refs.setdefault(name, []).append(value)
    if any("rollout/ep_rew_mean" in c["scalars"] for c in curves):
        dashed = [(f"{k} (reference)", res["colors"].get(k, "#444"), float(np.mean(v))) for k, v in refs.items()]
        blocks += [Image("learning", plot_panels(lines, ["rollout/ep_rew_mean"], "environment steps",
                                                 refs={"rollout/ep_rew_mean": dashed}), "episode return in training"),
                   f"Mean episode return against environment steps, one line per seed ({len(curves)} log folders "
                   f"from {len(run_colors)} run{'s' * (len(run_colors) != 1)}); dashed: the heuristic's return on "
                   f"the training scenario (`baseline/<name>/ep_rew_mean`)."]
    elif curves:
        blocks.append("The runs hold no `rollout/ep_rew_mean` scalars.")
    key_first = lambda t: (KEY_METRICS.index(t[4:]) if t[4:] in KEY_METRICS else len(KEY_METRICS), t)  # noqa: E731
    if env_tags := sorted({t for c in curves for t in c["scalars"] if t.startswith("env/")}, key=key_first):
        blocks += [Subheading("Environment metrics during training"),
                   Image("env-metrics", plot_panels(lines, env_tags[:MAX_PANELS], "environment steps"), "env/* tags")]
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
            blocks.append(Image(name, plot_panels(lines, keys, "step", steps=field == "actions"), f"{name} by step"))
    return blocks


def section_breakdown(res: dict) -> list:
    bd = res["breakdown"] or {}
    pols = {p: d["parts"] for p, d in (bd.get("policies") or {}).items() if d.get("parts")}
    if not pols:
        return ["No breakdown.json in the results folder."]
    parts = list(dict.fromkeys(k for d in pols.values() for k in d))
    return [f"Scenario {bd.get('scenario', '?')}: where each policy's iteration time goes (mean seconds per part).",
            Image("breakdown", plot_breakdown(pols, parts), "stacked time breakdown per policy"),
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
            sim = entry.get(f"speedup_{policy}", entry.get(policy))
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
    sections = list(zip(SECTIONS, (section_headline(res), section_scores(res), section_per_scenario(res),
                                   section_learning(res), section_decisions(res), section_breakdown(res),
                                   section_reproduction(res), section_about(res))))
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
