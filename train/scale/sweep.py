"""`memgym sweep`: Ray Tune over experiment configs (hyperparameters, seeds, scenario-distribution fields).

A sweep config (`configs/sweeps/<name>.yaml`; keys marked * are required):

    experiment*      str|map  the base experiment: a preset name, a YAML path, or an inline experiment
                              mapping (memgym.train.experiment); algorithm must be ppo_jax
    set              map      dotted key: value, applied to the base first (e.g. total_timesteps: 200000)
    space*           map      dotted key: one of
                                {grid: [v1, v2, ...]}     every value (Tune's grid_search; the grids multiply)
                                {choice: [v1, v2, ...]}   one drawn per trial
                                {uniform: [lo, hi]}       integers when lo and hi are written as integers
                                {loguniform: [lo, hi]}    0 < lo; integers as above
    num_samples      int      > 0, default 1: draws of the non-grid keys (each repeats the whole grid)
    max_concurrent_trials int > 0, default: as many as the cluster's CPUs hold
    cpus_per_trial   int      > 0, default 1: Ray CPUs per trial (JAX's threads follow, see cluster.py)
    scheduler        map      optional ASHA early stopping on the score:
                              {asha: {grace_period: env steps > 0, reduction_factor: int >= 2 (default 3)}}
    seed             int      >= 0, default 0: the search's random state (the same draws on a rerun)

A dotted key names a field of the experiment config: `seed`, `num_envs`, `total_timesteps`,
`hyperparameters.learning_rate`, `env_params.batch`, `distribution.ranges.hbm_capacity_gb`,
`distribution.size`... A base whose `distribution` is a benchmark name is inlined (its `train` split) when a
key reaches into it. Every value (grid and choice values, a range's ends) is checked up front by validating
the experiment it makes, so a bad key or value is a one-line error naming the sweep file and the key.

Each trial is `memgym train` of its resolved experiment (name `<base name>-<trial id>`) into its own folder
`<sweep dir>/trial_<id>/`: config.yaml, tb/ and checkpoints/ as `memgym train --run-dir` writes them. After
every logged chunk it reports to Tune the seeds' mean of the logged scalars and `score`, the mean over seeds of
rollout/ep_rew_mean ÷ the heuristic's mean episode return (what `memgym train` prints as "= r × heuristic");
ASHA compares trials on it at equal env steps (`step`). The sweep folder is Tune's experiment folder:
`--resume` restores it with `Tuner.restore` (finished trials are kept; an interrupted trial is started again
by Tune and continues from its latest checkpoint). At the end: `summary.csv`, one row per trial sorted by its
last score, and `best.yaml`, the best trial's config.yaml (the best among trials that ran their whole budget,
so an early-stopped trial's early score does not win), which `memgym train --config` runs as is.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import os
import pathlib

import pandas as pd
import yaml

from memgym.envs import distribution as distributions
from memgym.sim.config import ConfigError, preset_path

from .. import experiment
from ..files import output_folder, write_atomic

log = logging.getLogger(__name__)

KEYS = ("experiment", "set", "space", "num_samples", "max_concurrent_trials", "cpus_per_trial", "scheduler", "seed")
KINDS = ("grid", "choice", "uniform", "loguniform")
METRIC, MODE, TIME = "score", "max", "step"
STATE = "sweep.yaml"  # the resolved sweep, stored at the start; --resume must match it


@dataclasses.dataclass
class Sweep:
    base: dict  # the base experiment, resolved (defaults filled in) with `set` applied
    space: dict  # dotted key -> (kind, values)
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    cpus_per_trial: int = 1
    scheduler: dict | None = None  # {"grace_period": int, "reduction_factor": int}
    seed: int = 0
    source: str = dataclasses.field(default="<dict>", compare=False)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source")
        d["space"] = {k: {kind: list(v)} for k, (kind, v) in self.space.items()}
        return d


def set_dotted(d: dict, dotted: str, value, file, where: str) -> dict:
    """A deep copy of `d` with the dotted key set (mappings on the way are created)."""
    d = copy.deepcopy(d)
    node = d
    *parents, last = dotted.split(".")
    for i, p in enumerate(parents):
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(file, where, f"'{'.'.join(parents[:i + 1])}' is not a mapping in the experiment, "
                                           f"so '{dotted}' names nothing")
    node[last] = value
    return d


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_domain(spec, file, where):
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise ConfigError(file, where, f"must be one of {{grid: [...]}}, {{choice: [...]}}, {{uniform: [lo, hi]}}, "
                                       f"{{loguniform: [lo, hi]}}; got {spec!r}")
    (kind, values), = spec.items()
    if not isinstance(values, list) or not values:
        raise ConfigError(file, f"{where}.{kind}", f"must be a non-empty list, got {values!r}")
    if kind in ("uniform", "loguniform"):
        ok = len(values) == 2 and all(map(_number, values)) and values[0] <= values[1]
        if not ok or (kind == "loguniform" and values[0] <= 0):
            low = "0 < lo <= hi" if kind == "loguniform" else "lo <= hi"
            raise ConfigError(file, f"{where}.{kind}", f"must be [lo, hi] with {low} (finite numbers), got {values!r}")
    return kind, list(values)


def _check_point(base: dict, key: str, value, file, where: str) -> None:
    """Validate the experiment that `key: value` makes; re-raise naming the sweep file and the key."""
    d = set_dotted(base, key, value, file, where)
    try:
        experiment.validate(d, file)
    except ConfigError as e:
        raise ConfigError(file, where, f"{value!r} makes an invalid experiment: key '{e.key}': {e.reason}") from None


def _positive(d, key, file, default, lo=1):
    v = d.get(key, default)
    if v is default and default is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ConfigError(file, key, f"must be an integer >= {lo}, got {v!r}")
    return v


def validate(d, file="<dict>") -> Sweep:
    """A raw mapping -> Sweep, or a ConfigError naming `file` and the key."""
    if not isinstance(d, dict):
        raise ConfigError(file, "<file>", "must be a mapping of keys to values")
    for k in d:
        if k not in KEYS:
            raise ConfigError(file, k, f"unknown key; valid keys: {', '.join(KEYS)}")
    for k in ("experiment", "space"):
        if k not in d:
            raise ConfigError(file, k, "missing (required)")
    base_spec = d["experiment"]
    if isinstance(base_spec, str):
        try:
            exp = experiment.load(base_spec)
        except ConfigError as e:
            raise ConfigError(file, "experiment", f"{base_spec!r}: {e}") from None
    elif isinstance(base_spec, dict):
        exp = experiment.validate(base_spec, f"{file} (experiment)")
    else:
        raise ConfigError(file, "experiment", f"must be a preset name, a YAML path or a mapping, got {base_spec!r}")
    if exp.algorithm != "ppo_jax":
        raise ConfigError(file, "experiment", f"sweeps train with algorithm ppo_jax, the base uses {exp.algorithm}")
    base = exp.to_dict()
    fixed = d.get("set") or {}
    space_raw = d["space"]
    if not isinstance(fixed, dict):
        raise ConfigError(file, "set", f"must be a mapping of dotted keys to values, got {fixed!r}")
    if not isinstance(space_raw, dict) or not space_raw:
        raise ConfigError(file, "space", "must map dotted experiment keys to {grid|choice|uniform|loguniform: ...}")
    keys = [*fixed, *space_raw]
    bad = [k for k in keys if not isinstance(k, str) or k.split(".")[0] not in experiment.KEYS or k == "name"]
    if bad:
        where = "set" if bad[0] in fixed else "space"
        raise ConfigError(file, f"{where}.{bad[0]}", f"not a field of an experiment config; valid first parts: "
                                                     f"{', '.join(k for k in experiment.KEYS if k != 'name')}")
    if any(k.startswith("distribution.") for k in keys):
        if base.get("distribution") is None:
            k = next(k for k in keys if k.startswith("distribution."))
            raise ConfigError(file, f"{'set' if k in fixed else 'space'}.{k}",
                              "the base experiment trains on one scenario (no distribution); vary env_params.*")
        if isinstance(base["distribution"], str):  # a benchmark: inline its train split
            base["distribution"] = distributions.resolve(exp.env, base["distribution"], file).to_dict()
    elif isinstance(base.get("distribution"), str) and base["distribution"].endswith((".yaml", ".yml")):
        base["distribution"] = str(pathlib.Path(base["distribution"]).resolve())  # trials run elsewhere
    for k, v in fixed.items():
        base = set_dotted(base, k, v, file, f"set.{k}")
    try:
        base = experiment.validate(base, file).to_dict()
    except ConfigError as e:
        raise ConfigError(file, "set", f"makes an invalid experiment: key '{e.key}': {e.reason}") from None
    space = {}
    for k, spec in space_raw.items():
        kind, values = _parse_domain(spec, file, f"space.{k}")
        for v in values:
            _check_point(base, k, v, file, f"space.{k}")
        space[k] = (kind, values)
    sched = d.get("scheduler")
    if sched is not None:
        if not (isinstance(sched, dict) and list(sched) == ["asha"] and isinstance(sched["asha"] or {}, dict)):
            raise ConfigError(file, "scheduler", f"must be {{asha: {{grace_period: STEPS, reduction_factor: N}}}} "
                                                 f"or absent, got {sched!r}")
        asha = sched["asha"] or {}
        for k in asha:
            if k not in ("grace_period", "reduction_factor"):
                raise ConfigError(file, f"scheduler.asha.{k}", "unknown key; valid: grace_period, reduction_factor")
        sched = {"grace_period": _positive(asha, "grace_period", file, max(1, base["log_every"])),
                 "reduction_factor": _positive(asha, "reduction_factor", file, 3, lo=2)}
    return Sweep(base=base, space=space, num_samples=_positive(d, "num_samples", file, 1),
                 max_concurrent_trials=_positive(d, "max_concurrent_trials", file, None),
                 cpus_per_trial=_positive(d, "cpus_per_trial", file, 1), scheduler=sched,
                 seed=_positive(d, "seed", file, 0, lo=0), source=str(file))


def load(path_or_name) -> Sweep:
    """A sweep from a YAML path or the name of a shipped one (configs/sweeps/NAME.yaml)."""
    path = preset_path("sweeps", path_or_name)
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(path, "<file>", f"not valid YAML: {e}") from None
    return validate(data, path)


def trial_experiment(base: dict, values: dict, name: str, source="<sweep>") -> experiment.Experiment:
    """The experiment of one trial: the base with the trial's dotted values set."""
    d = dict(base, name=name)
    for k, v in values.items():
        d = set_dotted(d, k, v, source, f"space.{k}")
    return experiment.validate(d, source)


