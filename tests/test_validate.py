"""The validation layer (memgym.sim.validate): every numeric scenario field of every environment, experiment YAML
and preset YAML. Pure Python (nothing is compiled): bad values are refused before any parameters are built."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

import memgym
from memgym.envs import distribution, registry
from memgym.sim import config, validate
from memgym.sim.config import ConfigError
from memgym.train import experiment

ENV_IDS = [i.split("/")[1] for i in registry.registered()]
TEXT_FIELDS = {"model", "hardware", "baseline", "workload", "dtype"}  # names, checked against the presets
BAD_NUMBERS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 1e-300, -1.0, -4, 0.5, 2.5, True, "3e-4", None]),
    st.floats(allow_nan=True, allow_infinity=True))


def numeric_fields(env_id):
    return [f for f in distribution.scenario_fields(env_id) if f not in TEXT_FIELDS]


def test_every_numeric_scenario_field_has_a_range():
    for env_id in ENV_IDS:
        missing = [f for f in numeric_fields(env_id) if f not in validate.SCENARIO]
        assert not missing, f"{env_id}: fields without a range in memgym.sim.validate.SCENARIO: {missing}"


def test_every_default_is_valid():
    for env_id in ENV_IDS:
        scenario_defaults = registry.scenario_class(env_id).defaults()
        defaults = {f: scenario_defaults[f] for f in numeric_fields(env_id)}
        assert validate.scenario(env_id, defaults) == {k: v for k, v in defaults.items()}


def _is_valid(field, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return False
    si = abs(v * field.scale)  # representable in float32 after unit conversion
    return (field.lo <= v <= field.hi and (not field.integer or float(v).is_integer())
            and (si == 0 or validate.F32_TINY <= si <= validate.F32_MAX))


@settings(max_examples=300, deadline=None)
@given(env_id=st.sampled_from(ENV_IDS), data=st.data())
def test_scenario_fields_refuse_bad_numbers_by_name(env_id, data):
    field_name = data.draw(st.sampled_from(numeric_fields(env_id)))
    field = validate.SCENARIO[field_name]
    value = data.draw(BAD_NUMBERS)
    if value is None or (field_name == "tenant" and isinstance(value, str)):
        return  # None: the default; tenant also takes a name
    if field_name == "context_start":
        value = (value, 64)
    ok = _is_valid(field, value[0] if field_name == "context_start" else value)
    if ok:
        out = validate.scenario(env_id, {field_name: value})
        v = out[field_name][0] if field_name == "context_start" else out[field_name]
        assert math.isfinite(v) and np.isfinite(np.float32(v * field.scale))
        assert isinstance(v, int) == field.integer
    else:
        with pytest.raises(ConfigError) as e:
            validate.scenario(env_id, {field_name: value})
        assert e.value.key.startswith(field_name) and "must be" in e.value.reason
        assert f"[{field.lo:g}, {field.hi:g}]" in e.value.reason  # says what is valid


@pytest.mark.parametrize("env_id,field,value", [
    ("KernelMapping-v0", "finish_prob", math.nan), ("KernelMapping-v0", "finish_prob", -1.0),
    ("KernelMapping-v0", "finish_prob", 5.0), ("KernelMapping-v0", "hbm_capacity_gb", 0.0),
    ("KernelMapping-v0", "hbm_capacity_gb", 1e300), ("KernelMapping-v0", "batch", 2.5),
    ("KernelMapping-v0", "batch", -4), ("KernelMapping-v0", "lpddr_bw_gbps", 1e-300),
    ("CacheRatio-v0", "host_memory_gb", 1e8), ("CacheRatio-v0", "pcie_gbps", 0.0),
    ("CacheRatio-v0", "ctog_overlap", math.nan), ("SecureDisagg-v0", "rtt_us", -3.0),
    ("SecureDisagg-v0", "link_gbps", math.inf), ("SecureDisagg-v0", "remote_memory_gb", -1.0),
])
def test_make_refuses_before_building(env_id, field, value):
    """memgym.make (and so gymnasium.make, reset options, SB3's VecEnv, distributions) goes through it."""
    with pytest.raises(ConfigError, match=field):
        memgym.make(env_id, **{field: value})


def test_reset_options_are_validated():
    import gymnasium

    env = gymnasium.make("memgym/KernelMapping-v0", model="llama2-70b", batch=8, bins=4, max_steps=8)
    with pytest.raises(ConfigError, match="hbm_capacity_gb"):
        env.reset(seed=0, options={"params": {"hbm_capacity_gb": math.nan}})


def test_scenario_checks_its_fields_and_builds_once():
    """A Scenario normalises what it is given (YAML lists, whole floats), so equal scenarios are equal; its
    params are built once; unknown fields and bad combinations are refused when it is constructed."""
    from memgym.envs.kernel_mapping import KernelMappingScenario

    fields = {"model": "llama2-70b", "bins": 4, "max_steps": 8}
    a = KernelMappingScenario(batch=8.0, context_start=[1024, 4096], **fields)
    assert a.batch == 8 and isinstance(a.batch, int) and a.context_start == (1024, 4096)
    assert a == KernelMappingScenario(batch=8, context_start=(1024, 4096), **fields)
    assert a.build() is memgym.make("KernelMapping-v0", batch=8, context_start=(1024, 4096), **fields)[1]
    with pytest.raises(TypeError, match="unknown scenario field 'btach'; valid: model, hardware"):
        memgym.make("KernelMapping-v0", btach=8)
    with pytest.raises(ValueError, match="n_slots must be an integer >= batch"):
        KernelMappingScenario(batch=8, n_slots=4, **fields)


# -- experiment YAML ---------------------------------------------------------------------------------------
def _exp(**over):
    d = {"name": "t", "env": "KernelMapping-v0", "algorithm": "ppo_jax", "total_timesteps": 1000,
         "env_params": {"model": "llama2-70b", "batch": 8, "bins": 4, "max_steps": 8}}
    for k, v in over.items():
        if k.startswith("env_params."):
            d["env_params"][k.split(".", 1)[1]] = v
        else:
            d[k] = v
    return d


@pytest.mark.parametrize("over,key", [
    ({"name": ".."}, "name"), ({"name": "."}, "name"), ({"name": "a/b"}, "name"), ({"name": ".hidden"}, "name"),
    ({"env_params.hbm_capacity_gb": math.nan}, "env_params.hbm_capacity_gb"),
    ({"env_params.hbm_capacity_gb": 1e300}, "env_params.hbm_capacity_gb"),
    ({"env_params.batch": 2.5}, "env_params.batch"), ({"env_params.batch": -4}, "env_params.batch"),
    ({"env_params.finish_prob": 5.0}, "env_params.finish_prob"),
    ({"hyperparameters": {"learning_rate": math.inf}}, "hyperparameters.learning_rate"),
    ({"hyperparameters": {"num_steps": 10**12}}, "hyperparameters.num_steps"),
    ({"total_timesteps": 10**30}, "total_timesteps"), ({"num_envs": 10**9}, "num_envs"),
    ({"algorithm": "PPO", "hyperparameters": {"n_steps": 0}}, "hyperparameters.n_steps"),
    ({"algorithm": "PPO", "hyperparameters": {"batch_size": 1}}, "hyperparameters.batch_size"),
    ({"algorithm": "PPO", "hyperparameters": {"gamma": math.nan}}, "hyperparameters.gamma"),
    ({"algorithm": "PPO", "num_envs": 1, "hyperparameters": {"n_steps": 1}}, "hyperparameters.n_steps"),
    ({"eval": {"scenarios": {"big": {"hbm_capacity_gb": -1.0}}}}, "eval.scenarios.big.hbm_capacity_gb"),
])
def test_experiment_errors_name_file_and_key(tmp_path, over, key):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(_exp(**over)))
    with pytest.raises(ConfigError) as e:
        experiment.load(path)
    assert e.value.key == key and e.value.file == str(path)


