"""The explore grid as pictures: heatmaps of speedup and of the score against the heuristic, and the region
where each policy wins; written as PNG files beside explore.csv and shown by `memgym report` as its
"Hardware exploration" section (or as the whole page for a folder that holds only an exploration).

A heatmap has the grid's first axis as rows and the second as columns (one row for a one-axis grid); a third
axis gives one panel per value. Infeasible points are blank. "Wins" means the highest mean reward at that
point among the policies other than the oracle (an upper bound, not a competitor) and random; a tie goes to
the heuristic, as the incumbent.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pandas as pd

from ..files import write_atomic

CSV, META = "explore.csv", "explore.json"  # what `memgym explore` writes (this module stays free of JAX)

SECTION = "explore"
TITLE = "Hardware exploration"
TIE = 1e-6  # relative: a policy within this of the heuristic's reward does not beat it
MAX_ROWS = 4  # policies per heatmap figure


def present(results_dir) -> bool:
    d = pathlib.Path(results_dir)
    return (d / CSV).is_file() and (d / META).is_file()


def load(results_dir) -> tuple[pd.DataFrame, dict]:
    d = pathlib.Path(results_dir)
    try:
        meta = json.loads((d / META).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{d / META}: not valid JSON ({e}); run `memgym explore` again") from None
    return pd.read_csv(d / CSV), meta


def axis_names(meta: dict) -> list[str]:
    return list(meta["grid"]["axes"])


def winners(result: pd.DataFrame) -> pd.Series:
    """point -> the policy with the highest mean reward there (oracle and random aside; ties to the heuristic)."""
    ok = result[result.feasible & ~result.kind.isin(["oracle", "random"]) & result.mean_reward.notna()]
    out = {}
    for point, rows in ok.groupby("point", sort=True):
        best = rows.loc[rows.mean_reward.idxmax()]
        heur = rows[rows.kind == "heuristic"]
        if len(heur) and heur.mean_reward.iloc[0] >= best.mean_reward - TIE * abs(best.mean_reward):
            best = heur.iloc[0]
        out[point] = best.policy
    return pd.Series(out, dtype=object)


def _layout(result: pd.DataFrame, meta: dict):
    """(row axis or None, column axis, panel axis or None) and each axis's values in grid order."""
    names = axis_names(meta)
    values = {a: list(dict.fromkeys(result[a])) for a in names}
    if len(names) == 1:
        return None, names[0], None, values
    return names[0], names[1], (names[2] if len(names) > 2 else None), values


def _matrix(rows: pd.DataFrame, col: str, r_ax, c_ax, values) -> np.ndarray:
    m = np.full((len(values[r_ax]) if r_ax else 1, len(values[c_ax])), np.nan)
    for _, row in rows.iterrows():
        i = values[r_ax].index(row[r_ax]) if r_ax else 0
        m[i, values[c_ax].index(row[c_ax])] = row[col]
    return m


