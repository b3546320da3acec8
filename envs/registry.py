"""The environment registry: `make(id, **overrides) -> (env, params)` and `registered()`."""

from __future__ import annotations

import dataclasses
import importlib
import typing

from .descriptor import EnvDescriptor

PACKAGES = (  # one line per environment: its folder under envs/, whose __init__.py defines DESCRIPTOR
    "kernel_mapping",
    "cache_ratio",
    "cache_ratio_v1",
    "secure_disagg",
)
# every environment, by id
ENVIRONMENTS: dict[str, EnvDescriptor] = {
    d.id: d for d in (importlib.import_module(f"{__package__}.{name}").DESCRIPTOR for name in PACKAGES)}
NAMESPACE = "memgym"


def canonical_id(env_id: str) -> str:
    """'memgym/KernelMapping-v0' or 'KernelMapping-v0' -> 'KernelMapping-v0' (ValueError if unknown)."""
    name = env_id.split("/", 1)[1] if env_id.startswith(NAMESPACE + "/") else env_id
    if name not in ENVIRONMENTS:
        raise ValueError(f"unknown environment id {env_id!r}; registered: {', '.join(registered())}")
    return name


def descriptor(env_id: str) -> EnvDescriptor:
    return ENVIRONMENTS[canonical_id(env_id)]


def env_class(env_id: str):
    return descriptor(env_id).env_class()


def make(env_id: str, **overrides):
    """The stateless JAX environment and its parameters (`default_params(**overrides)`)."""
    env = env_class(env_id)()
    return env, env.default_params(**overrides)


def registered() -> list[str]:
    """Ids of every memgym environment, with the gymnasium namespace."""
    return [f"{NAMESPACE}/{name}" for name in ENVIRONMENTS]


def generalists() -> list[str]:
    """Bare ids of the environments that ship a generalist config (what `memgym demo --env` can train)."""
    return [name for name, d in ENVIRONMENTS.items() if d.generalist]


def scenario_class(env_id: str):
    """The environment's Scenario dataclass (its fields are `default_params`' keyword arguments)."""
    return descriptor(env_id).scenario_class()


def default_max_steps(env_id: str) -> int | None:
    """Episode length under the default parameters, read without building them (building SecureDisagg-v0's
    takes seconds): the `max_steps` default of its Scenario, else that of its parameter class."""
    d = descriptor(env_id)
    default = d.scenario_class().defaults().get("max_steps") if d.scenario else None
    if isinstance(default, int):
        return default
    params_cls = typing.get_type_hints(env_class(env_id).default_params).get("return")
    for field in dataclasses.fields(params_cls) if dataclasses.is_dataclass(params_cls) else ():
        if field.name == "max_steps" and isinstance(field.default, int):
            return field.default
    return None


def register_gymnasium() -> None:
    """Register every environment with gymnasium (idempotent), with a native vector entry point and
    `max_episode_steps` = the default episode length. Overriding `max_steps` through `gymnasium.make`'s
    keyword arguments changes the environment's own episode end; pass `max_episode_steps=` with it when the
    new length is longer (gymnasium's TimeLimit would otherwise cut the episode at the default length)."""
    import gymnasium

    for name in ENVIRONMENTS:
        gid = f"{NAMESPACE}/{name}"
        if gid in gymnasium.registry:
            continue
        gymnasium.register(id=gid, entry_point="memgym.envs.gym_adapter:MemgymEnv",
                           vector_entry_point="memgym.envs.gym_adapter:MemgymVectorEnv",
                           kwargs={"env_id": name}, disable_env_checker=True,
                           max_episode_steps=default_max_steps(name))
