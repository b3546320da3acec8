"""The environment registry: `make(id, **overrides) -> (env, params)` and `registered()`."""

from __future__ import annotations

import dataclasses
import inspect
import typing

from .descriptor import EnvDescriptor

KERNEL_MAPPING = EnvDescriptor(
    id="KernelMapping-v0", env="memgym.envs.kernel_mapping:KernelMapping",
    policies="memgym.policies.kernel_mapping", benchmark="kernel-mapping", paper="h2m2",
    citation="H2M2: asymmetric HBM + LPDDR memory with compute on each side (arXiv 2504.14893)",
    reproduce="memgym.train.reproduce.h2m2:reproduce_h2m2", format="memgym.train.reproduce.h2m2:format_h2m2",
    action_metrics=("hbm_share_attention", "hbm_share_qkv", "hbm_share_fc"),
    time_parts=("time_attention_s", "time_qkv_s", "time_fc_s", "migration_s"))
CACHE_RATIO = EnvDescriptor(
    id="CacheRatio-v0", env="memgym.envs.cache_ratio:CacheRatio",
    policies="memgym.policies.cache_ratio", benchmark="cache-ratio", paper="hybridserve",
    citation="HybridServe: a KV/activation hybrid cache for GPU offloading (arXiv 2501.01792); FlexGen (arXiv 2303.06865)",
    reproduce="memgym.train.reproduce.hybridserve:reproduce_hybridserve", format="memgym.train.reproduce.hybridserve:format_hybridserve",
    action_metrics=("activation_share",))
SECURE_DISAGG = EnvDescriptor(
    id="SecureDisagg-v0", env="memgym.envs.secure_disagg:SecureDisagg",
    policies="memgym.policies.secure_disagg", benchmark="secure-disagg", paper="tdmem",
    citation="TDMem: hardware-assisted trusted memory disaggregation for secure far memory (arXiv 2108.11507)",
    reproduce="memgym.train.reproduce.tdmem:reproduce_tdmem", format="memgym.train.reproduce.tdmem:format_tdmem",
    report_tables="memgym.train.report.reproduction:tdmem_tables",
    action_metrics=("activation_share", "remote_share"))

# every environment, by id: adding one is its own folder and one line here
ENVIRONMENTS = {d.id: d for d in (KERNEL_MAPPING, CACHE_RATIO, SECURE_DISAGG)}
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


def default_max_steps(env_id: str) -> int | None:
    """Episode length under the default parameters, read without building them (building SecureDisagg-v0's
    takes seconds): the `max_steps` default of `default_params`, else that of its parameter class."""
    cls = env_class(env_id)
    default = inspect.signature(cls.default_params).parameters.get("max_steps")
    if default is not None and isinstance(default.default, int):
        return default.default
    params_cls = typing.get_type_hints(cls.default_params).get("return")
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
