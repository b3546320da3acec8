"""Policies behind one signature, `policy(key, obs, state, params) -> action`: each environment's paper
heuristic, simpler baselines, an exhaustive oracle and random; learned policies load to the same call."""

from __future__ import annotations

from memgym.envs.registry import descriptor


def _module(env_id: str):
    return descriptor(env_id).policy_module()


def policy_names(env_id: str) -> list[str]:
    return list(_module(env_id).POLICIES)


def heuristic_name(env_id: str) -> str:
    """The paper's own algorithm for this environment (scores are normalised to it)."""
    return _module(env_id).HEURISTIC


def get_policy(env_id: str, name: str):
    policies = _module(env_id).POLICIES
    if name not in policies:
        raise ValueError(f"unknown policy {name!r} for {env_id}; valid: {', '.join(policies)}")
    return policies[name]
