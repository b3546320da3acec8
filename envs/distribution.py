"""Scenario distributions (Jumanji calls them generators) and the benchmark splits built on them.

A distribution over an environment's scenario fields (the keyword arguments of `env.default_params`):

    common:    {field: value}            shared by every draw (static fields: n_slots, max_steps, bins...)
    variants:  [{field: value, ...}]     one picked uniformly per draw (fields that go together: a model
                                         and its batch, a tenant and its mode...)
    choices:   {field: [v1, v2, ...]}    each picked uniformly and independently per draw
    ranges:    {field: [lo, hi]}         uniform in [lo, hi]; `{log: [lo, hi]}` log-uniform; an integer field
                                         (lo and hi written as integers) draws integers
    size:      int                       draws in the table (default 256)
    seed:      int                       the host RNG seed that draws the table (default 0)

`build()` draws `size` scenarios on the host (a draw that `default_params` rejects, e.g. a model that does not
fit the memory it was given, is redrawn; more than `size` rejections is an error), builds each once and stacks
them into one params pytree. `Randomized(env)` is the environment over that table: every reset, inside the
jitted rollout, picks a row uniformly with its own key, so domain-randomised training stays one compiled scan
and a new seed gives a new scenario. Every draw must share the environment's static fields (array sizes, bins,
episode length); a mismatch names the field to put in `common`.

A benchmark (`configs/benchmarks/<name>.yaml`) holds an environment's splits:

    env:         a registered id
    train:       a distribution (as above): what generalists train on
    validation:  {scenario name: {field: value}}: held out, for tuning
    test:        {scenario name: {field: value}}: held out, fixed before any tuning
    common:      {field: value} added to every validation and test scenario (e.g. one slot count, so that
                 scenarios of different batch share one compiled program)
    seeds:       evaluation episodes per scenario (default 10)
    seed:        the evaluation key's seed (default 0)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from memgym.sim.config import ConfigError, preset_path
from memgym.sim.specs import pytree_dataclass

from . import registry
from .core import JaxEnv

SPLITS = ("train", "validation", "test")
DIST_KEYS = ("common", "variants", "choices", "ranges", "size", "seed")


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A distribution over scenario fields of `env_id` (see the module docstring)."""
    env_id: str
    common: dict = dataclasses.field(default_factory=dict)
    variants: tuple = ()
    choices: dict = dataclasses.field(default_factory=dict)
    ranges: dict = dataclasses.field(default_factory=dict)
    size: int = 256
    seed: int = 0

    def draw(self, rng: np.random.Generator) -> dict:
        """One scenario's fields (host side)."""
        out = dict(self.common)
        if self.variants:
            out.update(self.variants[rng.integers(len(self.variants))])
        for k, values in self.choices.items():
            out[k] = values[rng.integers(len(values))]
        for k, spec in self.ranges.items():
            log = isinstance(spec, dict)
            lo, hi = spec["log"] if log else spec
            if isinstance(lo, int) and isinstance(hi, int) and not log:
                out[k] = int(rng.integers(lo, hi + 1))
            elif log:
                out[k] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            else:
                out[k] = float(rng.uniform(lo, hi))
        return out

    def sample(self) -> tuple[list[dict], list]:
        """`size` feasible draws from the distribution's seed, in order, with their built params."""
        rng = np.random.default_rng(self.seed)
        env = registry.env_class(self.env_id)()
        draws, built, rejected = [], [], 0
        while len(draws) < self.size:
            d = self.draw(rng)
            try:
                built.append(env.default_params(**d))
            except (ValueError, TypeError) as e:
                rejected += 1
                if rejected > self.size:
                    raise ValueError(f"{self.env_id} distribution: {rejected} draws rejected (last: {e}); "
                                     f"narrow its ranges") from None
                continue
            draws.append(d)
        return draws, built

    def build(self):
        """(Randomized env, its TableParams): the drawn scenarios stacked into one pytree."""
        return _build(self)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("env_id")
        d["variants"] = [dict(v) for v in self.variants]
        return d


@functools.lru_cache(maxsize=8)
def _build_cached(env_id: str, spec: str):
    dist = from_dict(env_id, json.loads(spec))
    env = registry.env_class(env_id)()
    draws, built = dist.sample()
    first = jax.tree_util.tree_structure(built[0])
    for d, p in zip(draws, built):
        if jax.tree_util.tree_structure(p) != first:
            differ = [f.name for f in dataclasses.fields(p) if isinstance(getattr(p, f.name), (int, str, bool))
                      and getattr(p, f.name) != getattr(built[0], f.name)]
            raise ValueError(f"{env_id} distribution: draw {d} differs from the first draw in static fields "
                             f"{', '.join(differ) or '(nested)'}; fix them in `common`")
    table = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *built)
    return Randomized(env), TableParams(table=table, size=len(built)), tuple(draws)


