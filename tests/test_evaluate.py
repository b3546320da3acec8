"""`memgym evaluate`: the tidy table, normalisation, statistics, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from memgym import policies
from memgym.train.evaluation import evaluate
from memgym.train.cli import main

TINY = {"model": "llama2-70b", "batch": 8, "bins": 4, "max_steps": 6, "context_start": (1024, 4096)}
SCENARIOS = {"default": {}, "hbm-48gb": {"hbm_capacity_gb": 48}}
SEEDS = 10


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    summary = evaluate.evaluate("KernelMapping-v0", TINY, SCENARIOS, seeds=SEEDS, out_dir=out)
    return out, summary, pd.read_csv(out / "results.csv")


def test_table_has_every_policy_scenario_seed_row(results):
    out, summary, table = results
    names = policies.policy_names("KernelMapping-v0")
    assert len(table) == len(names) * len(SCENARIOS) * SEEDS
    counts = table.groupby(["policy", "scenario"]).seed.nunique()
    assert set(counts.index.get_level_values(0)) == set(names)
    assert (counts == SEEDS).all()
    for col in ("episode_return", "mean_reward", "score_vs_heuristic", "score_vs_oracle",
                "metric_iteration_time_s", "metric_tokens_per_s", "metric_migration_bytes"):
        assert col in table and np.isfinite(table[col]).all(), col
    for f in ("summary.json", "decisions.json", "breakdown.json"):
        assert (out / f).exists()


def test_heuristic_scores_exactly_one_and_oracle_bounds_everyone(results):
    _, summary, table = results
    h = table[table.policy == "h2m2"]
    assert (h.score_vs_heuristic == 1.0).all()
    assert summary["policies"]["h2m2"]["iqm"] == 1.0
    assert (table.score_vs_oracle <= 1.0 + 1e-5).all()
    assert (table[table.policy == "oracle"].score_vs_oracle == 1.0).all()
    # the optimality gap is the mean shortfall below the oracle, not below the heuristic (which scores 1)
    for name, s in summary["policies"].items():
        want = np.maximum(1.0 - table[table.policy == name].score_vs_oracle, 0.0).mean()
        assert s["optimality_gap"] == pytest.approx(want, abs=1e-6), name
    assert summary["policies"]["oracle"]["optimality_gap"] == 0.0


def test_confidence_intervals_contain_the_point_estimates(results):
    _, summary, _ = results
    for name, s in summary["policies"].items():
        assert s["iqm_ci"][0] <= s["iqm"] + 1e-9 and s["iqm"] <= s["iqm_ci"][1] + 1e-9, name
        assert s["mean_ci"][0] <= s["mean"] + 1e-9 and s["mean"] <= s["mean_ci"][1] + 1e-9, name
        lo, hi = s["prob_improvement_ci"]
        assert lo - 1e-9 <= s["prob_improvement"] <= hi + 1e-9, name
        assert 0.0 <= s["prob_improvement"] <= 1.0
    curves = summary["performance_profile"]["curves"]
    assert all(np.all(np.diff(c) <= 1e-12) for c in curves.values())  # profiles never rise with tau


def test_probability_of_improvement_matches_its_definition():
    x = np.array([[2.0, 1.0], [3.0, 1.0]])
    y = np.array([[1.0, 1.0], [1.0, 1.0]])
    # scenario 0: x always larger -> 1; scenario 1: all ties -> 0.5
    assert evaluate.prob_improvement(x, y) == pytest.approx(0.75)


def test_decisions_hold_one_episode_per_policy(results):
    out, _, _ = results
    d = json.loads((out / "decisions.json").read_text())
    h = d["policies"]["h2m2"]
    assert len(h["step"]) == TINY["max_steps"]
    assert set(h["actions"]) == {"hbm_share_attention", "hbm_share_qkv", "hbm_share_fc"}
    assert all(0.0 <= v <= 1.0 for v in h["actions"]["hbm_share_fc"])
    b = json.loads((out / "breakdown.json").read_text())
    assert {"attention", "qkv", "fc", "migration"} <= set(b["policies"]["h2m2"]["parts"])


def test_cli_bad_config_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nenv: KernelMapping-v9\nalgorithm: ppo_jax\ntotal_timesteps: 10\n")
    assert main(["evaluate", "--config", str(bad), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "env" in err and "KernelMapping-v0" in err
