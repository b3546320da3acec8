"""`memgym evaluate --ray` and `memgym benchmark --ray`: each scenario group (the scenarios of one params
structure, one compiled program) is a Ray task. The task rebuilds its scenarios and policies from their names
and run folders and plays them with `memgym evaluate`'s own program and keys, so the numbers are the local
run's; the rest of the evaluation (host-side SB3 policies, statistics, files) stays in the calling process."""

from __future__ import annotations

import pathlib


def play_group(env_id: str, base_params: dict, members: dict, names: list, learned_runs: tuple, seeds: int,
               seed: int, sample: bool = False) -> dict:
    """{scenario: {policy: (rewards, metrics, actions)}} for the JAX policies on one group's scenarios
    (`members`: scenario name -> overrides), as `evaluate.evaluate` computes them."""
    import jax

    from memgym.envs.registry import make

    from ..evaluation.evaluate import load_learned
    from ..evaluation.evaluate import play_group as play

    built = {m: make(env_id, **{**base_params, **(over or {})}) for m, over in members.items()}
    keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
    return play(env_id, built, names, load_learned(list(learned_runs), sample), keys)


def play_groups(ray: dict, env_id: str, base_params: dict, scenarios: dict, groups: list, names: list,
                learned_runs, seeds: int, seed: int, sample: bool = False) -> dict:
    """Every group as a Ray task (`ray`: {"address": None or HOST:PORT, "cpus": CPUs per task}); returns
    {scenario: {policy: (rewards, metrics, actions)}} over all groups."""
    from .cluster import session, task_options

    runs = tuple(str(pathlib.Path(r).resolve()) for r in learned_runs or ())
    cpus = ray.get("cpus", 1)
    with session(ray.get("address"), cpus_per_worker=cpus) as (ray_mod, _):
        task = ray_mod.remote(play_group).options(**task_options(cpus))
        futures = [task.remote(env_id, dict(base_params), {m: scenarios[m] for m in members}, list(names), runs,
                               seeds, seed, sample) for members in groups]
        out = {}
        for part in ray_mod.get(futures):
            out.update(part)
    return out
