"""What the report reads: the results folder `memgym evaluate` writes (summary.json, results.csv, decisions.json,
breakdown.json, reproduce.json, benchmark.json), the training runs' TensorBoard event files and config.yaml, and
what is derived from them (policy order, the score profile, learning curves over seeds)."""

from __future__ import annotations

import json
import logging
import math
import pathlib
import re

import numpy as np
import pandas as pd
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from memgym.envs import distribution, registry

from ..evaluation.benchmark import describe_distribution

log = logging.getLogger(__name__)


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


def read_learning_curves(run_paths, results_dir=".") -> tuple[list, list]:
    """Every folder holding TensorBoard event files under each run folder (one per seed or sub-run) as
    {"run", "part", "scalars": {tag: (steps, values)}}, and the run paths where none was found."""
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


def run_name(policy: str) -> str:
    """'learned:run/seed2' -> 'run' (the training run folder's name)."""
    return re.sub(r"/seed\d+$", "", policy.removeprefix("learned:"))


def trained_on(res: dict, policy: str) -> str:
    """What a learned policy was trained on, from its run's config.yaml (the run among summary.json's `runs`
    named like the policy, or the only run); 'its training scenario' when no config is reachable."""
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
            return describe_distribution(distribution.resolve(registry.canonical_id(cfg.get("env")), dist))
        except Exception as e:  # noqa: BLE001 (a config the installed package cannot resolve: say what it names)
            log.warning("%s: cannot describe its distribution (%s)", config, e)
            return f"the {dist} benchmark's train split" if isinstance(dist, str) else "a scenario distribution"
    return ("one scenario (" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")" if params
            else f"{cfg.get('env', 'the environment')}'s default scenario")
