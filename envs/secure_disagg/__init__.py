"""SecureDisagg-v0 (TDMem): the environment and its MDP card (`env`), parameters and state (`types`), the
system model (`system`), planning (`plan`) and its scenario (`scenario`)."""

from memgym.sim.server import gpu_used, system_placement, tokens_per_step

from ..descriptor import EnvDescriptor
from .env import SecureDisagg
from .plan import (balance_share, cheapest_secure_mode, fall, fit_action, fits, largest_block, plan, plan_action,
                   play_plan, rise)
from .scenario import SecureDisaggScenario, derive
from .system import (LEVELS, N_MODES, advance, allowed, batch_of, completion_bounds, completion_ok,
                     current_batch_bin, first_tables, host_used, initial_state, local_blocks, min_form, realised_rho,
                     remote_shares, remote_used, rho_mask, rho_ok, roomiest_mode, share_ok, shares, split,
                     step_bounds, step_rho_ok, step_share_ok, step_time)
from .types import SecureDisaggParams, SecureDisaggState

__all__ = ["DESCRIPTOR", "LEVELS", "N_MODES", "SecureDisagg", "SecureDisaggParams", "SecureDisaggScenario",
           "SecureDisaggState", "advance", "allowed", "balance_share", "batch_of", "cheapest_secure_mode",
           "completion_bounds", "completion_ok", "current_batch_bin", "derive", "fall", "first_tables", "fit_action",
           "fits", "gpu_used", "host_used", "initial_state", "largest_block", "local_blocks", "min_form", "plan",
           "plan_action", "play_plan", "realised_rho", "remote_shares", "remote_used", "rho_mask", "rho_ok", "rise",
           "roomiest_mode", "share_ok", "shares", "split", "step_bounds", "step_rho_ok", "step_share_ok", "step_time",
           "system_placement", "tokens_per_step"]

DESCRIPTOR = EnvDescriptor(
    id="SecureDisagg-v0", env="memgym.envs.secure_disagg:SecureDisagg",
    policies="memgym.policies.secure_disagg", benchmark="secure-disagg", paper="tdmem",
    citation="TDMem: hardware-assisted trusted memory disaggregation for secure far memory (arXiv 2108.11507)",
    reproduce="memgym.train.reproduce.tdmem:reproduce_tdmem", format="memgym.train.reproduce.tdmem:format_tdmem",
    report_tables="memgym.train.report.reproduction:tdmem_tables", scenario="memgym.envs.secure_disagg:SecureDisaggScenario",
    action_metrics=("activation_share", "remote_share"),
    generalist="secure-disagg-generalist")
