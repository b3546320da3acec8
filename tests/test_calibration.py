"""Kernel-level calibration against measured data shipped in the package (`sim/data/`: Vidur's Llama-2-70B
GEMM medians on A100 and H100, LLMCompass's GPT-3 175B layer on 4×A100; sources and licences in
`sim/data/README.md`). The presets' efficiencies are fitted on TP1+TP8 and tested on TP2+TP4."""

import numpy as np
import pytest

from memgym.sim import calibrate, config, specs

TARGET_MAPE = 12.0


@pytest.fixture(scope="module")
def points():
    return calibrate.load_gemm_points()


@pytest.fixture(scope="module")
def fits(points):
    return {r["device"]: r for r in calibrate.calibrate(points)}


def test_points_cover_both_devices_all_tp_and_gemms(points):
    # 259 token counts x 4 TP degrees x 4 GEMMs per device, one median per configuration
    assert len(points) == 2 * 259 * 4 * 4
    assert set(points["tp"]) == {1, 2, 4, 8} and set(points["device"]) == {"a100", "h100"}
    assert (points["measured_s"] > 0).all() and (points["flops"] > 0).all()
    one = points[(points["device"] == "a100") & (points["tp"] == 1) & (points["tokens"] == 1)]
    down = one[one["gemm"] == "ffn_down"].iloc[0]
    assert down["measured_s"] == pytest.approx(290e-6, rel=0.01)  # Vidur's A100 median, 1 token, TP 1
    assert down["bytes"] == pytest.approx(2 * 28672 * 8192 + 2 * (28672 + 8192), rel=1e-6)


@pytest.mark.parametrize("device", ["a100", "h100"])
def test_fit_meets_target_on_held_out_tp(fits, device):
    r = fits[device]
    assert r["held_out_mape"] <= TARGET_MAPE
    assert r["in_sample_mape"] <= TARGET_MAPE
    assert 0.3 < r["eta_c"] <= 1 and 0.3 < r["eta_m"] <= 1 and 0 < r["t0_us"] < 50


@pytest.mark.parametrize("device", ["a100", "h100"])
def test_uncalibrated_roofline_is_much_worse(fits, device):
    r = fits[device]
    assert r["uncalibrated_mape"] > 25.0  # spec-peak roofline: ~35 % off on these GEMMs
    assert r["uncalibrated_mape"] > 2 * r["held_out_mape"]
    assert r["uncalibrated_held_out_mape"] > 2 * r["held_out_mape"]


@pytest.mark.parametrize("device,preset", list(calibrate.DEVICE_PRESETS.items()))
def test_stored_preset_reproduces_the_fit(points, fits, device, preset):
    """The YAML holds the fitted numbers (not stale), and evaluating it through the simulator's own
    roofline reproduces the held-out error."""
    hw = config.load_hardware(preset)
    r = fits[device]
    for unit in (specs.MATRIX, specs.MATVEC):
        assert float(hw.eff_compute[unit]) == pytest.approx(r["eta_c"], abs=0.01)
        assert float(hw.overhead_s[unit]) * 1e6 == pytest.approx(r["t0_us"], abs=0.5)
    assert float(hw.eff_memory) == pytest.approx(r["eta_m"], abs=0.01)
    assert calibrate.preset_mape(preset, points=points) <= TARGET_MAPE


def test_fit_model_matches_the_simulator(points):
    """calibrate's numpy formula and roofline.kernel_times give the same GEMM times for the stored preset."""
    pts = points[(points["device"] == "h100") & (points["tp"] == 4)]
    hw = config.load_hardware("h100-sxm")
    peak, bw, lat = calibrate._peaks("h100-sxm")
    want = calibrate.predict(pts["flops"].to_numpy(), pts["bytes"].to_numpy(), peak, bw,
                             float(hw.eff_compute[specs.MATRIX]), float(hw.eff_memory),
                             float(hw.overhead_s[specs.MATRIX]), lat)
    np.testing.assert_allclose(calibrate.preset_gemm_times(pts, "h100-sxm"), want, rtol=1e-5)


def test_llmcompass_gpt3_layer():
    """One GPT-3 175B layer on 4×A100 at TP 4: the decode layer total within 10 % of the measured 1.11 ms
    (LLMCompass itself: 4.1 % end to end). Prefill is reported, with a loose bound."""
    r = calibrate.llmcompass_layer()
    assert r["decode"]["measured_s"] == pytest.approx(1.11e-3, rel=0.01)
    assert r["decode"]["placement"] == {"hbm": 1.0}
    assert abs(r["decode"]["error_pct"]) <= 10.0
    assert abs(r["prefill"]["error_pct"]) <= 25.0


def test_measured_data_ships_in_the_package():
    """The CSVs live inside the package (no path outside it) and pyproject ships them as package data."""
    import pathlib
    import tomllib

    pkg = pathlib.Path(calibrate.__file__).resolve().parent
    for name in (calibrate.VIDUR_CSV, calibrate.LLMCOMPASS_CSV, "llmcompass_matmul_a100.csv",
                 calibrate.PUBLISHED_DECODE_CSV):
        path = calibrate.data_path(name)
        assert path.is_file() and path.parent == pkg / "data"
        assert name in (pkg / "data" / "README.md").read_text()
    assert "MIT License" in (pkg / "data" / "LICENSES.md").read_text()
    root = pkg.parent if (pkg.parent / "pyproject.toml").exists() else None
    if root is not None:
        data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
        assert "data/*.csv" in data["memgym.sim"]


