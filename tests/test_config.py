"""Presets load; bad configs fail with a ConfigError that names the file, the key and what is valid; the
`memgym estimate` command line."""

import json

import jax
import numpy as np
import pytest
import yaml

from memgym.sim import config, specs
from memgym.sim.estimate import estimate
from memgym.train import cli


def base(kind, name):
    return yaml.safe_load((config.CONFIG_DIR / kind / f"{name}.yaml").read_text())


def write(tmp_path, name, data):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def expect_error(loader, path, *fragments):
    with pytest.raises(config.ConfigError) as info:
        loader(path)
    msg = str(info.value)
    assert str(path) in msg
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return info.value


@pytest.mark.parametrize("name", config.presets("models"))
def test_every_model_preset_loads(name):
    m = config.load_model(name)
    leaves = jax.tree_util.tree_leaves(m)
    assert all(np.isfinite(x) and x >= 0 for x in leaves)
    assert float(m.n_heads) % float(m.n_kv_heads) == 0 and float(m.bytes_per_weight) == 2.0


@pytest.mark.parametrize("name", config.presets("hardware"))
def test_every_hardware_preset_loads(name):
    hw = config.load_hardware(name)
    M, S, U = len(specs.TIERS), len(specs.SITES), len(specs.UNITS)
    assert hw.access_bw_bytes_per_s.shape == (M, S) and hw.peak_flops_per_s.shape == (S, U)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(hw))
    assert float(hw.peak_flops_per_s[specs.MAIN].min()) > 0
    assert float(hw.access_bw_bytes_per_s[:, specs.MAIN].max()) > 0  # the main site reaches some memory
    eff = np.append(np.asarray(hw.eff_compute), float(hw.eff_memory))
    assert ((eff > 0) & (eff <= 1)).all()
    ideal = config.load_hardware(name, ideal=True)
    assert (np.asarray(ideal.eff_compute) == 1).all() and not np.asarray(ideal.overhead_s).any()


def test_presets_list_the_shipped_files():
    assert {"a100-80gb", "h100-sxm", "t4"} <= set(config.presets("hardware"))
    assert "llama2-70b" in config.presets("models")


# ---- bad input ------------------------------------------------------------------------------------------


def test_missing_key(tmp_path):
    d = base("models", "llama2-70b")
    del d["n_layers"]
    expect_error(config.load_model, write(tmp_path, "m", d), "'n_layers'", "missing")
    h = base("hardware", "a100-80gb")
    del h["tiers"]["hbm"]["bw_gbps"]
    expect_error(config.load_hardware, write(tmp_path, "h", h), "'tiers.hbm.bw_gbps'", "missing")


@pytest.mark.parametrize("value", [0, -1, -0.5])
def test_non_positive_rate(tmp_path, value):
    h = base("hardware", "a100-80gb")
    h["tiers"]["hbm"]["bw_gbps"] = value
    expect_error(config.load_hardware, write(tmp_path, "h", h), "'tiers.hbm.bw_gbps'", "> 0")
    h = base("hardware", "a100-80gb")
    h["sites"]["main"]["peak_tflops"]["matrix"] = value
    expect_error(config.load_hardware, write(tmp_path, "p", h), "'sites.main.peak_tflops.matrix'", "> 0")


def test_unknown_preset_name_lists_valid_names():
    with pytest.raises(config.ConfigError) as info:
        config.load_model("llama2-71b")
    msg = str(info.value)
    assert "llama2-71b" in msg and "'name'" in msg and "models" in msg
    assert all(n in msg for n in config.presets("models"))
    with pytest.raises(config.ConfigError, match="h100-sxm"):
        config.load_hardware("h100")
    with pytest.raises(config.ConfigError, match="no such file"):
        config.load_hardware("/nonexistent/gpu.yaml")


