"""YAML presets → specs, validated when loaded.

Presets live in `memgym/configs/{models,hardware,workloads,experiments}/NAME.yaml`; any argument that names a
preset may also be a path to a YAML file. Every error is a `ConfigError` that names the file, the key and
what would be valid.
"""

from __future__ import annotations

import copy
import functools
import math
import pathlib

import jax.numpy as jnp
import numpy as np
import yaml

from .validate import ConfigError, number, preset_field  # noqa: F401 (ConfigError: re-exported)
from . import specs
from .specs import SITES, TIERS, UNITS, HardwareSpec, ModelSpec, kv_bytes_per_token, weight_bytes

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
try:  # installed layout: memgym/configs beside memgym/sim
    from memgym import configs as _configs_pkg

    CONFIG_DIR = pathlib.Path(_configs_pkg.__file__).resolve().parent
except ImportError:  # pragma: no cover - running from a source tree without installation
    pass

GB = 1e9
DTYPE_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "fp8": 1.0, "int4": 0.5}
FFN_KINDS = {"gelu": (2.0, 8.0), "relu": (2.0, 1.0), "swiglu": (3.0, 5.0), "geglu": (3.0, 9.0)}
NORM_KINDS = {"layernorm": 2.0, "rmsnorm": 1.0}
POSITION_KINDS = ("learned", "rope", "relative")




def presets(kind: str) -> list[str]:
    """Names of the shipped presets of one kind ('models', 'hardware', 'workloads', 'experiments')."""
    return sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))


def preset_path(kind: str, name) -> pathlib.Path:
    path = pathlib.Path(str(name))
    if path.is_dir():
        raise ConfigError(path, "<file>", f"is a folder; expected a YAML file or the name of a {kind} preset")
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(path, "<file>", "no such file")
        return path
    path = CONFIG_DIR / kind / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(CONFIG_DIR / kind, "name",
                          f"unknown {kind} preset '{name}'; valid: {', '.join(presets(kind))}")
    return path


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@functools.lru_cache(maxsize=256)
def _parse(path: pathlib.Path, mtime_ns: int):
    """A YAML file parsed once per modification (presets are read once per process)."""
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(path, "<file>", f"not valid YAML: {e}") from None


def load_raw(kind: str, name, _seen=()) -> tuple[dict, pathlib.Path]:
    """The preset's mapping with `extends:` resolved (the child's keys override the parent's)."""
    path = preset_path(kind, name)
    data = copy.deepcopy(_parse(path.resolve(), path.stat().st_mtime_ns))
    if not isinstance(data, dict):
        raise ConfigError(path, "<file>", "must be a mapping of keys to values")
    parent = data.pop("extends", None)
    if parent is not None:
        if parent in _seen:
            raise ConfigError(path, "extends", f"'{parent}' extends itself through {list(_seen)}")
        try:
            preset_path(kind, parent)
        except ConfigError:  # name the file that holds the bad `extends`, not the preset folder
            raise ConfigError(path, "extends", f"unknown {kind} preset or file {parent!r}; valid: "
                                               f"{', '.join(presets(kind))} or a path to a .yaml file") from None
        base, _ = load_raw(kind, parent, _seen + (parent,))
        base.pop("name", None)
        data = _deep_merge(base, data)
    return data, path


def _get(d: dict, key: str, path, where="", kind=float, positive=True, allow_zero=False, default=None):
    full = f"{where}{key}"
    if key not in d:
        if default is not None:
            return default
        raise ConfigError(path, full, "missing (required)")
    v = d[key]
    if kind is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(path, full, f"must be a finite number, got {v!r}")
        if positive and (v < 0 or (v == 0 and not allow_zero)):
            raise ConfigError(path, full, f"must be {'>= 0' if allow_zero else '> 0'}, got {v!r}")
        return float(number(v, preset_field(key, where), path, full))  # the field's physical range
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(path, full, f"must be a positive integer, got {v!r}")
        return number(v, preset_field(key, where), path, full)
    if isinstance(kind, (tuple, list, dict)):
        if v not in kind:
            raise ConfigError(path, full, f"must be one of {sorted(kind)}, got {v!r}")
        return v
    if kind is bool:
        if not isinstance(v, bool):
            raise ConfigError(path, full, f"must be true or false, got {v!r}")
        return v
    if kind is dict:
        if not isinstance(v, dict):
            raise ConfigError(path, full, f"must be a mapping, got {v!r}")
        return v
    raise TypeError(kind)