def trial_metrics(step: int, scalars: list, baseline: float) -> dict:
    """What a trial reports: the seeds' means of the logged scalars, `score` (the mean over seeds of
    rollout/ep_rew_mean ÷ the heuristic's return; NaN while no seed finished an episode) and `step`."""
    out = {"step": int(step), "heuristic_ep_rew_mean": float(baseline)}
    tags = sorted({t for s in scalars for t in s if t != "time/fps" and not t.startswith("baseline/")})
    for t in tags:
        vals = [s[t] for s in scalars if t in s and math.isfinite(s[t])]
        out[t] = sum(vals) / len(vals) if vals else math.nan
    ratios = [s["rollout/ep_rew_mean"] / baseline for s in scalars
              if math.isfinite(s.get("rollout/ep_rew_mean", math.nan)) and baseline]
    out[METRIC] = sum(ratios) / len(ratios) if ratios else math.nan
    return out


def _checkpoint_step(exp, run_dir) -> int | None:
    """The latest checkpoint's step of the same experiment in `run_dir`, if there is one that reads."""
    from memgym.policies.learned import CheckpointError, checkpoint_paths, read_checkpoint

    paths = checkpoint_paths(run_dir)
    config = pathlib.Path(run_dir) / "config.yaml"
    if not paths or not config.is_file():
        return None
    try:
        if experiment.load(config) != exp:
            return None
        return int(read_checkpoint(paths[-1])[1]["global_step"])
    except (ConfigError, CheckpointError):
        return None


