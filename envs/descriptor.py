"""One descriptor per environment: what the registry, the policies, the CLI, evaluation and the report need to
know about it, in one place. References into later layers (policies, train) are "module:attribute" strings
resolved on use (like gymnasium's entry points), so imports keep the direction sim → envs → policies → train."""

from __future__ import annotations

import dataclasses
import importlib


def load(ref: str):
    """'package.module:attribute' -> the attribute (imported on use)."""
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


@dataclasses.dataclass(frozen=True)
class EnvDescriptor:
    id: str  # versioned id without the gymnasium namespace: bump the version when the dynamics change
    env: str  # "module:Class" of the stateless JAX environment
    policies: str  # module with POLICIES (name -> policy) and HEURISTIC (the paper's algorithm, scores' unit)
    benchmark: str  # the benchmark shipped for it: configs/benchmarks/<benchmark>.yaml
    paper: str  # short name of the paper it reproduces: `memgym reproduce <paper>`
    citation: str
    reproduce: str  # "module:function" () -> dict of the paper's figures beside the simulator's
    format: str  # "module:function" (dict) -> text
    report_tables: str | None = None  # "module:function" (dict) -> report blocks; None: the generic tables
    scenario: str | None = None  # "module:Class" of its Scenario
    action_metrics: tuple[str, ...] = ()  # info["metrics"] keys that record the action taken
    time_parts: tuple[str, ...] = ()  # keys that are parts of the step time (the breakdown's stacked bars)
    generalist: str | None = None  # configs/experiments/<generalist>.yaml: its generalist, what `memgym demo` trains
    demo_timesteps: int = 1_000_000  # the demo's PPO env steps per training seed (a few minutes on 2 cores)

    def env_class(self):
        return load(self.env)

    def policy_module(self):
        return load(self.policies)

    def scenario_class(self):
        return load(self.scenario)
