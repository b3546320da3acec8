"""KernelMapping-v0 (H2M2): the environment and its MDP card (`env`), parameters and state (`types`), and its
scenario (`scenario`)."""

from ..descriptor import EnvDescriptor
from .env import SUBLAYER_NAMES, KernelMapping, shares_of
from .scenario import PAPER_BATCH, PAPER_CONTEXTS, WORKLOADS, KernelMappingScenario
from .types import KernelMappingParams, KernelMappingState

__all__ = ["DESCRIPTOR", "KernelMapping", "KernelMappingParams", "KernelMappingScenario", "KernelMappingState",
           "PAPER_BATCH", "PAPER_CONTEXTS", "SUBLAYER_NAMES", "WORKLOADS", "shares_of"]

DESCRIPTOR = EnvDescriptor(
    id="KernelMapping-v0", env="memgym.envs.kernel_mapping:KernelMapping",
    policies="memgym.policies.kernel_mapping", benchmark="kernel-mapping", paper="h2m2",
    citation="H2M2: asymmetric HBM + LPDDR memory with compute on each side (arXiv 2504.14893)",
    reproduce="memgym.train.reproduce.h2m2:reproduce_h2m2", format="memgym.train.reproduce.h2m2:format_h2m2",
    scenario="memgym.envs.kernel_mapping:KernelMappingScenario",
    action_metrics=("hbm_share_attention", "hbm_share_qkv", "hbm_share_fc"),
    time_parts=("time_attention_s", "time_qkv_s", "time_fc_s", "migration_s"),
    generalist="kernel-mapping-generalist", demo_timesteps=1_500_000)
