"""CacheRatio-v0 (HybridServe): the environment and its MDP card (`env`), parameters and state (`types`), and
its scenario (`scenario`). The offloading server it models is `memgym.sim.server`."""

from memgym.sim.server import gpu_used, host_used, system_placement, tokens_per_step

from ..descriptor import EnvDescriptor
from .env import CacheRatio, static_episode, step_time
from .scenario import CacheRatioScenario, derive_capacity
from .types import CacheRatioParams, CacheRatioState

__all__ = ["DESCRIPTOR", "CacheRatio", "CacheRatioParams", "CacheRatioScenario", "CacheRatioState",
           "derive_capacity", "gpu_used", "host_used", "static_episode", "step_time", "system_placement",
           "tokens_per_step"]

DESCRIPTOR = EnvDescriptor(
    id="CacheRatio-v0", env="memgym.envs.cache_ratio:CacheRatio",
    policies="memgym.policies.cache_ratio", benchmark="cache-ratio", paper="hybridserve",
    citation="HybridServe: a KV/activation hybrid cache for GPU offloading (arXiv 2501.01792); FlexGen (arXiv 2303.06865)",
    reproduce="memgym.train.reproduce.hybridserve:reproduce_hybridserve", format="memgym.train.reproduce.hybridserve:format_hybridserve",
    scenario="memgym.envs.cache_ratio:CacheRatioScenario",
    action_metrics=("activation_share",),
    generalist="cache-ratio-generalist")