def _check_keys(d: dict, allowed, path, where=""):
    for k in d:
        if k not in allowed:
            raise ConfigError(path, f"{where}{k}", f"unknown key; valid keys: {', '.join(sorted(allowed))}")


MODEL_KEYS = {"name", "source", "notes", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff",
              "vocab_size", "n_positions", "ffn", "norm", "position", "bias", "tied_embeddings", "dtype",
              "param_count_reference", "kv_bytes_per_token_fp16_reference"}


def preset_stamp(kind: str, name):
    """(resolved path, modification time) of a preset: what caches of things built from it key on."""
    path = preset_path(kind, name).resolve()
    return path, path.stat().st_mtime_ns


def load_model(name, dtype: str | None = None) -> ModelSpec:
    """A model preset (or YAML path) as a ModelSpec; `dtype` overrides the preset's element type. Built once
    per file version (specs are immutable pytrees)."""
    return _load_model(*preset_stamp("models", name), dtype)


def load_hardware(name, ideal: bool = False, launch: str = "eager") -> HardwareSpec:
    """A hardware preset (or YAML path) as a HardwareSpec; `ideal=True` gives the pure roofline. `launch`
    picks the per-kernel overhead table: 'eager' (`calibration.overhead_us`, the default) or 'graph'
    (`calibration.overhead_us_graph`: CUDA-graph-captured decode). Built once per file version."""
    fused_norm(launch)
    return _load_hardware(*preset_stamp("hardware", name), ideal, launch)


def fused_norm(launch: str) -> float:
    """Whether the launch profile fuses each norm into its residual add (1.0) or not (0.0); a clear error
    naming the valid profiles otherwise."""
    if launch not in LAUNCH:
        raise ConfigError("<argument>", "launch", f"must be one of {list(LAUNCH)}, got {launch!r}")
    return LAUNCH[launch]


@functools.lru_cache(maxsize=128)
def _load_model(name, _mtime_ns, dtype: str | None = None) -> ModelSpec:
    d, path = load_raw("models", name)
    _check_keys(d, MODEL_KEYS, path)
    if "source" not in d:
        raise ConfigError(path, "source", "missing: every preset names where its numbers come from")
    dims = {k: _get(d, k, path, kind=int) for k in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_head",
                                                        "d_ff", "vocab_size")}
    if dims["n_heads"] % dims["n_kv_heads"]:
        raise ConfigError(path, "n_kv_heads", f"must divide n_heads={dims['n_heads']}")
    n_pos = number(d.get("n_positions", 0), preset_field("n_positions"), path, "n_positions")
    ffn = _get(d, "ffn", path, kind=FFN_KINDS)
    norm = _get(d, "norm", path, kind=NORM_KINDS)
    position = _get(d, "position", path, kind=POSITION_KINDS)
    bias = _get(d, "bias", path, kind=bool)
    tied = _get(d, "tied_embeddings", path, kind=bool)
    dt = dtype or d.get("dtype", "fp16")
    if dt not in DTYPE_BYTES:
        raise ConfigError(path if dtype is None else "<argument>", "dtype",
                          f"must be one of {sorted(DTYPE_BYTES)}, got {dt!r}")
    n_mats, act_flops = FFN_KINDS[ffn]
    b = DTYPE_BYTES[dt]
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return ModelSpec(
        n_layers=f(dims["n_layers"]), d_model=f(dims["d_model"]), n_heads=f(dims["n_heads"]),
        n_kv_heads=f(dims["n_kv_heads"]), d_head=f(dims["d_head"]), d_ff=f(dims["d_ff"]),
        vocab_size=f(dims["vocab_size"]), n_positions=f(n_pos), n_ffn_matrices=f(n_mats),
        has_bias=f(float(bias)), tied_embeddings=f(float(tied)), norm_params=f(NORM_KINDS[norm]),
        uses_rope=f(float(position == "rope")), act_flops_per_elem=f(act_flops),
        bytes_per_weight=f(b), bytes_per_activation=f(b), bytes_per_kv=f(b),
    )


HW_KEYS = {"name", "source", "notes", "tiers", "sites", "links", "calibration", "interconnect", "paging",
           "flexgen_fitted", "secure_remote"}
TIER_KEYS = {"capacity_gb", "bw_gbps", "latency_ns", "energy_pj_per_bit", "cost_usd_per_gb", "source"}
SITE_KEYS = {"peak_tflops", "reaches", "source"}
CAL_KEYS = {"eff_compute", "eff_memory", "overhead_us", "overlap", "matrix_fill_rows",
            "kv_reads_per_query_head", "decode_attention", "source", "notes", "overhead_us_graph"}
