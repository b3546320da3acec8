"""FlexGen's T4 benchmark and HybridServe's speedup over FlexGen against the simulator
(`memgym reproduce hybridserve`)."""

from __future__ import annotations

import pytest

from memgym.sim import config, offload
from memgym.train.reproduce import hybridserve as reproduce


@pytest.fixture(scope="module")
def t4():
    return reproduce.flexgen_t4(search=False)


@pytest.fixture(scope="module")
def versus():
    return reproduce.hybridserve_vs_flexgen(sensitivity=False)


def test_flexgen_opt30b_within_25_percent(t4):
    r = t4["opt-30b"]
    assert abs(r["tokens_per_s"] / 7.32 - 1) <= 0.25
    assert r["tokens_per_s"] == pytest.approx(7.14, rel=0.02)  # FlexGen's own model for the same policy


def test_flexgen_opt175b_disk_case_matches_the_released_model(t4):
    r = t4["opt-175b"]
    assert r["tokens_per_s"] == pytest.approx(0.15, rel=0.1)  # far below the measured 0.69, like FlexGen's model
    d = r["decode_layer_s"]
    assert d["dtoc_s"] > 0.9 * d["layer_s"]  # disk-bound: the KV cache lives on the SSD


def test_flexgen_lp_search_finds_the_released_policy():
    m = config.load_model("opt-30b")
    sol = offload.flexgen_search(m, offload.fitted_rates("t4-flexgen"), 512.0, 32.0, cpu_attention=(1.0,))
    assert (sol.gbs, sol.nb) == (32, 5)  # FlexGen's re-run of its own search: 32 x 5, 7.09 tok/s
    assert sol.tokens_per_s == pytest.approx(7.09, rel=0.02)
    assert sol.wg == pytest.approx(0.12, abs=0.03)


def test_hybridserve_speedup_within_20_percent(versus):
    assert abs(versus["speedup"] / 2.19 - 1) <= 0.20, versus["speedup"]


def test_speedup_needs_the_capacity_effect(versus):
    # at FlexGen's own block the gain is the overlap/bytes gain alone, below 2x; the larger block does the rest
    assert 1.0 < versus["fixed_batch_speedup"] < 2.0
    assert versus["capacity_gain"] > 1.2
    hs, fg = versus["hybridserve"], versus["flexgen"]
    assert hs["gbs"] * hs["num_gpu_batches"] > fg["gbs"] * fg["num_gpu_batches"]
    assert hs["activation_share"] > 0.5  # PCIe-bound: the balance favours activations


def test_both_overlap_readings_are_reported(versus):
    """The headline keeps FlexGen's released (serial) overlap; the same pipelined overlap for both is the
    other reading, reported beside it with the assumption named."""
    assert 1.2 < versus["speedup_same_overlap"] < versus["speedup"]
    assert versus["flexgen_same_overlap"]["tokens_per_s"] > versus["flexgen"]["tokens_per_s"]
    assert "ctog + max" in versus["overlap_assumption"]
