"""Policies for SecureDisagg-v0, all `policy(key, obs, state, params) -> action i32[4]` (activation-share bin,
remote-share bin, mode, block bin; mode and block matter at the first step only). Jittable and vmappable.

- `tdmem`: the paper-style heuristic. The cheapest mode the tenant allows among TDMem's secure ones (secure,
  remap, dummy, oram: the engine always encrypts), HybridServe's balance share (PCIe time = GPU time at the
  mean decode context) and the largest block that fits at it, new entries local first and spilled remotely
  only as far as the run's end needs (`secure_disagg.plan_action`).
- `rdma_slabs`: the software baseline, the same plan on RDMA far memory in 1 GB slabs (its reward is 1 by
  construction for a tenant without requirements; for others its mode is projected to an allowed one).
- `no_security`: the same plan on 4 KB hardware allocation without encryption (`plain`): the upper bound of
  what security costs.
- `always_oram`: the same plan with Path ORAM for every tenant.
- `oracle`: the best static plan over share × mode × block bins with local-first spill, scored by the exact
  episode mean reward (precomputed per scenario in `params.oracle_plan`).
- `random`: uniform over each dimension's unmasked bins.
"""

from __future__ import annotations

import jax.numpy as jnp

from memgym.envs import secure_disagg as sd
from memgym.envs.core import masked_random
from memgym.sim import disagg

cheapest_secure_mode = sd.cheapest_secure_mode


def _planned(mode_of):
    def policy(key, obs, state, params):
        mode = jnp.asarray(mode_of(params), jnp.int32)
        si, bb = params.mode_plans[mode, 0], params.mode_plans[mode, 1]  # `sd.plan`, precomputed by `derive`
        return sd.plan_action(params, state, mode, si, bb)
    return policy


tdmem = _planned(cheapest_secure_mode)
rdma_slabs = _planned(lambda p: disagg.RDMA_SLAB)
no_security = _planned(lambda p: disagg.PLAIN)
always_oram = _planned(lambda p: disagg.ORAM)


def oracle(key, obs, state, params):
    si, mode, bb = params.oracle_plan[0], params.oracle_plan[1], params.oracle_plan[2]
    return sd.plan_action(params, state, mode, si, bb)


random = masked_random(sd.SecureDisagg())


POLICIES = {"tdmem": tdmem, "oracle": oracle, "rdma_slabs": rdma_slabs, "no_security": no_security,
            "always_oram": always_oram, "random": random}
HEURISTIC = "tdmem"