def run_trial(values: dict, base: dict, name: str, source: str, root: str) -> None:
    """Tune's function trainable: train the trial's experiment into its folder in the sweep folder `root`
    (Tune's folder of the trial: Tune keeps its result files there too), reporting each chunk. The run is
    written there directly, not into Tune's per-session working folder, so that a trial Tune starts again after
    an interruption finds its checkpoints (on a cluster `root` is a shared filesystem, as Tune requires)."""
    from ray import tune

    ctx = tune.get_context()
    run_dir = pathlib.Path(root) / dirname(ctx.get_trial_id())
    exp = trial_experiment(base, values, f"{name}-{ctx.get_trial_id()}", source)

    def report(step, scalars, baseline):
        tune.report(trial_metrics(step, scalars, baseline))

    from .. import jax_train

    if len(jax_train._PROGRAMS) >= 2:  # a reused worker keeps a program or two, not one per trial it ran
        jax_train._PROGRAMS.clear()
    train_trial(exp, run_dir, report)


def train_trial(exp, run_dir, on_log) -> dict:
    """Train `exp` into `run_dir`: from the start, or, when the folder holds a checkpoint of the same
    experiment short of its budget (Tune started an interrupted trial again), on from that checkpoint to the
    same end (the remaining steps: the learning-rate schedule and the keys continue as if uninterrupted)."""
    done = _checkpoint_step(exp, run_dir)
    if done is not None and done < exp.total_timesteps:
        log.info("%s: continuing from step %d", pathlib.Path(run_dir).name, done)
        rest = dataclasses.replace(exp, total_timesteps=exp.total_timesteps - done)
        return experiment.train(rest, run_dir, resume=True, progress=False, on_log=on_log)
    return experiment.train(exp, run_dir, progress=False, overwrite=True, on_log=on_log)