@pytest.mark.parametrize("key,value,fragment", [
    ("n_layers", "eighty", "positive integer"),
    ("n_layers", 80.5, "positive integer"),
    ("d_model", True, "positive integer"),
    ("ffn", "swish", "['geglu', 'gelu', 'relu', 'swiglu']"),
    ("norm", "batchnorm", "['layernorm', 'rmsnorm']"),
    ("bias", "no", "true or false"),
    ("dtype", "fp12", "'int8'"),
])
def test_wrong_type_in_model(tmp_path, key, value, fragment):
    d = base("models", "llama2-70b")
    d[key] = value
    expect_error(config.load_model, write(tmp_path, "m", d), f"'{key}'", fragment)


@pytest.mark.parametrize("where,value,key,fragment", [
    (("tiers", "hbm", "bw_gbps"), "fast", "tiers.hbm.bw_gbps", "finite number"),
    (("tiers", "hbm"), 2039, "tiers.hbm", "mapping"),
    (("sites", "main"), "gpu", "sites.main", "mapping"),
    (("links", "pcie"), 25, "links.pcie", "mapping"),
    (("calibration", "eff_compute"), 0.7, "calibration.eff_compute", "mapping"),
    (("sites", "main", "reaches", "hbm"), "nvlink", "sites.main.reaches.hbm", "'local' or a link name (pcie)"),
])
def test_wrong_type_in_hardware(tmp_path, where, value, key, fragment):
    h = base("hardware", "a100-80gb")
    node = h
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    expect_error(config.load_hardware, write(tmp_path, "h", h), f"'{key}'", fragment)


def test_unknown_key_names_valid_keys(tmp_path):
    d = base("models", "llama2-70b")
    d["d_modle"] = d.pop("d_model")
    expect_error(config.load_model, write(tmp_path, "m", d), "'d_modle'", "unknown key", "d_model")
    h = base("hardware", "a100-80gb")
    h["calibration"]["eff_memroy"] = 0.8
    expect_error(config.load_hardware, write(tmp_path, "h", h), "'calibration.eff_memroy'", "eff_memory")
    h = base("hardware", "a100-80gb")
    h["tiers"]["hbm3"] = h["tiers"].pop("hbm")
    expect_error(config.load_hardware, write(tmp_path, "t", h), "'tiers.hbm3'", "hbm, lpddr")


@pytest.mark.parametrize("key,value", [("eff_memory", 1.2), ("eff_compute.matrix", 1.01), ("overlap", 2.0),
                                       ("kv_reads_per_query_head", 1.5)])
def test_efficiency_above_one(tmp_path, key, value):
    h = base("hardware", "h100-sxm")
    node = h["calibration"]
    *parents, leaf = key.split(".")
    for k in parents:
        node = node[k]
    node[leaf] = value
    expect_error(config.load_hardware, write(tmp_path, "h", h), f"'calibration.{key}'", "1]")


def test_model_that_fits_in_no_tier(tmp_path):
    h = base("hardware", "a100-80gb")
    h["tiers"]["host_ddr"]["capacity_gb"] = 64
    path = write(tmp_path, "small", h)
    hw, m = config.load_hardware(path), config.load_model("gpt3-175b")
    with pytest.raises(config.ConfigError) as info:
        config.check_fits(m, hw, "gpt3-175b", path)
    msg = str(info.value)
    assert path in msg and "'tiers'" in msg and "gpt3-175b" in msg and "llama2-7b" in msg
    # tensor parallelism 4 brings the weights per device under 144 GB
    assert config.check_fits(m, hw, "gpt3-175b", path, tp=4) < 144e9
    # the KV cache counts too
    small = config.load_model("llama2-7b")
    assert config.check_fits(small, hw, "llama2-7b", path, batch=8, context=4096) > 0
    with pytest.raises(config.ConfigError, match="needs"):
        config.check_fits(small, hw, "llama2-7b", path, batch=512, context=4096)


def test_bad_extends(tmp_path):
    expect_error(config.load_hardware, write(tmp_path, "typo", {"extends": "a100-80gbb", "name": "x"}),
                 "'extends'", "a100-80gb-pcie4", "a100-80gbb")
    loop = tmp_path / "loop.yaml"
    loop.write_text(yaml.safe_dump({"extends": str(loop), "name": "loop"}))
    expect_error(config.load_hardware, str(loop), "'extends'", "extends itself")