DECODE_ATTENTION = {"fused": 1.0, "unfused": 0.0}
# launch profiles -> whether norms run inside the residual add (1) or on their own (0). eager: PyTorch
# launching every kernel from Python, `calibration.overhead_us`; graph: a serving engine's CUDA-graph-captured
# decode with fused residual-add + norm, `calibration.overhead_us_graph`.
LAUNCH = {"eager": 0.0, "graph": 1.0}


@functools.lru_cache(maxsize=128)
def _load_hardware(name, _mtime_ns, ideal: bool = False, launch: str = "eager") -> HardwareSpec:
    d, path = load_raw("hardware", name)
    _check_keys(d, HW_KEYS, path)
    if "source" not in d:
        raise ConfigError(path, "source", "missing: every preset names where its numbers come from")
    tiers = _get(d, "tiers", path, kind=dict)
    for t in tiers:
        if t not in TIERS:
            raise ConfigError(path, f"tiers.{t}", f"unknown tier; valid: {', '.join(TIERS)}")
    M, S, U = len(TIERS), len(SITES), len(UNITS)
    cap, bw, lat, energy, cost = (np.zeros(M) for _ in range(5))
    for t, spec in tiers.items():
        where = f"tiers.{t}."
        _get({t: spec}, t, path, where="tiers.", kind=dict)
        _check_keys(spec, TIER_KEYS, path, where)
        i = TIERS.index(t)
        cap[i] = _get(spec, "capacity_gb", path, where) * GB
        bw[i] = _get(spec, "bw_gbps", path, where) * GB
        lat[i] = _get(spec, "latency_ns", path, where, allow_zero=True, default=0.0) * 1e-9
        energy[i] = _get(spec, "energy_pj_per_bit", path, where, allow_zero=True, default=0.0) * 8e-12
        cost[i] = _get(spec, "cost_usd_per_gb", path, where, allow_zero=True, default=0.0) / GB
    links = _get(d, "links", path, kind=dict, default={}) or {}
    link_bw = {}
    for ln, spec in links.items():
        _get({ln: spec}, ln, path, where="links.", kind=dict)
        link_bw[ln] = _get(spec, "bw_gbps", path, f"links.{ln}.") * GB
    sites = _get(d, "sites", path, kind=dict)
    peak = np.zeros((S, U))
    access = np.zeros((M, S))
    for s, spec in sites.items():
        if s not in SITES:
            raise ConfigError(path, f"sites.{s}", f"unknown site; valid: {', '.join(SITES)}")
        where = f"sites.{s}."
        _get({s: spec}, s, path, where="sites.", kind=dict)
        _check_keys(spec, SITE_KEYS, path, where)
        j = SITES.index(s)
        pk = _get(spec, "peak_tflops", path, where, kind=dict)
        for u in UNITS:
            peak[j, UNITS.index(u)] = _get(pk, u, path, f"{where}peak_tflops.") * 1e12
        reaches = _get(spec, "reaches", path, where, kind=dict)
        for t, via in reaches.items():
            if t not in tiers:
                raise ConfigError(path, f"{where}reaches.{t}", f"not a tier of this hardware; tiers: {list(tiers)}")
            i = TIERS.index(t)
            if via == "local":
                access[i, j] = bw[i]
            elif via in link_bw:
                access[i, j] = min(bw[i], link_bw[via])
            else:
                raise ConfigError(path, f"{where}reaches.{t}",
                                  f"must be 'local' or a link name ({', '.join(link_bw) or 'no links defined'}), got {via!r}")
    cal = _get(d, "calibration", path, kind=dict)
    _check_keys(cal, CAL_KEYS, path, "calibration.")
    if "source" not in cal:
        raise ConfigError(path, "calibration.source", "missing: say where the calibration numbers come from")
    effc = _get(cal, "eff_compute", path, "calibration.", kind=dict)
    over = _get(cal, "overhead_us", path, "calibration.", kind=dict)
    eff_compute = np.array([_get(effc, u, path, "calibration.eff_compute.") for u in UNITS])
    overhead = np.array([_get(over, u, path, "calibration.overhead_us.", allow_zero=True) * 1e-6 for u in UNITS])
    if "overhead_us_graph" in cal or launch == "graph":  # validated whenever present, required for 'graph'
        if "overhead_us_graph" not in cal:
            raise ConfigError(path, "calibration.overhead_us_graph",
                              "missing: launch='graph' needs the preset's graph-captured overhead table "
                              "(matrix, matvec, vector in us); presets with one: "
                              + ", ".join(p for p in presets("hardware") if _has_graph_table(p)))
        over_g = _get(cal, "overhead_us_graph", path, "calibration.", kind=dict)
        _check_keys(over_g, UNITS, path, "calibration.overhead_us_graph.")
        overhead_graph = np.array([_get(over_g, u, path, "calibration.overhead_us_graph.", allow_zero=True) * 1e-6
                                   for u in UNITS])
        if launch == "graph":
            overhead = overhead_graph
    eff_memory = _get(cal, "eff_memory", path, "calibration.")
    for key, v in [("eff_memory", eff_memory)] + [(f"eff_compute.{u}", e) for u, e in zip(UNITS, eff_compute)]:
        if v > 1:
            raise ConfigError(path, f"calibration.{key}", f"an efficiency must be in (0, 1], got {v}")
    overlap = _get(cal, "overlap", path, "calibration.", allow_zero=True, default=1.0)
    if overlap > 1:
        raise ConfigError(path, "calibration.overlap", f"must be in [0, 1], got {overlap}")
    fill = _get(cal, "matrix_fill_rows", path, "calibration.", allow_zero=True, default=0.0)
    kv_reads = _get(cal, "kv_reads_per_query_head", path, "calibration.", allow_zero=True, default=0.0)
    if kv_reads > 1:
        raise ConfigError(path, "calibration.kv_reads_per_query_head", f"must be in [0, 1], got {kv_reads}")
    attn = cal.get("decode_attention", "fused")
    if attn not in DECODE_ATTENTION:
        raise ConfigError(path, "calibration.decode_attention", f"must be 'fused' or 'unfused', got {attn!r}")
    ic = _get(d, "interconnect", path, kind=dict, default={}) or {}
    ic_bw = _get(ic, "bw_gbps", path, "interconnect.", default=1.0) * GB
    ic_lat = _get(ic, "latency_us", path, "interconnect.", allow_zero=True, default=0.0) * 1e-6
    pg = _get(d, "paging", path, kind=dict, default={}) or {}
    page = _get(pg, "page_mb", path, "paging.", default=2.0) * 2**20
    tlb_miss = _get(pg, "tlb_miss_ns", path, "paging.", allow_zero=True, default=0.0) * 1e-9
    walkers = _get(pg, "tlb_walkers", path, "paging.", default=1.0)
    link_main = max(link_bw.values()) if link_bw else 0.0
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    hw = HardwareSpec(
        tier_capacity_bytes=f(cap), tier_bw_bytes_per_s=f(bw), tier_latency_s=f(lat),
        tier_energy_j_per_byte=f(energy), tier_cost_per_byte=f(cost), access_bw_bytes_per_s=f(access),
        peak_flops_per_s=f(peak), eff_compute=f(eff_compute), eff_memory=f(eff_memory), overhead_s=f(overhead),
        overlap=f(overlap), matrix_fill_rows=f(fill), kv_reads_per_query_head=f(kv_reads),
        interconnect_bw_bytes_per_s=f(ic_bw), interconnect_latency_s=f(ic_lat), page_bytes=f(page),
        tlb_miss_s=f(tlb_miss), tlb_walkers=f(walkers), link_bw_bytes_per_s=f(link_main),
        decode_attention_fused=f(DECODE_ATTENTION[attn]),
    )
    return specs.ideal(hw) if ideal else hw


def _has_graph_table(name) -> bool:
    try:
        return "overhead_us_graph" in (load_raw("hardware", name)[0].get("calibration") or {})
    except ConfigError:
        return False


def check_fits(model: ModelSpec, hw: HardwareSpec, model_name="model", hw_name="hardware", tp: int = 1,
               batch: float = 0.0, context: float = 0.0):
    """Raise a ConfigError when the model's weights (and the KV of batch × context) fit in no tier."""
    need = float(weight_bytes(model)) / tp + float(kv_bytes_per_token(model)) * batch * context / tp
    total = float(np.asarray(hw.tier_capacity_bytes).sum())
    if need > total:
        raise ConfigError(preset_path("hardware", hw_name) if not str(hw_name).endswith(".yaml") else hw_name,
                          "tiers", f"model '{model_name}' needs {need / GB:.1f} GB (weights + KV) but the tiers "
                          f"hold {total / GB:.1f} GB in all; add capacity, raise tensor parallelism or pick a "
                          f"smaller model ({', '.join(presets('models'))})")
    return need
