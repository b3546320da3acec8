"""One validation layer for every number that reaches the simulator.

Each numeric field has a `Field`: a physical range (stated here, beside the field), whether it counts
things (an integer), its unit and the factor that converts it to the simulator's SI units. `number()` checks
one value: a real number (not a bool, not text), finite, an integer where it counts things, inside the range,
and representable in float32 after the unit conversion (the simulator computes in float32). Every entry point
uses it: `memgym.make` and `reset(options={"params": ...})` (each environment's `default_params` calls
`scenario()`), experiment YAML (`env_params`, `eval.scenarios`), distributions and benchmarks (their draws
are built by `default_params`), hardware and model presets (`memgym.sim.config`) and the CLI's numbers.

Errors are `ConfigError`s naming the file (or argument list) and the key, and saying what is valid.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)


class ConfigError(ValueError):
    """A config problem: `file`, `key` and a message (`reason`) that says what would be valid."""

    def __init__(self, file, key, message):
        self.file, self.key, self.reason = str(file), key, message
        super().__init__(f"{file}: key '{key}': {message}")


@dataclasses.dataclass(frozen=True)
class Field:
    lo: float
    hi: float
    integer: bool = False  # counts things
    unit: str = ""
    scale: float = 1.0  # the value times `scale` is what the simulator stores (float32)

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        unit = f" {self.unit}" if self.unit else ""
        return f"{kind} in [{self.lo:g}, {self.hi:g}]{unit}"


GB, US, NS = 1e9, 1e-6, 1e-9
CAPACITY_GB = Field(1e-3, 1e6, unit="GB", scale=GB)  # 1 MB .. 1 PB
BANDWIDTH_GBPS = Field(1e-3, 1e6, unit="GB/s", scale=GB)  # 1 MB/s .. 1 PB/s
FRACTION = Field(0.0, 1.0)
COUNT = Field(1, 1 << 16, integer=True)  # requests, sequences, bins: 1 .. 65536
TOKENS = Field(1, 10_000_000, integer=True, unit="tokens")

# scenario fields: the keyword arguments of the environments' `default_params` that are numbers
SCENARIO = {
    "batch": COUNT,  # running requests (KernelMapping-v0)
    "n_slots": COUNT,
    "bins": Field(2, 256, integer=True),
    "remote_bins": Field(2, 256, integer=True),
    "batch_bins": Field(1, 256, integer=True),
    "convert_bins": Field(0, 256, integer=True),  # 0 = no convert action; 1 is refused by the environment
    "max_steps": Field(1, 100_000, integer=True, unit="steps"),
    "iterations_per_step": Field(1, 1_000_000, integer=True, unit="iterations"),
    "context_start": TOKENS,  # each of the pair
    "context_max": TOKENS,
    "prompt_len": TOKENS,
    "gen_len": TOKENS,
    "gbs": COUNT,  # sequences per GPU batch
    "tenant": Field(0, 4, integer=True),  # or a requirement name (the environment maps it)
    "finish_prob": FRACTION,  # per iteration
    "ctog_overlap": FRACTION,
    "hbm_capacity_gb": CAPACITY_GB,
    "host_memory_gb": CAPACITY_GB,
    "gpu_memory_gb": CAPACITY_GB,
    "remote_memory_gb": Field(0.0, 1e6, unit="GB", scale=GB),  # 0: no remote memory
    "lpddr_bw_gbps": BANDWIDTH_GBPS,
    "pcie_gbps": BANDWIDTH_GBPS,
    "link_gbps": BANDWIDTH_GBPS,
    "rtt_us": Field(0.0, 1e6, unit="µs", scale=US),  # the remote engine's round trip
    "n_requests": COUNT,  # requests in an episode's stream (CacheRatio-v1)
    "n_initial": Field(0, 1 << 16, integer=True),  # requests waiting at t = 0
    "max_prompt_len": TOKENS,
    "max_output_len": TOKENS,
    "prompt_mean": Field(1.0, 1e7, unit="tokens"),  # log-normal length means
    "output_mean": Field(1.0, 1e7, unit="tokens"),
    "prompt_sigma": Field(0.0, 3.0),  # log-normal shape (0: every length is the mean)
    "output_sigma": Field(0.0, 3.0),
    "load": Field(0.0, 100.0),  # offered load / the all-K,V reference throughput (0: no arrivals after t = 0)
}


def number(value, field: Field, file, key):
    """`value` checked against `field`: an int for integer fields, else a float; ConfigError otherwise."""
    def bad(why=""):
        return ConfigError(file, key, f"must be {field.describe()}{why}, got {value!r}")

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        hint = ""
        if isinstance(value, str):
            try:
                float(value)
                hint = " (YAML read it as text: write numbers with a decimal point, e.g. 3.0e-4)"
            except ValueError:
                pass
        raise bad(hint)
    v = float(value)
    if not math.isfinite(v):
        raise bad()
    if field.integer and not v.is_integer():
        raise bad(" (it counts things)")
    if not field.lo <= v <= field.hi:
        raise bad()
    si = abs(v * field.scale)
    if si > F32_MAX or (0 < si < F32_TINY):
        raise bad(" (not representable in float32 after unit conversion)")
    return int(v) if field.integer else v


def scenario(env_id: str, fields: dict, file=None) -> dict:
    """The numeric scenario fields among `fields` (None = the environment's default) checked; returns the
    mapping with integers as int and numbers as float. `file` names the source in errors (default: the
    environment's parameters)."""
    file = file or f"{env_id} parameters"
    out = dict(fields)
    for key, value in fields.items():
        field = SCENARIO.get(key)
        if field is None or value is None:
            continue
        if key == "tenant" and isinstance(value, str):
            continue
        if key == "context_start":
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise ConfigError(file, key, f"must be a pair [min, max] of token counts, got {value!r}")
            out[key] = tuple(number(v, field, file, f"{key}[{i}]") for i, v in enumerate(value))
            continue
        out[key] = number(value, field, file, key)
    return out


def finite_json(obj):
    """`obj` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


# preset fields (hardware and model YAML), in the units their key names carry; `memgym.sim.config` looks a key
# up by its own name, else by its parent's (`peak_tflops.matrix` -> peak_tflops), else uses PRESET_DEFAULT
PRESET = {
    "capacity_gb": CAPACITY_GB,
    "bw_gbps": BANDWIDTH_GBPS,
    "latency_ns": Field(0.0, 1e9, unit="ns", scale=NS),
    "latency_us": Field(0.0, 1e6, unit="µs", scale=US),
    "energy_pj_per_bit": Field(0.0, 1e6, unit="pJ/bit", scale=8e-12),
    "cost_usd_per_gb": Field(0.0, 1e6, unit="USD/GB", scale=1 / GB),
    "peak_tflops": Field(1e-3, 1e6, unit="TFLOP/s", scale=1e12),
    "eff_compute": Field(1e-3, 1.0),
    "eff_memory": Field(1e-3, 1.0),
    "overhead_us": Field(0.0, 1e6, unit="µs", scale=US),
    "overlap": FRACTION,
    "matrix_fill_rows": Field(0.0, 1e6, unit="rows"),
    "kv_reads_per_query_head": FRACTION,
    "page_mb": Field(1e-3, 1e6, unit="MB", scale=2.0**20),
    "tlb_miss_ns": Field(0.0, 1e9, unit="ns", scale=NS),
    "tlb_walkers": Field(1.0, 1e6),
    "n_layers": Field(1, 10_000, integer=True),
    "d_model": Field(1, 1 << 20, integer=True),
    "n_heads": Field(1, 1 << 16, integer=True),
    "n_kv_heads": Field(1, 1 << 16, integer=True),
    "d_head": Field(1, 1 << 16, integer=True),
    "d_ff": Field(1, 1 << 24, integer=True),
    "vocab_size": Field(1, 1 << 27, integer=True),
    "n_positions": Field(0, 1 << 27, integer=True),
}
PRESET_DEFAULT = Field(0.0, 1e9)  # any other number of a preset (secure_remote's, fitted constants)


def preset_field(key: str, where: str = "") -> Field:
    parent = where.rstrip(".").rsplit(".", 1)[-1]
    return PRESET.get(key) or PRESET.get(parent) or PRESET_DEFAULT
