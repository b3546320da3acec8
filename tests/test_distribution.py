"""Scenario distributions, benchmark splits and the benchmark protocol's statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import yaml

from memgym.envs import distribution as D
from memgym.envs.core import rollout
from memgym.envs.registry import make
from memgym.policies import get_policy
from memgym.sim.config import ConfigError
from memgym.train import experiment
from memgym.train.evaluation import benchmark

TINY = {"bins": 4, "max_steps": 6, "n_slots": 16}
DIST = {"common": TINY, "variants": [{"model": "llama2-70b"}, {"model": "chinchilla-70b"}],
        "choices": {"workload": ["static", "dynamic"]},
        "ranges": {"batch": [4, 16], "hbm_capacity_gb": [48.0, 160.0], "lpddr_bw_gbps": {"log": [300.0, 800.0]}},
        "size": 12, "seed": 3}


@pytest.fixture(scope="module")
def built():
    dist = D.from_dict("KernelMapping-v0", DIST)
    env, table = dist.build()
    return dist, env, table


def test_draws_are_reproducible_and_within_their_ranges(built):
    dist, _, table = built
    draws = D.draws_of(dist)
    assert len(draws) == 12 and draws == D.draws_of(D.from_dict("KernelMapping-v0", DIST))
    other = D.from_dict("KernelMapping-v0", {**DIST, "seed": 4}).sample()[0]
    assert other != list(draws)
    for d in draws:
        assert 4 <= d["batch"] <= 16 and isinstance(d["batch"], int)
        assert 48.0 <= d["hbm_capacity_gb"] <= 160.0 and 300.0 <= d["lpddr_bw_gbps"] <= 800.0
        assert d["model"] in ("llama2-70b", "chinchilla-70b") and d["n_slots"] == 16
    assert table.size == 12 and table.table.batch.shape == (12,)
    np.testing.assert_allclose(np.asarray(table.table.batch), [d["batch"] for d in draws])


def test_each_reset_draws_a_scenario_and_steps_match_the_plain_env(built):
    dist, env, table = built
    draws = D.draws_of(dist)
    keys = jax.random.split(jax.random.PRNGKey(0), 32)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, table)
    batches = np.asarray(state.params.batch)
    assert len(set(batches.tolist())) > 3  # a seed changes the scenario
    # the Randomized step is the plain env's step on the drawn row
    plain = make("KernelMapping-v0", **draws[0])[0]
    h2m2 = get_policy("KernelMapping-v0", "h2m2")
    row = jax.tree_util.tree_map(lambda x: x[0], state)
    action = h2m2(keys[0], jax.tree_util.tree_map(lambda x: x[0], obs), row.inner, row.params)
    out_r = env.step(keys[1], row, action, table)
    out_p = plain.step(keys[1], row.inner, action, row.params)
    assert float(out_r[2]) == float(out_p[2]) and np.isfinite(float(out_r[2]))
    # the lifted heuristic plays whole episodes over the table: every reward finite, episodes end on time
    rewards, term, trunc, _, _ = jax.jit(jax.vmap(lambda k: rollout(env, D.lift(h2m2), table, k, 12)))(keys[:4])
    assert np.isfinite(np.asarray(rewards)).all() and int((term | trunc).sum()) == 8


def test_padded_slots_change_nothing():
    """A scenario padded to more slots (as distributions and benchmarks do) plays the same episode: with a
    fixed start context the workload is deterministic, so the rewards must agree."""
    base = {"model": "llama2-70b", "batch": 8, "bins": 4, "max_steps": 6, "context_start": (2048, 2048)}
    env, p8 = make("KernelMapping-v0", **base)
    _, p32 = make("KernelMapping-v0", **base, n_slots=32)
    pol = get_policy("KernelMapping-v0", "h2m2")
    run = jax.jit(lambda p: rollout(env, pol, p, jax.random.PRNGKey(1), 6)[0])
    np.testing.assert_allclose(np.asarray(run(p8)), np.asarray(run(p32)), rtol=1e-6)


@pytest.mark.parametrize("change, key", [
    ({"ranges": {"hbm_capacity_gb": [160.0, 48.0]}}, "train.ranges.hbm_capacity_gb"),
    ({"ranges": {"batch": {"log": [0, 16]}}}, "train.ranges.batch"),
    ({"choices": {"warp_drive": [1]}}, "train.choices.warp_drive"),
    ({"variants": [{"modle": "gpt3-175b"}]}, "train.variants[0].modle"),
    ({"size": 0}, "train.size"),
    ({"colour": 1}, "train.colour"),
])
def test_bad_distribution_names_the_key(change, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        D.from_dict("KernelMapping-v0", {**DIST, **change}, where="train")


def test_infeasible_distribution_and_mixed_statics_are_refused():
    nothing_fits = {**DIST, "ranges": {"hbm_capacity_gb": [1.0, 2.0]}, "variants": [{"model": "gpt3-175b"}],
                    "common": {**TINY, "n_slots": 128, "batch": 128, "context_max": 8192}}
    with pytest.raises(ValueError, match="rejected"):
        D.from_dict("KernelMapping-v0", nothing_fits).build()
    mixed = {**DIST, "choices": {"bins": [4, 5]}}
    with pytest.raises(ValueError, match="static fields bins"):
        D.from_dict("KernelMapping-v0", mixed).build()


def test_shipped_benchmarks_load_and_keep_test_outside_training():
    for name in ("kernel-mapping", "secure-disagg", "cache-ratio", "cache-ratio-v1"):
        b = D.load_benchmark(name)
        assert b.test and b.validation and b.seeds >= 1
        assert not set(b.test) & set(b.validation)
    km = D.load_benchmark("kernel-mapping")
    trained = {v["model"] for v in km.train.variants}
    tested = {s["model"] for s in km.test.values()}
    assert {"llama2-70b", "opt-175b"} & tested - trained
    # validation can see transfer to an unseen model, and that model is not one of the test's
    assert {s.get("model") for s in km.validation.values()} - trained - tested - {None}
    lo, hi = km.train.ranges["hbm_capacity_gb"]
    assert any(s.get("hbm_capacity_gb", 96) < lo or s.get("hbm_capacity_gb", 96) > hi for s in km.test.values())


def test_bad_benchmark_names_file_and_key(tmp_path):
    good = yaml.safe_load(open(D.preset_path("benchmarks", "kernel-mapping")))
    bad = dict(good, test={"x": {"model": "no-such-model"}})
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"b.yaml: key 'test.x'"):
        D.load_benchmark(path)
    path.write_text(yaml.safe_dump(dict(good, env="Nope-v0")))
    with pytest.raises(ConfigError, match="key 'env'"):
        D.load_benchmark(path)


def test_experiment_distribution_key_is_validated(tmp_path):
    d = {"name": "g", "env": "KernelMapping-v0", "algorithm": "ppo_jax", "total_timesteps": 10,
         "distribution": {**DIST, "ranges": {"batch": [16, 4]}}}
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match="distribution.ranges.batch"):
        experiment.load(path)
    path.write_text(yaml.safe_dump({**d, "distribution": "secure-disagg"}))
    with pytest.raises(ConfigError, match="is for SecureDisagg-v0"):
        experiment.load(path)
    path.write_text(yaml.safe_dump({**d, "algorithm": "PPO", "distribution": "kernel-mapping"}))
    with pytest.raises(ConfigError, match="distribution"):
        experiment.load(path)
    assert experiment.load("kernel-mapping-generalist").distribution == "kernel-mapping"


def test_benchmark_statistics_use_training_runs_as_the_unit():
    rows = []
    scen = ["a", "b"]
    for s in range(4):
        for t in scen:
            rows.append({"policy": "h2m2", "kind": "heuristic", "scenario": t, "seed": s, "score_vs_heuristic": 1.0})
            rows.append({"policy": "oracle", "kind": "oracle", "scenario": t, "seed": s,
                         "score_vs_heuristic": 1.10 if t == "a" else 1.0})
            rows.append({"policy": "lpddr_only", "kind": "baseline", "scenario": t, "seed": s,
                         "score_vs_heuristic": 0.5})
            for r, v in enumerate((1.04, 1.06, 1.05)):
                rows.append({"policy": f"learned:run/seed{r}", "kind": "learned", "scenario": t, "seed": s,
                             "score_vs_heuristic": v if t == "a" else 0.99})
    s = benchmark.summarize(pd.DataFrame(rows), "KernelMapping-v0", scen)
    g = s["learned"]["learned:run"]
    assert g["n_runs"] == 3  # three training runs, not 12 episodes
    assert g["gap_closed"] == pytest.approx((1.05 + 0.99 - 2.0) / 0.10)
    assert g["worst_scenario"] == "b" and g["worst_scenario_mean"] == pytest.approx(0.99)
    a = s["per_scenario"]["a"]
    assert a["headroom"] == pytest.approx(0.10) and a["learned"]["learned:run"]["gap_closed"] == pytest.approx(0.5)
    assert s["per_scenario"]["b"]["learned"]["learned:run"]["gap_closed"] is None  # no headroom there
    assert a["best_baseline"] == "lpddr_only"
    assert g["iqm_ci"][0] <= g["iqm"] <= g["iqm_ci"][1]
    assert benchmark.default_benchmark("memgym/SecureDisagg-v0") == "secure-disagg"
    assert "learned:run" in benchmark.format_benchmark({**s, "benchmark": "x", "split": "test", "seeds": 4})


def test_generalist_trains_on_a_distribution_and_benchmark_scores_its_runs(tmp_path):
    """End to end on tiny settings: ppo_jax over a distribution (2 seeds vmapped), then `memgym benchmark`
    scores each training seed as one run on held-out scenarios."""
    import json

    from memgym.train.cli import main

    bench = {"env": "memgym/KernelMapping-v0", "seeds": 2, "seed": 7, "common": {"n_slots": 16, **TINY},
             "train": {k: v for k, v in DIST.items() if k != "common"} | {"common": TINY},
             "validation": {"v": {"model": "chinchilla-70b", "batch": 8}},
             "test": {"unseen-model": {"model": "llama2-70b", "batch": 12},
                      "hbm-200": {"model": "chinchilla-70b", "batch": 8, "hbm_capacity_gb": 200.0}}}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(bench))
    exp = {"name": "g", "env": "KernelMapping-v0", "algorithm": "ppo_jax", "total_timesteps": 512,
           "distribution": str(tmp_path / "b.yaml"), "num_envs": 8, "n_seeds": 2,
           "hyperparameters": {"num_steps": 8}, "log_every": 256}
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(exp))
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "e.yaml"), "--run-dir", str(run), "--no-progress"]) == 0
    out = tmp_path / "bench"
    assert main(["benchmark", "KernelMapping-v0", "--benchmark", str(tmp_path / "b.yaml"), "--checkpoints",
                 str(run), "-o", str(out)]) == 0
    s = json.loads((out / "benchmark.json").read_text())
    assert s["split"] == "test" and set(s["per_scenario"]) == {"unseen-model", "hbm-200"}
    g = s["learned"]["learned:run"]
    assert g["n_runs"] == 2 and np.isfinite(g["iqm"])
    table = pd.read_csv(out / "results.csv")
    assert set(table.policy) >= {"learned:run/seed0", "learned:run/seed1", "h2m2", "oracle"}
    assert (table.groupby("policy").size() == 4).all()  # 2 scenarios x 2 seeds each
    assert "2 training runs" in benchmark.headline(s, "a tiny distribution")
    assert s["greedy"] is True and "act greedily" in benchmark.format_benchmark(s)
    # --sample: the learned policies draw their actions (a key changes them), greedy ones do not; the table says so
    from memgym.train.evaluation.evaluate import load_learned

    env, params = make("KernelMapping-v0", **bench["test"]["unseen-model"], **TINY)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    keys = jax.random.split(jax.random.PRNGKey(1), 16)
    for sample in (False, True):
        (_, pol), = [v for k, v in load_learned([run], sample).items() if k.endswith("seed0")]
        acts = np.asarray(jax.jit(jax.vmap(pol, in_axes=(0, None, None, None)))(keys, obs, state, params))
        assert (len(np.unique(acts, axis=0)) > 1) == sample
    sampled = {**s, "greedy": False}
    assert "sample their actions" in benchmark.format_benchmark(sampled)
    assert "training runs, sampled" in benchmark.headline(sampled, "a tiny distribution")
