"""The environment registry: `make(id, **overrides) -> (env, params)` and `registered()`."""

from __future__ import annotations

import importlib

# id -> (module, class). Ids are versioned: bump the version when the dynamics change.
ENVIRONMENTS = {
    "KernelMapping-v0": ("memgym.envs.kernel_mapping", "KernelMapping"),
    "CacheRatio-v0": ("memgym.envs.cache_ratio", "CacheRatio"),
    "SecureDisagg-v0": ("memgym.envs.secure_disagg", "SecureDisagg"),
}
NAMESPACE = "memgym"


def canonical_id(env_id: str) -> str:
    """'memgym/KernelMapping-v0' or 'KernelMapping-v0' -> 'KernelMapping-v0' (ValueError if unknown)."""
    name = env_id.split("/", 1)[1] if env_id.startswith(NAMESPACE + "/") else env_id
    if name not in ENVIRONMENTS:
        raise ValueError(f"unknown environment id {env_id!r}; registered: {', '.join(registered())}")
    return name


def env_class(env_id: str):
    module, cls = ENVIRONMENTS[canonical_id(env_id)]
    return getattr(importlib.import_module(module), cls)


def make(env_id: str, **overrides):
    """The stateless JAX environment and its parameters (`default_params(**overrides)`)."""
    env = env_class(env_id)()
    return env, env.default_params(**overrides)


def registered() -> list[str]:
    """Ids of every memgym environment, with the gymnasium namespace."""
    return [f"{NAMESPACE}/{name}" for name in ENVIRONMENTS]


def register_gymnasium() -> None:
    """Register every environment with gymnasium (idempotent), with a native vector entry point."""
    import gymnasium

    for name in ENVIRONMENTS:
        gid = f"{NAMESPACE}/{name}"
        if gid in gymnasium.registry:
            continue
        gymnasium.register(id=gid, entry_point="memgym.envs.gym_adapter:MemgymEnv",
                           vector_entry_point="memgym.envs.gym_adapter:MemgymVectorEnv",
                           kwargs={"env_id": name}, disable_env_checker=True)
