"""SecureDisagg-v0's scenario: model, server, host and remote memories, lengths and tenant, checked, and the
params derived from it (capacity, the software-RDMA baseline, the best static plan and TDMem's)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from memgym.sim import config, disagg, offload, server
from memgym.sim.server import tokens_per_step

from ..core import Observation
from ..scenario import Scenario
from .plan import cheapest_secure_mode, fits, largest_block, plan, play_plan
from .system import N_MODES, allowed, first_tables, initial_state, local_blocks, min_form, roomiest_mode
from .types import FEATURE_NAMES, SecureDisaggParams


def derive(params: SecureDisaggParams) -> SecureDisaggParams:
    """wg (the largest weight share the GPU holds beside its working set), max_batch, every mode's static plan
    (`plan`, which the planned policies look up), the software-RDMA baseline's block and step times, the best
    static plan, `local_blocks` and the observation every reset returns (the initial state's, a function of the
    params: the autoreset reads it instead of observing again). Jittable (vmap over scenarios, then derive)."""
    params = dataclasses.replace(params, wg=server.weights_on_gpu(params))
    mf = min_form(params)
    roomy = roomiest_mode(params)
    max_batch = jnp.maximum(jnp.floor(largest_block(params, roomy, mf)), 1.0)
    max_batch = jnp.maximum(max_batch, jnp.floor(largest_block(params, disagg.RDMA_SLAB, mf)))
    params = dataclasses.replace(params, max_batch=max_batch)
    first_ok, first_share_ok, first_rho = first_tables(params)
    params = dataclasses.replace(params, first_ok=first_ok, first_share_ok=first_share_ok, first_rho=first_rho)
    plans = jax.vmap(lambda md: jnp.stack(plan(params, md)))(jnp.arange(N_MODES, dtype=jnp.int32))
    si, bb = plans[disagg.RDMA_SLAB]
    base, base_out = play_plan(params, jnp.int32(disagg.RDMA_SLAB), si, bb)
    base_s, base_batch = base_out["total"], base.batch
    params = dataclasses.replace(params, base_step_s=base_s, base_batch=base_batch)
    # the best static plan: every (share bin, mode, block bin), local-first spill, scored by mean reward
    k = tokens_per_step(params)

    def score(s, md, j):
        state, out = play_plan(params, md, s, j)
        score = jnp.mean((state.batch * k / out["total"]) / (base_batch * k / base_s))
        return jnp.where(fits(params, state), score, -jnp.inf)
    grid = jax.vmap(lambda s: jax.vmap(lambda md: jax.vmap(lambda j: score(s, md, j))(jnp.arange(params.batch_bins)))(
        jnp.arange(N_MODES)))(jnp.arange(params.bins))
    grid = jnp.where(allowed(params)[None, :, None], grid, -jnp.inf)
    flat = jnp.argmax(grid.reshape(-1))
    nm, nb = N_MODES, params.batch_bins
    best = jnp.stack([flat // (nm * nb), (flat // nb) % nm, flat % nb]).astype(jnp.int32)
    mode = cheapest_secure_mode(params)
    hs, hb = plans[mode]
    params = dataclasses.replace(params, oracle_plan=best, heuristic_plan=jnp.stack([hs, mode, hb]).astype(jnp.int32),
                                 mode_plans=plans, local_blocks=local_blocks(params))
    from .env import SecureDisagg  # here, not at the top: the env module imports this one
    return dataclasses.replace(params, first_obs=SecureDisagg().observe(initial_state(), params))


_derive_jit = jax.jit(derive)


@dataclasses.dataclass(frozen=True)
class SecureDisaggScenario(Scenario):
    """One scenario. Defaults: OPT-66B on an A100-80GB over PCIe 4 with 128 GB of host memory (the cache does
    not fit beside the weights' host share) and 64 GB of remote memory behind a TDMem engine (100 Gb/s, 3 µs),
    prompt 512, 128 generated tokens, a tenant with no security requirement (`memgym reproduce tdmem`).
    `tenant`: 0..4 or a name in `disagg.REQUIREMENTS`."""

    env_id = "SecureDisagg-v0"
    presets = (("model", "models"), ("hardware", "hardware"))

    model: str = "opt-66b"
    hardware: str = "a100-80gb-pcie4-tdmem"
    host_memory_gb: float | None = 128.0
    remote_memory_gb: float | None = 64.0
    link_gbps: float | None = None
    rtt_us: float | None = None
    gpu_memory_gb: float | None = None
    pcie_gbps: float | None = None
    prompt_len: int = 512
    gen_len: int = 128
    gbs: int = 4
    tenant: int | str = 0
    bins: int = 11
    remote_bins: int = 11
    batch_bins: int = 8
    max_steps: int = 16
    ctog_overlap: float = 1.0
    dtype: str = "fp16"

    def __post_init__(self):
        self._normalise()
        for name, lo in (("bins", 2), ("remote_bins", 2), ("batch_bins", 1), ("max_steps", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if self.prompt_len <= 0 or self.gen_len < self.max_steps:
            raise ValueError(f"need prompt_len > 0 and gen_len >= max_steps; got prompt_len={self.prompt_len}, "
                             f"gen_len={self.gen_len}, max_steps={self.max_steps}")
        self.tenant_level()
        self.system()

    def tenant_level(self) -> int:
        """The tenant's requirement as a level 0..4 (a name in `disagg.REQUIREMENTS` mapped to its index)."""
        tenant = self.tenant
        if isinstance(tenant, str):
            if tenant not in disagg.REQUIREMENTS:
                raise ValueError(f"tenant must be 0..4 or one of {', '.join(disagg.REQUIREMENTS)}, got {tenant!r}")
            tenant = disagg.REQUIREMENTS.index(tenant)
        if not 0 <= tenant <= len(disagg.REQUIREMENTS) - 1:
            raise ValueError(f"tenant must be 0..4 or one of {', '.join(disagg.REQUIREMENTS)}, got {tenant!r}")
        return tenant

    def system(self) -> tuple:
        """(model, server rates, remote tier) with the memory, link and PCIe overrides applied."""
        m = config.load_model(self.model, dtype=self.dtype)
        rates = server.rates(self.hardware, self.ctog_overlap, self.gpu_memory_gb, self.host_memory_gb, self.pcie_gbps)
        remote = disagg.load_remote(self.hardware, capacity_gb=self.remote_memory_gb, link_gbps=self.link_gbps,
                                    rtt_us=self.rtt_us)
        return m, rates, remote

    def derive(self) -> SecureDisaggParams:
        m, rates, remote = self.system()
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        params = SecureDisaggParams(
            model=m, rates=rates, remote=remote, wg=f(0.0), gbs=f(self.gbs), prompt_len=f(self.prompt_len),
            gen_len=f(self.gen_len), tenant=f(self.tenant_level()), max_batch=f(1.0), base_batch=f(1.0),
            base_step_s=jnp.ones(self.max_steps, jnp.float32), oracle_plan=jnp.zeros(3, jnp.int32),
            heuristic_plan=jnp.zeros(3, jnp.int32), mode_plans=jnp.zeros((N_MODES, 2), jnp.int32),
            first_ok=jnp.zeros((N_MODES, self.batch_bins), bool),
            first_share_ok=jnp.zeros((N_MODES, self.batch_bins, self.bins), bool),
            first_rho=jnp.zeros((N_MODES, self.batch_bins, self.bins, 2), jnp.float32), local_blocks=f(0.0),
            first_obs=Observation(jnp.zeros(len(FEATURE_NAMES), jnp.float32),
                                  jnp.zeros(self.bins + self.remote_bins + N_MODES + self.batch_bins, bool)),
            bins=self.bins,
            remote_bins=self.remote_bins, batch_bins=self.batch_bins, max_steps=self.max_steps)
        params = _derive_jit(params)
        end = float(params.prompt_len + params.gen_len)
        gpu_cap = float(offload.capacities(rates)[0]) * (1 + 1e-6)
        gpu_over = float(server.gpu_used(params, params.gbs, end, 0.0)) > gpu_cap
        if float(params.base_batch) < float(params.gbs) or gpu_over:
            raise ValueError(f"model '{self.model}' does not fit '{self.hardware}' with {self.host_memory_gb} GB of "
                             f"host and {self.remote_memory_gb} GB of remote memory at gbs={self.gbs} (baseline "
                             f"block {float(params.base_batch):.0f} sequences, GPU working set "
                             f"{'over' if gpu_over else 'within'} capacity); add memory, lower gbs or the lengths")
        return params