def test_config_that_is_a_folder_is_a_clear_error(tmp_path):
    (tmp_path / "x.yaml").mkdir()
    for p in (tmp_path, tmp_path / "x.yaml"):
        with pytest.raises(ConfigError, match="folder"):
            experiment.load(p)


# -- preset YAML -------------------------------------------------------------------------------------------
def _hw_leaves(d, where=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _hw_leaves(v, f"{where}{k}.")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield f"{where}{k}"


HW_RAW = {n: config.load_raw("hardware", n)[0] for n in ("a100-80gb", "h2m2-hbm3-lpddr5x",
                                                         "a100-80gb-pcie4-tdmem")}
MODEL_RAW = config.load_raw("models", "llama2-70b")[0]


def set_dotted(d, dotted, value):
    """A deep copy of `d` with the dotted key set."""
    d = yaml.safe_load(yaml.safe_dump(d))
    node = d
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    return d


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=BAD_NUMBERS.filter(lambda v: v is not None and not isinstance(v, str)))
def test_hardware_presets_refuse_bad_numbers_by_key(tmp_path_factory, data, value):
    name = data.draw(st.sampled_from(sorted(HW_RAW)))
    raw = HW_RAW[name]
    key = data.draw(st.sampled_from([k for k in _hw_leaves(raw) if not k.startswith(("flexgen_fitted",))]))
    path = tmp_path_factory.mktemp("hw") / "hw.yaml"
    path.write_text(yaml.safe_dump(set_dotted(raw, key, value)))
    try:
        hw = config.load_hardware(path)
        if "secure_remote" in raw:
            from memgym.sim import disagg

            disagg.load_remote(path)
    except ConfigError as e:
        assert e.file == str(path) and e.key == key, (e.key, key)
        assert "must" in e.reason
        return
    leaf = key.rsplit(".", 1)[-1]
    field = validate.preset_field(leaf, key[: -len(leaf)])
    assert _is_valid(field, value), f"{key}={value!r} accepted"  # accepted only inside the field's range
    for x in (hw.tier_capacity_bytes, hw.tier_bw_bytes_per_s, hw.peak_flops_per_s, hw.access_bw_bytes_per_s):
        assert np.isfinite(np.asarray(x)).all()


@pytest.mark.parametrize("key,value", [("n_heads", 2.5), ("d_model", 0), ("n_layers", 10**9), ("vocab_size", -1),
                                       ("n_positions", math.nan), ("d_ff", True)])
def test_model_presets_refuse_bad_numbers_by_key(tmp_path, key, value):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(set_dotted(MODEL_RAW, key, value)))
    with pytest.raises(ConfigError) as e:
        config.load_model(path)
    assert e.value.key == key and e.value.file == str(path)


def test_finite_json():
    assert validate.finite_json({"a": [1.0, math.inf], "b": math.nan, "c": "x"}) == {"a": [1.0, None], "b": None,
                                                                                     "c": "x"}