def dirname(trial_id: str) -> str:
    return f"trial_{trial_id}"


def trial_dirname(trial) -> str:
    return dirname(trial.trial_id)


def param_space(sweep: Sweep) -> dict:
    from ray import tune

    def domain(kind, values):
        if kind == "grid":
            return tune.grid_search(values)
        if kind == "choice":
            return tune.choice(values)
        lo, hi = values
        integer = all(isinstance(v, int) for v in values)
        if kind == "uniform":
            return tune.randint(lo, hi + 1) if integer else tune.uniform(lo, hi)
        return tune.lograndint(lo, hi + 1) if integer else tune.loguniform(lo, hi)

    return {k: domain(kind, values) for k, (kind, values) in sweep.space.items()}


@contextlib.contextmanager
def _without_tune_tensorboard():
    """Tune adds a TensorBoard logger writing into each trial folder beside the trial's own tb/; the CSV and
    JSON loggers are passed explicitly instead (ResultGrid reads them)."""
    old = os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)
        else:
            os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = old


def _check_folder(sweep: Sweep, out: pathlib.Path, resume: bool, tuner_cls) -> None:
    stored = out / STATE
    restorable = tuner_cls.can_restore(str(out))
    if not resume:
        if restorable or stored.exists():
            raise ConfigError(out, "<sweep dir>", "already holds a sweep: pass --resume to continue it, or -o for a "
                                                  "new folder")
        return
    if not restorable or not stored.is_file():
        raise ConfigError(out, "<sweep dir>", "--resume: no sweep to resume here (no Tune experiment state)")
    old = yaml.safe_load(stored.read_text())
    for k, v in sweep.to_dict().items():
        if old.get(k) != v:
            raise ConfigError(stored, k, f"--resume: the sweep was started with {old.get(k)!r}, the config now "
                                         f"says {v!r}; use a new -o folder or the stored config")