def _build(dist: Distribution):
    return _cached(dist)[:2]


def draws_of(dist: Distribution) -> tuple:
    """The scenarios `build()` stacked, in table order."""
    return _cached(dist)[2]


def _cached(dist: Distribution):
    return _build_cached(dist.env_id, json.dumps(dist.to_dict(), sort_keys=True))


@pytree_dataclass(static=("size",))
class TableParams:
    table: object  # the env's params pytree, every leaf with a leading [size] axis
    size: int = 1

    @property
    def max_steps(self) -> int:
        return self.table.max_steps

    def row(self, i):
        return jax.tree_util.tree_map(lambda x: x[i], self.table)


@pytree_dataclass
class RandomizedState:
    inner: object  # the environment's own state
    params: object  # the scenario this episode plays (one row of the table)


class Randomized(JaxEnv[TableParams, RandomizedState]):
    """`env` over a table of scenarios: each reset draws a row uniformly. Policies written for `env` play it
    through `lift(policy)`; observations, actions, rewards and metrics are `env`'s own."""

    def __init__(self, env: JaxEnv):
        self.env = env
        self.id = env.id
        self.metric_names = env.metric_names

    def default_params(self, **overrides):
        raise TypeError("Randomized environments take their params from Distribution.build()")

    def reset_env(self, key, params: TableParams):
        k_row, k_env = jax.random.split(key)
        row = params.row(jax.random.randint(k_row, (), 0, params.size))
        obs, state = self.env.reset_env(k_env, row)
        return obs, RandomizedState(inner=state, params=row)

    def step_env(self, key, state: RandomizedState, action, params: TableParams):
        obs, inner, reward, term, trunc, info = self.env.step_env(key, state.inner, action, state.params)
        return obs, RandomizedState(inner=inner, params=state.params), reward, term, trunc, info

    def action_nvec(self, params: TableParams):
        return self.env.action_nvec(params.row(0))

    def feature_names(self, params: TableParams):
        return self.env.feature_names(params.row(0))

    def observation_bounds(self, params: TableParams):
        return self.env.observation_bounds(params.row(0))


def lift(policy):
    """A policy of the inner environment as a policy of its `Randomized` view."""
    def lifted(key, obs, state: RandomizedState, params: TableParams):
        return policy(key, obs, state.inner, state.params)
    lifted.__name__ = getattr(policy, "__name__", "policy")
    return lifted


# ---- parsing ---------------------------------------------------------------------------------------------