# ---- launch profiles (eager | graph) against published per-token decode latencies -------------------------

# graph rows where per-GPU work dominates the fixed per-kernel costs: Llama-2-70B at 2-4 GPUs, Llama-2-7B on one
GRAPH_TOLERANCE_PCT = 25.0


@pytest.fixture(scope="module")
def published():
    return calibrate.published_decode_check()


@pytest.mark.parametrize("device, preset", [("a100", "a100-80gb"), ("h100", "h100-sxm")])
def test_graph_overheads_are_vidurs_kernel_only_times(device, preset):
    eager, graph = config.load_hardware(preset), config.load_hardware(preset, launch="graph")
    assert float(graph.overhead_s[specs.VECTOR]) * 1e6 == pytest.approx(
        calibrate.graph_vector_overhead_us(device), abs=0.5)
    for unit in (specs.MATRIX, specs.MATVEC):  # the GEMM t0 is fitted on kernel-only times already
        assert float(graph.overhead_s[unit]) == float(eager.overhead_s[unit])
    assert float(graph.overhead_s[specs.VECTOR]) < float(eager.overhead_s[specs.VECTOR]) / 4


def test_eager_stays_the_default_and_graph_is_closer_to_the_roofline():
    from memgym.sim.estimate import estimate

    args = ("llama2-70b", "a100-80gb", 16, 4096)
    default, eager = estimate(*args, tp=4), estimate(*args, tp=4, launch="eager")
    graph, ideal = estimate(*args, tp=4, launch="graph"), estimate(*args, tp=4, ideal=True)
    assert default["per_token_latency_s"] == eager["per_token_latency_s"]
    assert default["per_token_latency_s"] == pytest.approx(54.517e-3, rel=1e-3)  # the numbers before launch=
    assert eager["launch"] == "eager" and graph["launch"] == "graph"
    assert eager["per_token_latency_s"] / ideal["per_token_latency_s"] == pytest.approx(2.74, abs=0.02)
    assert graph["per_token_latency_s"] / ideal["per_token_latency_s"] == pytest.approx(1.76, abs=0.02)
    norms = {r["name"]: r for r in graph["kernels"]}
    assert norms["norm_ffn"]["bytes_activations"] == pytest.approx(
        {r["name"]: r for r in eager["kernels"]}["norm_ffn"]["bytes_activations"] / 2)
    with pytest.raises(ValueError, match="launch"):
        estimate(*args, tp=4, launch="cuda")
    with pytest.raises(config.ConfigError, match="overhead_us_graph"):
        estimate("opt-30b", "t4", 1, 128, launch="graph")  # no graph table in that preset


def test_graph_profile_matches_published_serving_latency(published):
    graph = published[published["launch"] == "graph"]
    within = graph[((graph["model"] == "llama2-70b") & (graph["gpus"] <= 4))
                   | ((graph["model"] == "llama2-7b") & (graph["gpus"] == 1))]
    assert len(within) == 23
    assert within["graph_error_pct"].abs().max() <= GRAPH_TOLERANCE_PCT
    lmdeploy = graph[graph["source"] == "lmdeploy-a100-fp16"]
    assert len(lmdeploy) == 20 and lmdeploy["graph_error_pct"].abs().mean() <= 10.0
    # measured band where it is not within tolerance: small per-GPU work (7B at TP 2-8, 70B at TP 8), where the
    # table's fixed per-layer costs (two all-reduces at 8.92 us link latency, 14 launches) outweigh gpt-fast's
    rest = graph.drop(within.index)
    assert len(rest) == 4
    assert rest["graph_error_pct"].between(25.0, 65.0).all(), rest[["model", "gpus", "graph_error_pct"]]
    # the eager profile over-predicts every serving engine's figure, by at least 10 points more than graph
    assert (graph["eager_error_pct"] > graph["graph_error_pct"] + 10.0).all()


def test_eager_profile_against_the_published_eager_baseline(published):
    """The PyTorch blog's eager starting point (Llama-7B, 1xA100, 25.5 tok/s) is CPU-bound Python: many more
    kernels per layer than the table's 16 (RMSNorm and RoPE as chains of elementwise ops, a growing KV cache),
    each slower to launch than LLMCompass's fused PyTorch ops that set the eager 32 us. The eager profile
    under-predicts it by about half: the measured band is asserted."""
    eager = published[published["launch"] == "eager"]
    assert len(eager) == 1
    assert eager["eager_error_pct"].between(-60.0, -50.0).all(), eager["eager_error_pct"]
    assert (eager["graph_ms"] < eager["eager_ms"]).all()


def test_cli_estimate_launch(capsys):
    import json

    from memgym.train.cli import main

    assert main(["estimate", "--model", "llama2-70b", "--tp", "4", "--batch", "16", "--context", "4096",
                 "--launch", "graph", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["launch"] == "graph" and out["per_token_latency_s"] == pytest.approx(35.09e-3, rel=2e-3)
    assert main(["estimate", "--model", "llama2-70b", "--tp", "4", "--launch", "graph"]) == 0
    assert "graph launch" in capsys.readouterr().out