def _label(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _panels(meta, result, n_rows: int, draw, title: str):
    """A figure of n_rows × (panel values) heatmaps; draw(ax, row index, panel subset) fills one."""
    from ..report.plots import new_figure

    r_ax, c_ax, p_ax, values = _layout(result, meta)
    panels = values[p_ax] if p_ax else [None]
    width = min(4.2 * len(panels), 13.0)
    height = 0.5 + n_rows * (0.45 * (len(values[r_ax]) if r_ax else 1) + 1.1)
    fig, axes = new_figure(n_rows, len(panels), size=(width, height))
    for i in range(n_rows):
        for j, pv in enumerate(panels):
            ax = axes[i][j]
            sub = result if p_ax is None else result[result[p_ax] == pv]
            draw(ax, i, sub)
            ax.set_xticks(range(len(values[c_ax])), [_label(v) for v in values[c_ax]], fontsize=7)
            ax.set_yticks(range(len(values[r_ax])) if r_ax else [], [_label(v) for v in values[r_ax]] if r_ax else [],
                          fontsize=7)
            ax.set_xlabel(c_ax, fontsize=8)
            if r_ax and j == 0:
                ax.set_ylabel(r_ax, fontsize=8)
            if p_ax:
                ax.set_title(f"{ax.get_title()} {p_ax}={_label(pv)}".strip(), fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_values(result: pd.DataFrame, meta: dict, col: str, policies: list, title: str, center=None):
    """Heatmaps of `col` for each of `policies` (a row of panels each), numbers in the cells."""
    r_ax, c_ax, _, values = _layout(result, meta)
    feasible = result[result.feasible]
    data = feasible[feasible.policy.isin(policies)][col]
    finite = data[np.isfinite(data)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if center is not None:
        span = max(abs(hi - center), abs(center - lo), 1e-9)
        lo, hi = center - span, center + span
    cmap = "RdBu" if center is not None else "viridis"

    def draw(ax, i, sub):
        m = _matrix(sub[sub.feasible & (sub.policy == policies[i])], col, r_ax, c_ax, values)
        im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        ax.set_title(policies[i], fontsize=8)
        for (y, x), v in np.ndenumerate(m):
            if math.isfinite(v):
                t = (v - lo) / (hi - lo) if hi > lo else 0.5  # dark ends: viridis's low, RdBu's both
                dark = t < 0.5 if center is None else not 0.2 <= t <= 0.8
                ax.text(x, y, f"{v:.3g}", ha="center", va="center", fontsize=6, color="white" if dark else "black")
        ax.figure.colorbar(im, ax=ax, shrink=0.8).ax.tick_params(labelsize=6)

    return _panels(meta, result, len(policies), draw, title)


def plot_winners(result: pd.DataFrame, meta: dict):
    """One categorical map: at each feasible point, the policy that wins there."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from ..report.plots import KIND_COLORS, PALETTE

    r_ax, c_ax, _, values = _layout(result, meta)
    wins = winners(result)
    kinds = dict(zip(result.policy, result.kind))
    names = list(dict.fromkeys(wins.values))
    colors = {}
    others = iter(PALETTE)
    for n in names:
        colors[n] = KIND_COLORS.get(kinds.get(n)) or next(others)
    cmap = ListedColormap([colors[n] for n in names] or ["#ffffff"])
    points = result.drop_duplicates("point").set_index("point")

    def draw(ax, i, sub):
        pts = sub.drop_duplicates("point")
        pts = pts.assign(win=[names.index(wins[p]) if p in wins.index else np.nan for p in pts.point])
        m = _matrix(pts, "win", r_ax, c_ax, values)
        ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=-0.5, vmax=max(len(names), 1) - 0.5, aspect="auto")

    fig = _panels(meta, points.reset_index(), 1, draw, "Best policy at each point (oracle aside; blank: infeasible)")
    fig.legend(handles=[Patch(color=colors[n], label=n) for n in names], fontsize=7, loc="outside lower center",
               ncols=min(len(names), 4) or 1)
    return fig


def figures(result: pd.DataFrame, meta: dict) -> list:
    """[(name, alt text, Figure)] of the section (see the module docstring)."""
    by_kind = result.drop_duplicates("policy").set_index("policy").kind
    heuristic = next((p for p, k in by_kind.items() if k == "heuristic"), None)
    learned = [p for p, k in by_kind.items() if k == "learned"]
    out = []
    if "speedup" in result and result.speedup.notna().any():
        shown = [heuristic, *learned, "oracle"][:MAX_ROWS]
        out.append(("speedup", "speedup over the grid", plot_values(
            result, meta, "speedup", [p for p in shown if p in by_kind.index],
            "Speedup (the environment's baseline = 1)")))
    if learned:
        out.append(("vs-heuristic", "learned ÷ heuristic over the grid", plot_values(
            result, meta, "score_vs_heuristic", learned[:MAX_ROWS], f"Learned ÷ {heuristic} (mean reward)",
            center=1.0)))
    out.append(("oracle-vs-heuristic", "oracle ÷ heuristic over the grid", plot_values(
        result, meta, "score_vs_heuristic", ["oracle"], f"Headroom: oracle ÷ {heuristic} (mean reward)",
        center=1.0)))
    out.append(("winners", "the best policy at each point", plot_winners(result, meta)))
    return out


def write_figures(results_dir) -> list[pathlib.Path]:
    """explore-<name>.png beside explore.csv, one per figure."""
    from ..report.plots import to_png

    d = pathlib.Path(results_dir)
    result, meta = load(d)
    paths = []
    for name, _, fig in figures(result, meta):
        write_atomic(path := d / f"explore-{name}.png", to_png(fig))
        paths.append(path)
    return paths


def section(results_dir) -> list:
    """The report's blocks: what was explored, a table per policy, the figures."""
    from ..report.plots import to_png
    from ..report.render import Image, Table, fmt

    result, meta = load(results_dir)
    g = meta["grid"]
    axes = "; ".join(f"{k} ∈ {{{', '.join(map(_label, v if isinstance(v, list) else v['values']))}}}"
                     + ("" if isinstance(v, list) else f" (× {v['scale']:g} into `{v['path']}`)")
                     for k, v in g["axes"].items())
    feasible = result[result.feasible]
    n_feasible = feasible.point.nunique()
    wins = winners(result).value_counts()
    stats = feasible.groupby("policy", sort=False).agg(mean=("score_vs_heuristic", "mean"),
                                                       lo=("score_vs_heuristic", "min"),
                                                       hi=("score_vs_heuristic", "max"))
    kinds = dict(zip(result.policy, result.kind))
    rows = [[p, kinds[p], "–" if kinds[p] in ("oracle", "random") else str(int(wins.get(p, 0))), fmt(s["mean"]),
             fmt(s.lo), fmt(s.hi)]
            for p, s in stats.sort_values("mean", ascending=False).iterrows()]
    blocks = [f"{g['env']} over {meta['points']} points ({n_feasible} feasible): {axes}; fixed: "
              f"{', '.join(f'{k}={v}' for k, v in (g.get('scenario') or {}).items()) or 'defaults'}. "
              f"{g['seeds']} episodes per point and policy; `explore.csv` holds every number.",
              Table(["Policy", "kind", "points won", "mean score", "min", "max"], rows),
              "Score: mean reward ÷ the heuristic's on the same episodes (1 = the heuristic), over the feasible "
              "points. Points won: the highest mean reward there, oracle and random aside."]
    for name, alt, fig in figures(result, meta):
        blocks.append(Image(name=name, png=to_png(fig), alt=alt))
    compiled = meta.get("chunk_compiled") or [False] * len(meta["chunk_s"])
    first = [t for t, c in zip(meta["chunk_s"], compiled) if c]
    rest = [t for t, c in zip(meta["chunk_s"], compiled) if not c]
    timing = (f"Played in {meta['wall_s']:.1f} s: {meta['chunks']} chunks of {g['chunk']} points, "
              + (f"Ray tasks on {meta['workers']} workers (start-up {meta['startup_s']:.1f} s)" if meta["ray"]
                 else "one after another in one process")
              + (f"; a worker's first chunk (tracing and compiling the program) {fmt(max(first))} s" if first else "")
              + (f"; a chunk {fmt(float(np.median(rest)))} s (median of the others)" if rest else "") + ".")
    blocks.append(timing)
    return blocks


def heading(results_dir) -> tuple[str, str]:
    """The title and subtitle of a page that holds only an exploration."""
    _, meta = load(results_dir)
    return (f"memgym exploration: {meta['grid']['env']}",
            f"Results in `{pathlib.Path(results_dir)}`: every policy over a grid of hardware and scenarios.")
