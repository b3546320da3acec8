"""Experiment configs: one YAML file says what to train, on which scenario, for how long.

Schema (`configs/experiments/<name>.yaml`; keys marked * are required):

    name*            str    run folder name: runs/<name>/ (one path component: letters, digits, . _ -,
                            starting with a letter or digit)
    env*             str    a registered id, with or without the "memgym/" prefix (KernelMapping-v0)
    env_params       map    fields of the env's Scenario (= env.default_params keywords), checked, default {}
    distribution     str|map train on a scenario distribution rather than one scenario: a benchmark name
                            (configs/benchmarks/NAME.yaml: its `train` split) or an inline distribution
                            (memgym.envs.distribution); env_params are then added to its `common` fields.
                            Default: none (the env_params scenario)
    algorithm*       str    ppo_jax | PPO | A2C | DQN | MaskablePPO
    total_timesteps* int    > 0; env steps per seed (with --resume: steps added to the checkpoint's count)
    seed             int    >= 0, default 0
    num_envs         int    > 0, default 128 (ppo_jax) or 8 (SB3)
    n_seeds          int    > 0, default 1; ppo_jax trains the seeds vmapped in one program; SB3 must be 1
    hyperparameters  map    algorithm-specific, default {}. ppo_jax: keys of
                            memgym.train.ppo_jax.HYPERPARAMETERS (unknown keys are an error), defaults filled
                            in. SB3: constructor keyword arguments of the algorithm class (checked against its
                            signature), passed through.
    checkpoint_every int    > 0, timesteps between checkpoints, default total_timesteps // 10
    log_every        int    > 0, timesteps between TensorBoard points, default total_timesteps // 100
                            (ppo_jax: rounded down to whole updates; SB3 on-policy: to whole rollouts;
                            DQN logs every 4 episodes, SB3's default)
    eval             map    for `memgym evaluate`: seeds: int > 0, scenarios: {name: {env_params overrides}}

A run folder `runs/<name>/` (or --run-dir) holds `config.yaml` (this config resolved: defaults filled in, the
env id canonical; loading it gives the same Experiment), TensorBoard event files under `tb/`, and
`checkpoints/`. Files are written atomically (a temporary file, then os.replace).

YAML 1.1 reads `3e-4` as text (it wants `3.0e-4`); such values are refused with that hint rather than passed on.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import pathlib
import re
import shutil

import yaml

from memgym.envs import distribution, registry
from memgym.policies import policy_names
from memgym.sim.config import ConfigError, preset_path, presets  # noqa: F401 (presets: re-exported)

from . import jax_train
from .files import remove_stale_temps, write_atomic
from .ppo_jax import HYPERPARAMETERS, default_hyperparameters
from .progress import fmt

log = logging.getLogger(__name__)

ALGORITHMS = ("ppo_jax", "PPO", "A2C", "DQN", "MaskablePPO")
MAX_COUNT = 1 << 20  # environments, steps per update, seeds, layer widths
MAX_STEPS = 10**12  # total_timesteps, checkpoint_every, log_every
# SB3 constructor arguments that are numbers: (lo, hi, integer); SB3 asserts on some of these deep inside
SB3_RANGES = {"n_steps": (1, MAX_COUNT, True), "batch_size": (2, MAX_COUNT, True), "n_epochs": (1, 10_000, True),
              "buffer_size": (1, 10**9, True), "learning_starts": (0, MAX_STEPS, True),
              "gradient_steps": (-1, 10_000, True), "target_update_interval": (1, MAX_STEPS, True),
              "learning_rate": (0, 1e3, False), "gamma": (0, 1, False), "gae_lambda": (0, 1, False),
              "clip_range": (0, 1e3, False), "ent_coef": (0, 1e3, False), "vf_coef": (0, 1e3, False),
              "max_grad_norm": (0, 1e6, False), "tau": (0, 1, False), "exploration_fraction": (0, 1, False),
              "exploration_initial_eps": (0, 1, False), "exploration_final_eps": (0, 1, False)}
SB3_ALGORITHMS = ALGORITHMS[1:]
KEYS = ("name", "env", "env_params", "distribution", "algorithm", "total_timesteps", "seed", "num_envs", "n_seeds",
        "hyperparameters", "checkpoint_every", "log_every", "eval")
REQUIRED = ("name", "env", "algorithm", "total_timesteps")


@dataclasses.dataclass
class Experiment:
    name: str
    env: str
    env_params: dict
    algorithm: str
    total_timesteps: int
    seed: int
    num_envs: int
    n_seeds: int
    hyperparameters: dict
    checkpoint_every: int
    log_every: int
    eval: dict
    distribution: str | dict | None = None
    source: str = dataclasses.field(default="<dict>", compare=False)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source")
        return d


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _type_name(v) -> str:
    return f"{v!r} ({type(v).__name__})"


def _number_hint(v) -> str:
    if isinstance(v, str):
        try:
            float(v)
            return f"; YAML read {v!r} as text: write it with a decimal point, e.g. 3.0e-4"
        except ValueError:
            pass
    return ""


def _int(d, key, file, minimum=1, default=None, maximum=MAX_STEPS):
    v = d.get(key, default)
    if not _is_int(v) or not minimum <= v <= maximum:
        raise ConfigError(file, key, f"must be an integer >= {minimum} (and <= {maximum}), got {_type_name(v)}"
                                     f"{_number_hint(v)}")
    return v


def _mapping(d, key, file):
    v = d.get(key, {})
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(file, key, f"must be a mapping (key: value lines), got {_type_name(v)}")
    return dict(v)


def _check_env_params(env_id, env_params, file, key="env_params"):
    """Construct the environment's Scenario from the overrides (its checks; nothing is built); name the
    offending key on failure."""
    scenario_cls = registry.scenario_class(env_id)
    valid = distribution.scenario_fields(env_id)
    for k in env_params:
        if k not in valid:
            raise ConfigError(file, f"{key}.{k}", f"unknown parameter of {env_id}; valid: {', '.join(valid)}")

    def attempt(kwargs):
        try:
            scenario_cls(**kwargs)
            return None
        except (ValueError, TypeError, KeyError) as e:  # ConfigError is a ValueError
            return e

    err = attempt(env_params)
    if err is None:
        return
    if isinstance(err, ConfigError) and str(err.key).split("[")[0] in env_params:  # memgym.sim.validate's
        raise ConfigError(file, f"{key}.{err.key}", err.reason)
    for k, v in env_params.items():  # the first key that fails on its own, else the combination
        if attempt({k: v}) is not None:
            raise ConfigError(file, f"{key}.{k}", f"{v!r} rejected: {err}")
    raise ConfigError(file, key, f"rejected: {err}")


def _check_ppo_jax_hyperparameters(hp, file, env_id):
    out = default_hyperparameters()
    for k, v in hp.items():
        if k not in HYPERPARAMETERS:
            raise ConfigError(file, f"hyperparameters.{k}",
                              f"unknown ppo_jax hyperparameter; valid: {', '.join(HYPERPARAMETERS)}")
        kind = HYPERPARAMETERS[k][1]
        where = f"hyperparameters.{k}"
        if kind == "int" and not (_is_int(v) and 0 < v <= MAX_COUNT):
            raise ConfigError(file, where, f"must be an integer in [1, {MAX_COUNT}], got {_type_name(v)}"
                                           f"{_number_hint(v)}")
        if kind == "float" and not (_is_number(v) and 0 <= v <= 1e6):
            raise ConfigError(file, where, f"must be a finite number in [0, 1e6], got {_type_name(v)}"
                                           f"{_number_hint(v)}")
        if kind == "fraction" and not (_is_number(v) and 0 <= v <= 1):
            raise ConfigError(file, where, f"must be a number in [0, 1], got {_type_name(v)}{_number_hint(v)}")
        if kind == "bool" and not isinstance(v, bool):
            raise ConfigError(file, where, f"must be true or false, got {_type_name(v)}")
        if kind == "sizes" and not (isinstance(v, list) and v and all(_is_int(x) and 0 < x <= MAX_COUNT for x in v)):
            raise ConfigError(file, where, f"must be a list of positive integers (layer widths), got {v!r}")
        if kind == "policy" and v is not None and v not in (names := policy_names(env_id)):
            raise ConfigError(file, where, f"must be null or a policy of {env_id} ({', '.join(names)}), got {v!r}")
        if isinstance(kind, tuple) and v not in kind:
            raise ConfigError(file, where, f"must be one of {', '.join(kind)}, got {v!r}")
        out[k] = float(v) if kind in ("float", "fraction") else v
    return out


def _check_sb3_hyperparameters(algorithm, hp, file):
    from .sb3_train import algorithm_class  # SB3 imports torch: only for SB3 experiments

    cls = algorithm_class(algorithm)
    reserved = {"env", "policy", "seed", "tensorboard_log", "verbose", "_init_setup_model", "device"}
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in reserved | {"self"}]
    for k, v in hp.items():
        if k not in valid:
            raise ConfigError(file, f"hyperparameters.{k}",
                              f"not a {algorithm} constructor argument; valid: {', '.join(valid)}")
        if isinstance(v, str) and _number_hint(v):
            raise ConfigError(file, f"hyperparameters.{k}", f"got text {v!r}{_number_hint(v)}")
        if _is_number(v) and not math.isfinite(v):
            raise ConfigError(file, f"hyperparameters.{k}", f"must be a finite number, got {v!r}")
        if k in SB3_RANGES:
            lo, hi, integer = SB3_RANGES[k]
            if not (_is_number(v) and (_is_int(v) or not integer) and lo <= v <= hi):
                kind = "an integer" if integer else "a number"
                raise ConfigError(file, f"hyperparameters.{k}", f"must be {kind} in [{lo:g}, {hi:g}], got "
                                                                f"{_type_name(v)}")
    return hp


def _check_eval(ev, file):
    for k in ev:
        if k not in ("seeds", "scenarios"):
            raise ConfigError(file, f"eval.{k}", "unknown key; valid keys: scenarios, seeds")
    if "seeds" in ev:
        v = ev["seeds"]
        if not _is_int(v) or v < 1:
            raise ConfigError(file, "eval.seeds", f"must be an integer >= 1, got {_type_name(v)}")
    scenarios = ev.get("scenarios", {})
    if not isinstance(scenarios, dict):
        raise ConfigError(file, "eval.scenarios", f"must be a mapping of name: {{env_params overrides}}, "
                                                  f"got {_type_name(scenarios)}")
    for name, over in scenarios.items():
        if not isinstance(over, dict):
            raise ConfigError(file, f"eval.scenarios.{name}",
                              f"must be a mapping of env_params overrides, got {_type_name(over)}")
    return ev


def validate(d, file="<dict>") -> Experiment:
    """A raw mapping -> Experiment with defaults filled in, or a ConfigError naming `file` and the key."""
    if not isinstance(d, dict):
        raise ConfigError(file, "<file>", "must be a mapping of keys to values")
    for k in d:
        if k not in KEYS:
            raise ConfigError(file, k, f"unknown key; valid keys: {', '.join(KEYS)}")
    for k in REQUIRED:
        if k not in d:
            raise ConfigError(file, k, "missing (required)")
    name = d["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", name):
        raise ConfigError(file, "name", f"must be one folder name: letters, digits, '.', '_', '-', starting with a "
                                        f"letter or digit (not '.' or '..'), at most 128 characters; got {name!r}")
    env_id = d["env"]
    try:
        env_id = registry.canonical_id(env_id) if isinstance(env_id, str) else None
    except ValueError:
        env_id = None
    if env_id is None:
        raise ConfigError(file, "env", f"unknown environment {d['env']!r}; valid: {', '.join(registry.registered())}")
    algorithm = d["algorithm"]
    if algorithm not in ALGORITHMS:
        raise ConfigError(file, "algorithm", f"unknown algorithm {algorithm!r}; valid: {', '.join(ALGORITHMS)}")
    total = _int(d, "total_timesteps", file)
    seed = _int(d, "seed", file, minimum=0, default=0, maximum=2**32 - 1)
    num_envs = _int(d, "num_envs", file, default=128 if algorithm == "ppo_jax" else 8, maximum=MAX_COUNT)
    n_seeds = _int(d, "n_seeds", file, default=1, maximum=1024)
    if algorithm != "ppo_jax" and n_seeds != 1:
        raise ConfigError(file, "n_seeds", f"{algorithm} trains one seed per run: use 1 (ppo_jax vmaps seeds), "
                                           f"got {n_seeds}")
    env_params = _mapping(d, "env_params", file)
    _check_env_params(env_id, env_params, file)
    hp = _mapping(d, "hyperparameters", file)
    if algorithm == "ppo_jax":
        hp = _check_ppo_jax_hyperparameters(hp, file, env_id)
        batch = num_envs * hp["num_steps"]
        if batch % hp["num_minibatches"]:
            raise ConfigError(file, "hyperparameters.num_minibatches",
                              f"must divide num_envs × num_steps = {batch}, got {hp['num_minibatches']}")
    else:
        hp = _check_sb3_hyperparameters(algorithm, hp, file)
        if algorithm != "DQN" and num_envs * hp.get("n_steps", 2048 if algorithm != "A2C" else 5) < 2:
            raise ConfigError(file, "hyperparameters.n_steps", f"num_envs × n_steps must be >= 2 (SB3's rollout "
                                                               f"buffer), got {num_envs} × {hp.get('n_steps')}")
    checkpoint_every = _int(d, "checkpoint_every", file, default=max(1, total // 10))
    log_every = _int(d, "log_every", file, default=max(1, total // 100))
    dist = d.get("distribution")
    if dist is not None:
        if not isinstance(dist, (str, dict)):
            raise ConfigError(file, "distribution", f"must be a benchmark name or a distribution mapping, got "
                                                    f"{_type_name(dist)}")
        if algorithm != "ppo_jax":
            raise ConfigError(file, "distribution", f"{algorithm} trains on one scenario; distributions need "
                                                    f"algorithm: ppo_jax")
        resolved = distribution.resolve(env_id, dist, file)
        distribution.from_dict(env_id, {**resolved.to_dict(), "common": {**resolved.common, **env_params}},
                               file, "distribution")
    ev = _check_eval(_mapping(d, "eval", file), file)
    for name_, over in ev.get("scenarios", {}).items():
        _check_env_params(env_id, {**env_params, **over}, file, key=f"eval.scenarios.{name_}")
    return Experiment(name=name, env=env_id, env_params=env_params, algorithm=algorithm, total_timesteps=total,
                      seed=seed, num_envs=num_envs, n_seeds=n_seeds, hyperparameters=hp,
                      checkpoint_every=checkpoint_every, log_every=log_every, eval=ev, distribution=dist,
                      source=str(file))


def load(path_or_name, **overrides) -> Experiment:
    """An experiment from a YAML path or the name of a shipped preset (configs/experiments/NAME.yaml);
    `overrides` replace top-level keys before validation (e.g. total_timesteps from the command line)."""
    path = preset_path("experiments", path_or_name)
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(path, "<file>", f"not valid YAML: {e}") from None
    if isinstance(data, dict):
        data.update({k: v for k, v in overrides.items() if v is not None})
    return validate(data, path)


def write_resolved(exp: Experiment, run_dir) -> pathlib.Path:
    """runs/<name>/config.yaml: the resolved config (reloading it gives an equal Experiment)."""
    path = pathlib.Path(run_dir) / "config.yaml"
    write_atomic(path, yaml.safe_dump(exp.to_dict(), sort_keys=False, default_flow_style=None))
    return path


def default_run_dir(exp: Experiment) -> pathlib.Path:
    return pathlib.Path("runs") / exp.name


def check_resume(exp: Experiment, run_dir) -> None:
    """Resuming continues the same experiment: everything but the step budgets must match config.yaml."""
    path = pathlib.Path(run_dir) / "config.yaml"
    if not path.exists():
        raise ConfigError(path, "<file>", "--resume: the run folder has no config.yaml (nothing to resume)")
    stored = load(path).to_dict()
    for k, v in exp.to_dict().items():
        if k not in ("total_timesteps", "checkpoint_every", "log_every") and stored.get(k) != v:
            raise ConfigError(path, k, f"--resume: the run was trained with {stored.get(k)!r}, the config now "
                                       f"says {v!r}; use a new --run-dir or the stored config")


RUN_FILES = ("config.yaml", "tb", "checkpoints")  # what a run folder holds


def prepare_run_dir(exp: Experiment, run_dir, resume: bool = False, overwrite: bool = False) -> pathlib.Path:
    """Make `run_dir` ready: remove partial files of interrupted writes; a resumed run must match its stored
    config; a new run needs a folder without another run's files, unless `overwrite` (which deletes them:
    config.yaml, tb/, checkpoints/, nothing else). Writes config.yaml for new runs."""
    run_dir = pathlib.Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(run_dir, "<run dir>", "exists and is not a folder; name a folder for the run")
    for folder in (run_dir, run_dir / "checkpoints"):
        remove_stale_temps(folder)
    if resume:
        check_resume(exp, run_dir)  # a resumed run keeps the config.yaml it was started with
        return run_dir
    held = [n for n in RUN_FILES if (run_dir / n).exists()]
    if held and not overwrite:
        raise ConfigError(run_dir, "<run dir>", f"already holds a run ({', '.join(held)}): pass --resume to continue "
                                                f"it, --overwrite to replace it, or --run-dir for a new folder")
    for n in held:
        log.warning("--overwrite: deleting %s", run_dir / n)
        if (run_dir / n).is_dir():
            shutil.rmtree(run_dir / n)
        else:
            (run_dir / n).unlink()
    write_resolved(exp, run_dir)
    return run_dir


def train(exp: Experiment, run_dir=None, resume: bool = False, progress: bool = True,
          overwrite: bool = False, on_log=None) -> dict:
    """Write config.yaml (new runs) and train with the experiment's algorithm into `run_dir` (default
    runs/<name>/, see `prepare_run_dir`); returns the trainer's summary. `on_log`: ppo_jax only, see
    `jax_train.train_experiment`."""
    run_dir = prepare_run_dir(exp, run_dir if run_dir else default_run_dir(exp), resume, overwrite)
    if exp.algorithm == "ppo_jax":
        return jax_train.train_experiment(exp, run_dir, resume=resume, progress=progress, on_log=on_log)
    if on_log is not None:
        raise ValueError(f"on_log: {exp.algorithm} runs report nothing between chunks; use algorithm: ppo_jax")
    from . import sb3_train  # SB3 imports torch: only for SB3 experiments

    return sb3_train.train_experiment(exp, run_dir, resume=resume, progress=progress)


def format_summary(exp: Experiment, summary: dict) -> str:
    """A few lines for the terminal: steps, time, and the learned reward against the heuristic's."""
    lines = [f"{exp.name}: {exp.algorithm} on {exp.env}, step {summary['global_step']} "
             f"({summary['global_step'] - summary.get('start_step', 0)} this run) in {summary['wall_s']:.0f} s"]
    (heuristic, ref), = summary["baseline"].items()
    for i, scalars in enumerate(summary["scalars"]):
        r = scalars.get("rollout/ep_rew_mean", float("nan"))
        if not math.isfinite(r):
            lines.append(f"  seed {i}: rollout/ep_rew_mean n/a (no episode finished in the logged window; "
                         f"{heuristic}: {fmt(ref)})")
            continue
        ratio = fmt(r / ref) if ref else "n/a"
        lines.append(f"  seed {i}: rollout/ep_rew_mean {fmt(r)} = {ratio} × {heuristic} ({fmt(ref)})")
    return "\n".join(lines)
