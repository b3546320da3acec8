"""The report's plots: matplotlib's object-oriented API on the Agg canvas (no pyplot, no global state); each
plot function returns the Figure (the tests read its axes) and `to_png` renders it. One colour per policy
across every plot (`policy_colors`)."""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .data import ordered_policies
from .render import fmt

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b", "#bcbd22")
KIND_COLORS = {"heuristic": "#222222", "oracle": "#b8860b", "random": "#9a9a9a"}
MARKS = {"heuristic": " ★", "oracle": " ◆"}


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


def new_figure(nrows=1, ncols=1, size=(8.5, 3.6)):
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def to_png(fig) -> bytes:
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