def run_sweep(sweep: Sweep, out_dir, resume: bool = False, address: str | None = None,
              progress: bool = True, callbacks=()) -> pd.DataFrame:
    """Run (or with `resume`, restore and finish) the sweep in `out_dir`; write summary.csv and best.yaml;
    return the summary table. `callbacks`: more Tune callbacks (kept in the sweep's state, so they must
    pickle). Ctrl+C (or SIGUSR1) stops the sweep the way Tune does: the state is saved, --resume continues."""
    from .cluster import require_ray, session

    require_ray()
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if resume and not pathlib.Path(out_dir).is_dir():
        raise ConfigError(out_dir, "<sweep dir>", "--resume: no such folder, so no sweep to resume")
    out = output_folder(out_dir, "-o").resolve()
    _check_folder(sweep, out, resume, tune.Tuner)
    base_name = sweep.base["name"]
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=sweep.base, name=base_name, source=sweep.source, root=str(out)),
        {"cpu": sweep.cpus_per_trial})
    with session(address, cpus_per_worker=sweep.cpus_per_trial), _without_tune_tensorboard():
        if resume:
            tuner = tune.Tuner.restore(str(out), trainable, resume_unfinished=True, restart_errored=True)
        else:
            write_atomic(out / STATE, yaml.safe_dump(sweep.to_dict(), sort_keys=False, default_flow_style=None))
            scheduler = None
            if sweep.scheduler:
                max_t = max(int(v) for v in [sweep.base["total_timesteps"]] +
                            list(sweep.space.get("total_timesteps", ("", []))[1]))
                scheduler = ASHAScheduler(time_attr=TIME, max_t=max_t, **sweep.scheduler)
            tuner = tune.Tuner(
                trainable, param_space=param_space(sweep),
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode=MODE, scheduler=scheduler, num_samples=sweep.num_samples,
                    trial_dirname_creator=trial_dirname,
                    reuse_actors=True,  # a trial after another in the same process reuses its compiled program
                    search_alg=BasicVariantGenerator(random_state=sweep.seed,
                                                     max_concurrent=sweep.max_concurrent_trials or 0)),
                run_config=tune.RunConfig(name=out.name, storage_path=str(out.parent), verbose=1 if progress else 0,
                                          callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), *callbacks]))
        grid = tuner.fit()
    return summarize(grid, sweep, out)


def summarize(grid, sweep: Sweep, out: pathlib.Path) -> pd.DataFrame:
    """summary.csv (a row per trial, best last score first) and best.yaml (see the module docstring)."""
    rows = []
    for r in grid:
        m = r.metrics or {}
        trial = pathlib.Path(r.path).name
        run = out / trial
        total = sweep.base["total_timesteps"]
        if (run / "config.yaml").is_file():
            total = experiment.load(run / "config.yaml").total_timesteps
        step = m.get(TIME)
        row = {"trial": trial, METRIC: m.get(METRIC, math.nan), "step": step,
               "complete": step is not None and step >= total, "error": str(r.error).splitlines()[0] if r.error else ""}
        row.update({k: (r.config or {}).get(k) for k in sweep.space})
        row["rollout/ep_rew_mean"] = m.get("rollout/ep_rew_mean", math.nan)
        row["heuristic_ep_rew_mean"] = m.get("heuristic_ep_rew_mean", math.nan)
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(METRIC, ascending=False, na_position="last", kind="stable")
    write_atomic(out / "summary.csv", table.to_csv(index=False))
    scored = table[table[METRIC].notna()]
    best = scored[scored.complete] if scored.complete.any() else scored
    if len(best):
        trial = best.iloc[0]
        config = (out / trial.trial / "config.yaml").read_text()
        head = (f"# The best trial of the sweep in {out} ({trial.trial}: score {trial[METRIC]:.4f} × the heuristic "
                f"at step {trial.step}).\n# `memgym train --config {out / 'best.yaml'}` trains it again.\n")
        write_atomic(out / "best.yaml", head + config)
    return table.reset_index(drop=True)


def format_summary(table: pd.DataFrame, out) -> str:
    """The summary table for the terminal."""
    cols = [c for c in table.columns if c not in ("error", "heuristic_ep_rew_mean")]
    text = table[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}")
    errors = table[table.error != ""]
    lines = [f"sweep in {out}: {len(table)} trials, best score first (score = rollout/ep_rew_mean ÷ the "
             f"heuristic's)", text]
    if len(errors):
        lines.append(f"{len(errors)} trials failed (see their error.txt): {', '.join(errors.trial)}")
    if (pathlib.Path(out) / "best.yaml").is_file():
        lines.append(f"best config: {pathlib.Path(out) / 'best.yaml'} (`memgym train --config` runs it)")
    return "\n".join(lines)