def test_extends_overrides_the_parent(tmp_path):
    path = write(tmp_path, "fast", {"extends": "a100-80gb", "name": "fast", "source": "test",
                                    "tiers": {"hbm": {"bw_gbps": 4000}}})
    child, parent = config.load_hardware(path), config.load_hardware("a100-80gb")
    assert float(child.tier_bw_bytes_per_s[specs.HBM]) == pytest.approx(4000e9)
    assert float(child.tier_capacity_bytes[specs.HBM]) == float(parent.tier_capacity_bytes[specs.HBM])


def test_invalid_yaml_and_non_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers: [unclosed\n")
    expect_error(config.load_hardware, str(bad), "not valid YAML")
    bad.write_text("- just\n- a list\n")
    expect_error(config.load_model, str(bad), "mapping")


# ---- the `memgym estimate` command line ------------------------------------------------------------------


def test_cli_estimate_json(capsys):
    argv = ["estimate", "--model", "llama2-70b", "--hardware", "h100-sxm", "--batch", "4", "--context", "1024",
            "--json"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["iteration_time_s"] > 0 and out["model"] == "llama2-70b"
    assert [k["name"] for k in out["kernels"]][:2] == ["norm_attn", "qkv_proj"]
    assert out["iteration_time_s"] == pytest.approx(
        80 * sum(k["time_s"] for k in out["kernels"]) + out["lm_head_s"], rel=1e-5)


def test_cli_estimate_table(capsys):
    assert cli.main(["estimate", "--model", "opt-30b", "--hardware", "a100-80gb", "--phase", "prefill"]) == 0
    out = capsys.readouterr().out
    assert "iteration time" in out and "ffn_down" in out


@pytest.mark.parametrize("flag,value,key", [("--model", "gpt-5", "gpt-5"), ("--hardware", "b200", "b200")])
def test_cli_unknown_preset_exits_2(capsys, flag, value, key):
    assert cli.main(["estimate", flag, value]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "'name'" in err and key in err and "valid:" in err


def test_cli_bad_yaml_names_file_and_key(tmp_path, capsys):
    h = base("hardware", "a100-80gb")
    h["tiers"]["hbm"]["bw_gbps"] = -1
    path = write(tmp_path, "neg", h)
    assert cli.main(["estimate", "--hardware", path]) == 2
    err = capsys.readouterr().err
    assert path in err and "tiers.hbm.bw_gbps" in err


@pytest.mark.parametrize("model,hardware,batch,context,phase,tp", [
    ("gpt3-175b", "a100-80gb", 8, 2048, "decode", 4),  # spills to host DDR
    ("llama2-70b", "h100-sxm", 64, 4096, "decode", 2),
    ("opt-30b", "t4", 1, 512, "prefill", 1),
    ("chinchilla-70b", "h2m2-hbm3-lpddr5x", 16, 2048, "decode", 1),
])
def test_ideal_is_never_slower(model, hardware, batch, context, phase, tp):
    real = estimate(model, hardware, batch, context, phase=phase, tp=tp)
    ideal = estimate(model, hardware, batch, context, phase=phase, tp=tp, ideal=True)
    assert ideal["iteration_time_s"] <= real["iteration_time_s"]
    assert all(i["time_s"] <= r["time_s"] for i, r in zip(ideal["kernels"], real["kernels"]))


def test_cli_ideal_is_never_slower(capsys):
    argv = ["estimate", "--model", "llama2-7b", "--hardware", "a100-80gb", "--json"]
    assert cli.main(argv) == 0
    real = json.loads(capsys.readouterr().out)
    assert cli.main(argv + ["--ideal"]) == 0
    ideal = json.loads(capsys.readouterr().out)
    assert ideal["ideal"] and ideal["iteration_time_s"] < real["iteration_time_s"]
