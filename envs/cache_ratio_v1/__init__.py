"""CacheRatio-v1 (HybridServe's cache ratio under a request stream): the environment and its MDP card (`env`),
parameters and state (`types`), and its scenario (`scenario`). The serving model is `memgym.sim.serving`."""

from ..descriptor import EnvDescriptor
from .env import CacheRatioV1, bin_at_or_above, project_bin, ref_step_s, share_mask, shares, step_reward, stream_of
from .scenario import SHAREGPT_OUTPUT_MEAN, SHAREGPT_PROMPT_MEAN, CacheRatioV1Scenario, derive_capacity, reference
from .types import CacheRatioV1Params, CacheRatioV1State

__all__ = ["DESCRIPTOR", "SHAREGPT_OUTPUT_MEAN", "SHAREGPT_PROMPT_MEAN", "CacheRatioV1", "CacheRatioV1Params",
           "CacheRatioV1Scenario", "CacheRatioV1State", "bin_at_or_above", "derive_capacity", "project_bin",
           "ref_step_s", "reference", "share_mask", "shares", "step_reward", "stream_of"]

DESCRIPTOR = EnvDescriptor(
    id="CacheRatio-v1", env="memgym.envs.cache_ratio_v1:CacheRatioV1",
    policies="memgym.policies.cache_ratio_v1", benchmark="cache-ratio-v1", paper="hybridserve",
    citation="HybridServe: a KV/activation hybrid cache for GPU offloading (arXiv 2501.01792); FlexGen (arXiv "
             "2303.06865); request lengths after ShareGPT as reported by vLLM (arXiv 2309.06180)",
    reproduce="memgym.train.reproduce.hybridserve:reproduce_hybridserve",
    format="memgym.train.reproduce.hybridserve:format_hybridserve",
    scenario="memgym.envs.cache_ratio_v1:CacheRatioV1Scenario",
    action_metrics=("activation_share",),
    generalist="cache-ratio-v1-generalist")