def from_dict(env_id: str, d: dict, file="<dict>", where: str = "train") -> Distribution:
    """A Distribution from its mapping; errors name `file` and the key."""
    if not isinstance(d, dict):
        raise ConfigError(file, where, f"must be a mapping with keys {', '.join(DIST_KEYS)}")
    for k in d:
        if k not in DIST_KEYS:
            raise ConfigError(file, f"{where}.{k}", f"unknown key; valid: {', '.join(DIST_KEYS)}")
    common = d.get("common") or {}
    variants = d.get("variants") or []
    choices = d.get("choices") or {}
    ranges = d.get("ranges") or {}
    if not isinstance(common, dict):
        raise ConfigError(file, f"{where}.common", "must be a mapping of scenario fields")
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise ConfigError(file, f"{where}.variants", "must be a list of mappings of scenario fields")
    if not isinstance(choices, dict) or not all(isinstance(v, list) and v for v in choices.values()):
        raise ConfigError(file, f"{where}.choices", "must map each field to a non-empty list of values")
    for k, spec in (ranges.items() if isinstance(ranges, dict) else [(None, None)]):
        lo_hi = spec.get("log") if isinstance(spec, dict) else spec
        ok = (isinstance(lo_hi, list) and len(lo_hi) == 2
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in lo_hi)
              and lo_hi[0] <= lo_hi[1] and (not isinstance(spec, dict) or lo_hi[0] > 0))
        if not ok:
            raise ConfigError(file, f"{where}.ranges.{k}", f"must be [lo, hi] with lo <= hi (finite), or "
                                                           f"{{log: [lo, hi]}} with 0 < lo <= hi; got {spec!r}")
    fields = scenario_fields(env_id)
    for part, keys in (("common", common), ("choices", choices), ("ranges", ranges)):
        for k in keys:
            if k not in fields:
                raise ConfigError(file, f"{where}.{part}.{k}", f"not a scenario field of {env_id}; valid: "
                                                               f"{', '.join(fields)}")
    for i, v in enumerate(variants):
        for k in v:
            if k not in fields:
                raise ConfigError(file, f"{where}.variants[{i}].{k}", f"not a scenario field of {env_id}; "
                                                                      f"valid: {', '.join(fields)}")
    size, seed = d.get("size", 256), d.get("seed", 0)
    for k, v, lo in (("size", size, 1), ("seed", seed, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ConfigError(file, f"{where}.{k}", f"must be an integer >= {lo}, got {v!r}")
    return Distribution(env_id=env_id, common=dict(common), variants=tuple(dict(v) for v in variants),
                        choices={k: list(v) for k, v in choices.items()},
                        ranges={k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in ranges.items()},
                        size=size, seed=seed)


def scenario_fields(env_id: str) -> list[str]:
    """The scenario fields of an environment (its Scenario's, the keyword arguments of `default_params`)."""
    return list(registry.scenario_class(env_id).field_names())


@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str
    env_id: str
    train: Distribution
    validation: dict
    test: dict
    seeds: int = 10
    seed: int = 0
    source: str = "<dict>"

    def split(self, name: str) -> dict:
        if name not in ("validation", "test"):
            raise ValueError(f"split must be 'validation' or 'test', got {name!r}")
        return getattr(self, name)


def load_benchmark(name_or_path) -> Benchmark:
    """configs/benchmarks/<name>.yaml (or a path): the splits, validated (every scenario's fields are checked by
    constructing it; nothing is built)."""
    path = preset_path("benchmarks", name_or_path)
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(path, "<file>", f"not valid YAML: {e}") from None
    if not isinstance(d, dict):
        raise ConfigError(path, "<file>", "must be a mapping")
    valid = ("env", "description", "seeds", "seed", "common", *SPLITS)
    for k in d:
        if k not in valid:
            raise ConfigError(path, k, f"unknown key; valid: {', '.join(valid)}")
    for k in ("env", *SPLITS):
        if k not in d:
            raise ConfigError(path, k, "missing (required)")
    try:
        env_id = registry.canonical_id(str(d["env"]))
    except ValueError as e:
        raise ConfigError(path, "env", str(e)) from None
    train = from_dict(env_id, d["train"], path, "train")
    scenario_cls = registry.scenario_class(env_id)
    fields = scenario_fields(env_id)
    common = d.get("common") or {}
    if not isinstance(common, dict):
        raise ConfigError(path, "common", "must be a mapping of scenario fields")
    splits = {}
    for split in ("validation", "test"):
        scen = d[split]
        if not isinstance(scen, dict) or not scen:
            raise ConfigError(path, split, "must map scenario names to {field: value} mappings")
        for sname, over in scen.items():
            if not isinstance(over, dict):
                raise ConfigError(path, f"{split}.{sname}", "must be a mapping of scenario fields")
            over = {**common, **over}
            for k in over:
                if k not in fields:
                    raise ConfigError(path, f"{split}.{sname}.{k}", f"not a scenario field of {env_id}; "
                                                                    f"valid: {', '.join(fields)}")
            scen[sname] = over
            try:
                scenario_cls(**over)
            except (ValueError, TypeError) as e:
                raise ConfigError(path, f"{split}.{sname}", f"rejected: {e}") from None
        splits[split] = {k: dict(v) for k, v in scen.items()}
    for k in ("seeds", "seed"):
        v = d.get(k, 10 if k == "seeds" else 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < (1 if k == "seeds" else 0):
            raise ConfigError(path, k, f"must be an integer >= {1 if k == 'seeds' else 0}, got {v!r}")
    return Benchmark(name=path.stem, env_id=env_id, train=train, validation=splits["validation"],
                     test=splits["test"], seeds=d.get("seeds", 10), seed=d.get("seed", 0), source=str(path))


def resolve(env_id: str, spec, file="<config>", key: str = "distribution") -> Distribution:
    """A distribution from a benchmark name or path (its `train` split) or an inline mapping."""
    if isinstance(spec, (str, pathlib.Path)):
        bench = load_benchmark(spec)
        if bench.env_id != env_id:
            raise ConfigError(file, key, f"benchmark {bench.name!r} is for {bench.env_id}, not {env_id}")
        return bench.train
    return from_dict(env_id, spec, file, key)


def make_env(env_id: str, env_params: dict | None = None, distribution=None):
    """(env, params) for a fixed scenario (`registry.make`), or for a distribution: its `Randomized` env and
    table, `env_params` added to the distribution's `common` fields."""
    if distribution is None:
        return registry.make(env_id, **(env_params or {}))
    dist = resolve(registry.canonical_id(env_id), distribution)
    if env_params:
        dist = dataclasses.replace(dist, common={**dist.common, **env_params})
    return dist.build()
