"""Frames of a memgym environment for gymnasium's `render()`: `ansi` (text) and `rgb_array` (a small image).

Both are built from what one gymnasium step returns, for any environment: the observation's features (named by
`env.feature_names(params)`) and the step's metrics (named by `env.metric_names`). Metrics are grouped by name:

- memory use: `*_used_frac` (the fraction of each tier's capacity in use),
- shares: names containing `share` (the mapping or placement the agent chose),
- times: names ending in `_s` other than rates `*_per_s` (iteration, per-sublayer, PCIe, network... seconds),
- other: the rest (speedup, tokens/s, bytes, energy, mode...).

`View` holds one frame's inputs; `ansi(view)` and `rgb_array(view)` draw it. The image is drawn with
matplotlib's Agg canvas (no display, no pyplot state) at a fixed size, so a video of frames has one shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RENDER_MODES = ("ansi", "rgb_array")
RENDER_FPS = 4
FRAME_INCHES, FRAME_DPI = (6.4, 3.2), 80  # 512 x 256 pixels
GROUPS = ("memory use", "shares", "times", "other")


@dataclass
class View:
    """One frame: environment id, step within the episode (0 after reset), the episode length when known,
    the last reward (None after reset), feature names and values, metric names and values (None after
    reset)."""

    env_id: str
    step: int
    max_steps: int | None
    reward: float | None
    feature_names: tuple
    features: np.ndarray
    metric_names: tuple
    metrics: np.ndarray | None


def group_of(name: str) -> str:
    """Which of `GROUPS` a metric belongs to, by its name."""
    if name.endswith("_used_frac"):
        return "memory use"
    if "share" in name:
        return "shares"
    if name.endswith("_s") and not name.endswith("per_s"):
        return "times"
    return "other"


def short_label(name: str) -> str:
    """A metric's name without the part its group already says: hbm_used_frac -> hbm, hbm_share_fc -> hbm fc,
    time_attention_s -> attention, iteration_time_s -> iteration."""
    g = group_of(name)
    words = name.split("_")
    if g == "memory use":
        words = words[:-2]
    elif g == "shares":
        words = [w for w in words if w != "share"]
    elif g == "times":
        words = [w for w in words[:-1] if w != "time"]
    return " ".join(words) or name


def grouped(view: View) -> dict:
    """{group: [(metric name, value)]} of the view's metrics (empty lists before the first step)."""
    out = {g: [] for g in GROUPS}
    if view.metrics is not None:
        for name, value in zip(view.metric_names, np.asarray(view.metrics, np.float64)):
            out[group_of(name)].append((name, float(value)))
    return out


def fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "n/a"
    if s == 0:
        return "0 s"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(s) >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def fmt_value(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.4g}"


def bar(frac: float, width: int = 20) -> str:
    f = min(max(frac, 0.0), 1.0) if math.isfinite(frac) else 0.0
    n = int(round(f * width))
    return "[" + "#" * n + "." * (width - n) + "]"


def title(view: View) -> str:
    step = f"step {view.step}" + (f" of {view.max_steps}" if view.max_steps else "")
    reward = "reset" if view.reward is None else f"reward {view.reward:+.4g}"
    return f"{view.env_id} | {step} | {reward}"


def ansi(view: View) -> str:
    """The text frame: title; memory use and shares as bars; times with units; other metrics; features."""
    groups = grouped(view)
    width = max([len(n) for n in view.metric_names] + [len(n) for n in view.feature_names] + [8])
    lines = [title(view)]
    if view.metrics is None:
        lines.append("metrics: n/a until the first step")
    for g in ("memory use", "shares"):
        if groups[g]:
            lines.append(f"{g}:")
            lines += [f"  {n:<{width}} {v:6.3f} {bar(v)}" for n, v in groups[g]]
    if groups["times"]:
        lines.append("times:")
        lines += [f"  {n:<{width}} {fmt_seconds(v)}" for n, v in groups["times"]]
    if groups["other"]:
        lines.append("other:")
        lines += [f"  {n:<{width}} {fmt_value(v)}" for n, v in groups["other"]]
    lines.append("observation (footprints, free capacity, times relative to a baseline):")
    lines += [f"  {n:<{width}} {fmt_value(float(v))}" for n, v in zip(view.feature_names, view.features)]
    return "\n".join(lines) + "\n"


def rgb_array(view: View) -> np.ndarray:
    """The image frame, uint8[256, 512, 3]: memory use per tier, the chosen shares and the step's times."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = grouped(view)
    fig = Figure(figsize=FRAME_INCHES, dpi=FRAME_DPI)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    panels = (("memory use", "fraction of capacity", "#4c72b0"), ("shares", "share", "#dd8452"),
              ("times", "ms", "#55a868"))
    for ax, (g, unit, colour) in zip(axes, panels):
        items = groups[g]
        ax.set_title(g, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel(unit, fontsize=7)
        if not items:
            ax.text(0.5, 0.5, "n/a", ha="center", va="center", fontsize=9, transform=ax.transAxes)
            ax.set_yticks([])
            continue
        labels = [short_label(n) for n, _ in items]
        values = np.array([v for _, v in items], np.float64)
        if g == "times":
            values = values * 1e3
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        y = np.arange(len(items))
        ax.barh(y, values, color=colour)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        if g != "times":
            ax.set_xlim(0, 1.05)
            ax.axvline(1.0, color="#888", lw=0.8, ls="--")
    fig.suptitle(title(view), fontsize=9)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
