"""KernelMapping-v0's scenario: model, systems, batch and workload, checked, and the params derived from it."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from memgym.sim import asymmetric, config
from memgym.sim.specs import HBM, LPDDR, HardwareSpec, ModelSpec, replace

from ..scenario import Scenario
from .types import KernelMappingParams

PAPER_BATCH = {"gpt3-175b": 32, "chinchilla-70b": 64, "llama2-70b": 128}
PAPER_CONTEXTS = {"gpt3-175b": (256, 512, 1024, 2048), "chinchilla-70b": (512, 1024, 2048, 4096),
                  "llama2-70b": (1024, 2048, 4096, 8192)}
WORKLOADS = ("static", "dynamic")


def _set(values, index, value):
    """A copy of a spec's per-tier array with one entry replaced (host side: params are built eagerly)."""
    out = np.array(values)
    out[index] = value
    return jnp.asarray(out, values.dtype)


_total_footprint = jax.jit(lambda m, hw, kv_tokens: asymmetric.footprints(m, hw, kv_tokens).sum())


class Episode(NamedTuple):
    """The scenario's episode with the paper's defaults filled in."""
    start: tuple  # (min, max) starting context
    steps: int
    per_step: int  # iterations per step
    context_max: int
    batch: int
    slots: int


@dataclasses.dataclass(frozen=True)
class KernelMappingScenario(Scenario):
    """One scenario. Defaults follow the paper: INT8, the paper's batch for the model, contexts from the start
    of the paper's sweep growing to its end (static), or H2M2's dynamic run."""

    env_id = "KernelMapping-v0"
    presets = (("model", "models"), ("hardware", "hardware"), ("baseline", "hardware"))

    model: str = "gpt3-175b"
    hardware: str = "h2m2-hbm3-lpddr5x"
    baseline: str = "h2m2-lpddr-only"
    batch: int | None = None
    bins: int = 16
    workload: str = "static"
    max_steps: int | None = None
    iterations_per_step: int | None = None
    context_start: tuple | None = None
    context_max: int | None = None
    finish_prob: float = 0.02
    hbm_capacity_gb: float | None = None
    dtype: str = "int8"
    n_slots: int | None = None
    lpddr_bw_gbps: float | None = None

    def __post_init__(self):
        if self.workload not in WORKLOADS:
            raise ValueError(f"workload must be 'static' or 'dynamic', got {self.workload!r}")
        self._normalise()
        m, hw, _ = self.systems()
        e = self.episode()
        if not (0 < e.start[0] <= e.start[1] <= e.context_max):
            raise ValueError(f"context_start {e.start} must satisfy 0 < min <= max <= context_max={e.context_max}")
        if not isinstance(e.slots, int) or e.slots < e.batch:
            raise ValueError(f"n_slots must be an integer >= batch ({e.batch}), got {e.slots!r}")
        need = float(_total_footprint(m, hw, jnp.float32(e.batch * e.context_max)))
        cap = float(hw.tier_capacity_bytes[HBM] + hw.tier_capacity_bytes[LPDDR])
        if need > cap:
            raise ValueError(f"model '{self.model}' at batch {e.batch} and context {e.context_max} needs "
                             f"{need / 1e9:.0f} GB, more than the {cap / 1e9:.0f} GB of HBM + LPDDR; lower batch "
                             f"or context_max")

    def systems(self) -> tuple[ModelSpec, HardwareSpec, HardwareSpec]:
        """(model, hardware, baseline hardware) with the capacity and bandwidth overrides applied."""
        m = config.load_model(self.model, dtype=self.dtype)
        hw = config.load_hardware(self.hardware)
        base = config.load_hardware(self.baseline)
        if self.hbm_capacity_gb is not None:
            hw = replace(hw, tier_capacity_bytes=_set(hw.tier_capacity_bytes, HBM, self.hbm_capacity_gb * 1e9))
        if self.lpddr_bw_gbps is not None:
            bw = self.lpddr_bw_gbps * 1e9
            hw = replace(hw, tier_bw_bytes_per_s=_set(hw.tier_bw_bytes_per_s, LPDDR, bw))
            base = replace(base, tier_bw_bytes_per_s=_set(base.tier_bw_bytes_per_s, LPDDR, bw))
        return m, hw, base

    def episode(self) -> Episode:
        sweep = PAPER_CONTEXTS.get(self.model, (256, 512, 1024, 2048))
        cmax = self.context_max or sweep[-1]
        if self.workload == "dynamic":
            start = self.context_start or (sweep[0], sweep[-1] // 2)
            steps = self.max_steps or 128
            per_step = self.iterations_per_step or 1
        else:
            start = self.context_start or (sweep[0], 2 * sweep[0])
            steps = self.max_steps or 96
            per_step = self.iterations_per_step or max(1, int(round((cmax - start[1]) / steps)))
        batch = self.batch or PAPER_BATCH.get(self.model, 32)
        return Episode(start, steps, per_step, cmax, batch, self.n_slots or batch)

    def derive(self) -> KernelMappingParams:
        m, hw, base = self.systems()
        e = self.episode()
        dynamic = self.workload == "dynamic"
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return KernelMappingParams(
            model=m, hw=hw, baseline_hw=base, context_start_min=f(e.start[0]), context_start_max=f(e.start[1]),
            context_max=f(e.context_max), finish_prob=f(self.finish_prob if dynamic else 0.0),
            iterations_per_step=f(e.per_step), batch=f(e.batch), dynamic=jnp.asarray(dynamic), bins=self.bins,
            n_slots=int(e.slots), max_steps=int(e.steps))
