"""`memgym explore`: a hardware/scenario grid, every policy on every point, into explore.csv.

A grid config (`configs/explore/<name>.yaml`; keys marked * are required):

    env        str    the environment (optional; it must match --env when given)
    scenario   map    scenario fields every point shares (keyword arguments of env.default_params), default {}
    axes*      map    one to three axes, in order (x, y, then panels):
                        name: [v1, v2, ...]                  a scenario field
                        name: {path: P, scale: s, values: [v1, ...]}
                                                             a float leaf of the built params set to v × s
                                                             (P dotted, e.g. hw.link_bw_bytes_per_s; a last
                                                             part `name[i]` sets element i of an array)
    seeds      int    > 0, episodes per point and policy, default 4 (the same keys at every point)
    seed       int    >= 0, the evaluation key's seed, default 0
    chunk      int    > 0, grid points per compiled program, default 16
    policies   list   registered policy names to play, default every one (the heuristic and the oracle are
                      always played: scores are normalised to them)

The grid's points (the product of the axes, first axis slowest) are cut into chunks of `chunk` points in
order; a chunk builds its points' params, stacks those of one structure (padded to `chunk` with the last so
every chunk runs the same compiled program) and plays every policy on them as `memgym evaluate` does: one
program, the policy picked by `lax.switch`, vmapped over points and seeds. Locally the chunks run one after
another in this process; with `--ray` each chunk is a Ray task (one CPU), and the results are the same
because the chunks and keys are. A point whose scenario the environment rejects (a model that does not fit)
is kept as infeasible: its rows carry `feasible: False` and the reason, and no numbers.

explore.csv has one row per point × policy: the point's index and axis values, policy, kind (heuristic, oracle,
baseline, learned, random), feasible, mean_reward (per step, over seeds), score_vs_heuristic and
score_vs_oracle (the mean over seeds of the policy's mean reward ÷ the heuristic's, ÷ the oracle's, on the same
episode), speedup (the environment's `speedup` metric where it has one, KernelMapping-v0's over LPDDR-only;
else tokens_per_s ÷ baseline_tokens_per_s) and every metric's mean (metric_<name>). explore.json holds the
grid, the policies and the timings (each chunk's seconds, the wall time, Ray's start-up).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import pathlib
import re
import time

import numpy as np
import pandas as pd
import yaml

from memgym.envs import distribution, registry
from memgym.sim.config import ConfigError, preset_path

from ..experiment import _number_hint
from ..files import output_folder, write_atomic
from .explore_report import CSV, META

log = logging.getLogger(__name__)

KEYS = ("env", "scenario", "axes", "seeds", "seed", "chunk", "policies")
MAX_AXES = 3
_LEAF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\[\d+\])?$")


@dataclasses.dataclass
class Axis:
    name: str
    values: list
    path: str | None = None  # None: a scenario field; else a leaf of the built params
    scale: float = 1.0


@dataclasses.dataclass
class Grid:
    env_id: str
    scenario: dict
    axes: list
    seeds: int = 4
    seed: int = 0
    chunk: int = 16
    policies: list | None = None
    source: str = "<dict>"

    def points(self) -> list[dict]:
        """Every point as {axis name: value}, first axis slowest."""
        names = [a.name for a in self.axes]
        return [dict(zip(names, combo)) for combo in itertools.product(*(a.values for a in self.axes))]

    def to_dict(self) -> dict:
        return {"env": self.env_id, "scenario": self.scenario, "seeds": self.seeds, "seed": self.seed,
                "chunk": self.chunk, "policies": self.policies,
                "axes": {a.name: (a.values if a.path is None else {"path": a.path, "scale": a.scale,
                                                                    "values": a.values}) for a in self.axes}}


def _int(d, key, file, default, lo):
    v = d.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ConfigError(file, key, f"must be an integer >= {lo}, got {v!r}")
    return v


def set_leaf(params, path: str, value):
    """A copy of the params pytree with the float leaf at `path` ('hw.link_bw_bytes_per_s', 'a.b[1]') set."""
    import jax.numpy as jnp

    head, _, rest = path.partition(".")
    name, index = re.fullmatch(r"([^\[]+)(?:\[(\d+)\])?", head).groups()
    old = getattr(params, name)
    if rest:
        new = set_leaf(old, rest, value)
    elif index is not None:
        new = jnp.asarray(old).at[int(index)].set(value)
    else:
        new = jnp.asarray(value, jnp.asarray(old).dtype)
    return dataclasses.replace(params, **{name: new})


def _check_path(env_id, scenario, axis, file):
    """Build the grid's first scenario and check that the axis's path names a float leaf there."""
    import jax.numpy as jnp

    where = f"axes.{axis.name}.path"
    env = registry.env_class(env_id)()
    try:
        params = env.default_params(**scenario)
    except (ValueError, TypeError) as e:
        raise ConfigError(file, "scenario", f"rejected by {env_id}: {e}") from None
    node = params
    for part in axis.path.split("."):
        name, index = re.fullmatch(r"([^\[]+)(?:\[(\d+)\])?", part).groups()
        if not dataclasses.is_dataclass(node) or name not in {f.name for f in dataclasses.fields(node)}:
            valid = [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []
            raise ConfigError(file, where, f"'{name}' is not a field of {type(node).__name__}"
                                           + (f"; valid: {', '.join(valid)}" if valid else ""))
        node = getattr(node, name)
        if index is not None:
            shape = jnp.shape(node)
            if len(shape) != 1 or int(index) >= shape[0]:
                raise ConfigError(file, where, f"'{part}': index out of range for shape {shape}")
            node = node[int(index)]
    if not (hasattr(node, "dtype") and jnp.issubdtype(node.dtype, jnp.floating) and jnp.ndim(node) == 0):
        raise ConfigError(file, where, f"must name one float number of the params, got {type(node).__name__} "
                                       f"{getattr(node, 'shape', '')}")


def validate(d, file="<dict>", env_id: str | None = None) -> Grid:
    """A raw mapping -> Grid, or a ConfigError naming `file` and the key."""
    if not isinstance(d, dict):
        raise ConfigError(file, "<file>", "must be a mapping of keys to values")
    for k in d:
        if k not in KEYS:
            raise ConfigError(file, k, f"unknown key; valid keys: {', '.join(KEYS)}")
    named = d.get("env", env_id)
    if named is None:
        raise ConfigError(file, "env", "missing: name the environment here or with --env")
    try:
        env = registry.canonical_id(str(named))
    except ValueError:
        raise ConfigError(file, "env", f"unknown environment {named!r}; valid: {', '.join(registry.registered())}"
                          ) from None
    if env_id is not None and registry.canonical_id(env_id) != env:
        raise ConfigError(file, "env", f"the grid is for {env}, --env says {env_id}")
    fields = distribution.scenario_fields(env)
    scenario = d.get("scenario") or {}
    if not isinstance(scenario, dict):
        raise ConfigError(file, "scenario", f"must be a mapping of scenario fields, got {scenario!r}")
    for k in scenario:
        if k not in fields:
            raise ConfigError(file, f"scenario.{k}", f"not a scenario field of {env}; valid: {', '.join(fields)}")
    raw = d.get("axes")
    if not isinstance(raw, dict) or not 1 <= len(raw) <= MAX_AXES:
        raise ConfigError(file, "axes", f"must map 1 to {MAX_AXES} axis names to their values, got {raw!r}")
    axes = []
    for name, spec in raw.items():
        where = f"axes.{name}"
        path, scale, values = None, 1.0, spec
        if isinstance(spec, dict):
            for k in spec:
                if k not in ("path", "scale", "values"):
                    raise ConfigError(file, f"{where}.{k}", "unknown key; valid: path, scale, values")
            path, scale, values = spec.get("path"), spec.get("scale", 1.0), spec.get("values")
            if not isinstance(path, str) or not _LEAF.match(path):
                raise ConfigError(file, f"{where}.path", f"must be a dotted params path such as "
                                                         f"hw.link_bw_bytes_per_s, got {path!r}")
            if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale)
                    and scale > 0):
                raise ConfigError(file, f"{where}.scale", f"must be a positive number, got {scale!r}"
                                                          f"{_number_hint(scale)}")
        elif name not in fields:
            raise ConfigError(file, where, f"not a scenario field of {env} (valid: {', '.join(fields)}); a params "
                                           f"leaf is written {{path: ..., scale: ..., values: [...]}}")
        if name in scenario:
            raise ConfigError(file, where, "is also fixed in `scenario`; keep it in one place")
        if not isinstance(values, list) or not values or len(set(map(repr, values))) != len(values):
            raise ConfigError(file, f"{where}" + (".values" if path else ""),
                              f"must be a non-empty list of distinct values, got {values!r}")
        if path is not None and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ConfigError(file, f"{where}.values", f"must be numbers (a params leaf is a float), got {values!r}"
                                                       f"{next(filter(None, map(_number_hint, values)), '')}")
        axes.append(Axis(name=name, values=list(values), path=path, scale=float(scale)))
    from memgym import policies as policy_registry

    names = policy_registry.policy_names(env)
    chosen = d.get("policies")
    if chosen is not None:
        if not isinstance(chosen, list) or not chosen:
            raise ConfigError(file, "policies", f"must be a list of policy names of {env}, got {chosen!r}")
        for p in chosen:
            if p not in names:
                raise ConfigError(file, "policies", f"unknown policy {p!r} of {env}; valid: {', '.join(names)}")
    grid = Grid(env_id=env, scenario=dict(scenario), axes=axes, seeds=_int(d, "seeds", file, 4, 1),
                seed=_int(d, "seed", file, 0, 0), chunk=_int(d, "chunk", file, 16, 1), policies=chosen,
                source=str(file))
    first = {a.name: a.values[0] for a in axes if a.path is None}
    for a in axes:
        if a.path is not None:
            _check_path(env, {**scenario, **first}, a, file)
    return grid


def load(path_or_name, env_id: str | None = None) -> Grid:
    """A grid from a YAML path or the name of a shipped one (configs/explore/NAME.yaml)."""
    path = preset_path("explore", path_or_name)
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(path, "<file>", f"not valid YAML: {e}") from None
    return validate(data, path, env_id)


def playing_names(env_id: str, chosen) -> list[str]:
    """The registered policies a grid plays: the chosen ones with the heuristic and the oracle, registry order."""
    from memgym import policies as policy_registry

    from ..evaluation.evaluate import ORACLE

    names = policy_registry.policy_names(env_id)
    keep = set(names if chosen is None else chosen) | {policy_registry.heuristic_name(env_id), ORACLE}
    return [n for n in names if n in keep]


# -- one chunk (runs here or in a Ray worker) ---------------------------------------------------------------
_WORKER: dict = {}  # per process: the environment and the loaded learned runs, kept across chunks (the compiled
# program is kept by `evaluate._episodes_policies`)


def _learned(runs: tuple) -> dict:
    from ..evaluation.evaluate import load_learned

    key = ("learned", runs)
    if key not in _WORKER:
        _WORKER[key] = {n: pol for n, (how, pol) in load_learned(list(runs)).items() if how == "jax"}
    return _WORKER[key]


def play_chunk(grid: Grid, points: list[dict], names: list[str], learned_runs: tuple = ()) -> dict:
    """Every policy on `points` (one chunk). Returns {"policies": names played, "feasible": [bool],
    "reason": [str], "reward": f[P, n, seeds], "metrics": {name: f[P, n, seeds]}, "seconds": float,
    "compiled": whether this call compiled a program (a worker's first chunk)} with NaN where a point is
    infeasible or a learned policy cannot play it."""
    import jax
    import jax.numpy as jnp

    from memgym.policies import get_policy

    from ..evaluation import evaluate

    t0 = time.perf_counter()
    key = ("env", grid.env_id)
    env = _WORKER.setdefault(key, registry.env_class(grid.env_id)())
    learned = _learned(tuple(learned_runs))
    funcs = {**{n: get_policy(grid.env_id, n) for n in names}, **learned}
    order = [*names, *learned]
    keys = jax.random.split(jax.random.PRNGKey(grid.seed), grid.seeds)
    built, reasons = [], []
    for point in points:
        fields = {**grid.scenario, **{a.name: point[a.name] for a in grid.axes if a.path is None}}
        try:
            params = env.default_params(**fields)
            for a in grid.axes:
                if a.path is not None:
                    params = set_leaf(params, a.path, float(point[a.name]) * a.scale)
            built.append(params)
            reasons.append("")
        except (ValueError, TypeError) as e:
            built.append(None)
            reasons.append(" ".join(str(e).split()))
    n = len(points)
    reward = np.full((len(order), n, grid.seeds), np.nan)
    metrics = {m: np.full((len(order), n, grid.seeds), np.nan) for m in env.metric_names}
    groups, compiled = {}, False
    for i, p in enumerate(built):
        if p is not None:
            sig = (jax.tree_util.tree_structure(p), tuple(np.shape(x) for x in jax.tree_util.tree_leaves(p)))
            groups.setdefault(sig, []).append(i)
    for members in groups.values():
        first = built[members[0]]
        playing = [n_ for n_ in order if n_ in names or evaluate._compatible(env, first, funcs[n_])]
        padded = members + [members[-1]] * (max(grid.chunk, len(members)) - len(members))
        stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *[built[i] for i in padded])
        programs = len(evaluate._PROGRAMS)
        r, m, _ = evaluate._episodes_policies(env, stacked, [funcs[p] for p in playing], keys)
        compiled |= len(evaluate._PROGRAMS) != programs  # a new program (this worker's first chunk)
        rows, cols = [order.index(p) for p in playing], np.asarray(members)
        reward[np.ix_(rows, cols)] = np.asarray(r).mean(-1)[:, :len(members)]  # per episode: mean over steps
        for k, v in m.items():
            metrics[k][np.ix_(rows, cols)] = np.asarray(v).mean(-1)[:, :len(members)]
    return {"policies": order, "feasible": [p is not None for p in built], "reason": reasons, "reward": reward,
            "metrics": metrics, "seconds": time.perf_counter() - t0, "compiled": compiled}


# -- the whole grid -----------------------------------------------------------------------------------------
def chunks(grid: Grid) -> list[list[dict]]:
    pts = grid.points()
    return [pts[i:i + grid.chunk] for i in range(0, len(pts), grid.chunk)]


def _kind(name: str, heuristic: str, learned: set) -> str:
    from ..evaluation.evaluate import _kind as evaluate_kind

    return "learned" if name in learned else evaluate_kind(name, heuristic)


def table(grid: Grid, parts: list[dict], learned_names: set) -> pd.DataFrame:
    """explore.csv's rows from the chunks' results (see the module docstring)."""
    from memgym import policies as policy_registry

    from ..evaluation.evaluate import ORACLE

    heuristic = policy_registry.heuristic_name(grid.env_id)
    rows, index = [], 0
    for points, part in zip(chunks(grid), parts):
        order = part["policies"]
        h, o = order.index(heuristic), order.index(ORACLE)
        reward, metrics = part["reward"], part["metrics"]
        for j, point in enumerate(points):
            for p, name in enumerate(order):
                r = reward[p, j]
                row = {"point": index + j, **point, "policy": name, "kind": _kind(name, heuristic, learned_names),
                       "feasible": part["feasible"][j], "reason": part["reason"][j]}
                with np.errstate(invalid="ignore", divide="ignore"):
                    row["mean_reward"] = float(np.mean(r))
                    row["score_vs_heuristic"] = float(np.mean(r / reward[h, j]))
                    row["score_vs_oracle"] = float(np.mean(r / reward[o, j]))
                    if "speedup" in metrics:
                        row["speedup"] = float(np.mean(metrics["speedup"][p, j]))
                    elif {"tokens_per_s", "baseline_tokens_per_s"} <= set(metrics):
                        row["speedup"] = float(np.mean(metrics["tokens_per_s"][p, j]
                                                       / metrics["baseline_tokens_per_s"][p, j]))
                row.update({f"metric_{k}": float(np.mean(v[p, j])) for k, v in metrics.items()})
                rows.append(row)
        index += len(points)
    return pd.DataFrame(rows)


def explore(grid: Grid, out_dir, learned_runs=(), ray: dict | None = None, progress: bool = False) -> pd.DataFrame:
    """Play the grid (chunks here, or as Ray tasks with `ray` = {"address": ..., "cpus": ...}); write
    explore.csv, explore.json and the heatmaps into `out_dir`; return the table."""
    from ..progress import bar

    out = output_folder(out_dir, "-o")
    runs = tuple(str(pathlib.Path(r).resolve()) for r in learned_runs or ())
    names = playing_names(grid.env_id, grid.policies)
    todo = chunks(grid)
    t0 = time.perf_counter()
    startup, workers = 0.0, 1
    with bar(len(todo), f"explore {grid.env_id}", enabled=progress, unit="chunk", unit_scale=False) as b:
        if ray is None:
            parts = []
            for points in todo:
                parts.append(play_chunk(grid, points, names, runs))
                b.update(1)
        else:
            from .cluster import session, task_options

            cpus = ray.get("cpus", 1)
            with session(ray.get("address"), cpus_per_worker=cpus) as (ray_mod, startup):
                workers = int(ray_mod.cluster_resources().get("CPU", 1)) // cpus
                task = ray_mod.remote(play_chunk).options(**task_options(cpus))
                grid_ref = ray_mod.put(grid)
                pending = [task.remote(grid_ref, points, names, runs) for points in todo]
                parts = [None] * len(pending)
                index = {f: i for i, f in enumerate(pending)}
                while pending:
                    done, pending = ray_mod.wait(pending, num_returns=1)
                    parts[index[done[0]]] = ray_mod.get(done[0])
                    b.update(1)
    wall = time.perf_counter() - t0
    learned_names = set(parts[0]["policies"]) - set(names) if parts else set()
    result = table(grid, parts, learned_names)
    write_atomic(out / CSV, result.to_csv(index=False))
    meta = {"grid": grid.to_dict(), "source": grid.source, "points": len(grid.points()), "chunks": len(todo),
            "policies": parts[0]["policies"] if parts else names, "runs": list(runs), "ray": ray is not None,
            "workers": workers, "wall_s": wall, "startup_s": startup, "chunk_s": [p["seconds"] for p in parts],
            "chunk_compiled": [p["compiled"] for p in parts]}
    write_atomic(out / META, json.dumps(meta, indent=1))
    from .explore_report import write_figures

    write_figures(out)
    return result


def format_explore(result: pd.DataFrame, meta: dict) -> str:
    """A few lines for the terminal: the grid, the time, and how often each policy wins."""
    from .explore_report import winners

    g = meta["grid"]
    axes = " × ".join(f"{k} ({len(v if isinstance(v, list) else v['values'])})" for k, v in g["axes"].items())
    feasible = result[result.feasible].point.nunique()
    lines = [f"{g['env']}: {meta['points']} points ({axes}; {feasible} feasible) × {len(meta['policies'])} "
             f"policies × {g['seeds']} seeds in {meta['wall_s']:.1f} s ({meta['chunks']} chunks of {g['chunk']}"
             f"{', Ray tasks on ' + str(meta['workers']) + ' workers' if meta['ray'] else ', in this process'})"]
    wins = winners(result)
    if len(wins):
        counts = wins.value_counts()
        lines.append("best policy (oracle aside) per feasible point: "
                     + ", ".join(f"{p} {c}" for p, c in counts.items()))
    return "\n".join(lines)
