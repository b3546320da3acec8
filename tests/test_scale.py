"""Scale-out on Ray: a sweep (Tune) against plain training, interrupted and resumed; `evaluate --ray` and
`explore --ray` against their local runs; the shipped sweep and explore configs. One local Ray (2 CPUs) for
the module, tiny CacheRatio-v0 scenarios (the cheapest environment to trace), a few thousand env steps."""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal

import pandas as pd
import pytest
import ray
import yaml
from ray.tune import Callback

from memgym.sim.config import ConfigError, presets
from memgym.train import experiment
from memgym.train.cli import main
from memgym.train.scale import cluster, explore, sweep

ENV = "CacheRatio-v0"
TINY = {"bins": 4, "max_steps": 4}
BASE = {"name": "tiny-sweep", "env": ENV, "env_params": TINY, "algorithm": "ppo_jax", "total_timesteps": 512,
        "num_envs": 8, "checkpoint_every": 256, "log_every": 128,
        "hyperparameters": {"num_steps": 8, "hidden": [8], "num_minibatches": 1, "update_epochs": 1}}
# trials one at a time, each on both CPUs: its workers run JAX with exactly this session's settings (no thread
# switch added), so the plain training here below reuses their compiled programs from the shared cache
SWEEP = {"experiment": BASE, "space": {"seed": {"grid": [0, 1]}}, "max_concurrent_trials": 1, "cpus_per_trial": 2}


@pytest.fixture(scope="module")
def local_ray():
    """Ray on this machine with 2 CPUs; its workers run JAX with this session's settings (XLA flags, the
    shared compile cache)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, runtime_env=cluster.runtime_env(2))
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_evaluate_on_ray_writes_the_local_results(local_ray, tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({**BASE, "eval": {"scenarios": {"host-96": {"host_memory_gb": 96.0},
                                                                     "host-160": {"host_memory_gb": 160.0}}}}))
    args = ["evaluate", "--config", str(config), "--seeds", "1", "--no-progress"]  # 1 seed: no bootstrap to wait for
    assert main([*args, "-o", str(tmp_path / "local")]) == 0
    # 2 CPUs per task: the workers run JAX with this session's settings (1 CPU would switch XLA's threads off, a
    # different program to compile; test_workers_get_the_cpu_and_one_thread_per_cpu checks that switch)
    assert main([*args, "-o", str(tmp_path / "ray"), "--ray", "--address", local_ray, "--cpus-per-task", "2"]) == 0
    local = (tmp_path / "local" / "results.csv").read_text()
    assert local == (tmp_path / "ray" / "results.csv").read_text()
    table = pd.read_csv(tmp_path / "local" / "results.csv")
    assert table.policy.nunique() == 6 and set(table.scenario) == {"host-96", "host-160"}
    assert main([*args, "-o", str(tmp_path / "x"), "--address", local_ray]) == 2  # --address needs --ray


def test_explore_on_ray_writes_the_local_csv_and_a_report_section(local_ray, tmp_path):
    grid = tmp_path / "grid.yaml"
    # the shapes of the evaluation above (2 scenarios per program, 1 seed, every policy): the same program, which
    # this process and the Ray worker that played it keep, so neither traces it again
    grid.write_text(yaml.safe_dump({"scenario": TINY, "seeds": 1, "chunk": 2,
                                    "axes": {"host_memory_gb": [96.0, 128.0, 160.0], "pcie_gbps": [16.0]}}))
    args = ["explore", "--env", ENV, "--grid", str(grid), "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "local")]) == 0
    assert main([*args, "-o", str(tmp_path / "ray"), "--ray", "--address", local_ray, "--cpus-per-task", "2"]) == 0
    local = (tmp_path / "local" / "explore.csv").read_text()
    assert local == (tmp_path / "ray" / "explore.csv").read_text()
    table = pd.read_csv(tmp_path / "local" / "explore.csv")
    assert len(table) == 3 * 6 and table.policy.nunique() == 6  # points × policies
    assert list(table.point) == [i // 6 for i in range(18)] and table.feasible.all()  # 2 chunks, one padded
    assert (table[table.policy == "hybridserve"].score_vs_heuristic == 1.0).all()
    assert (table[table.policy == "oracle"].score_vs_oracle == 1.0).all() and table.speedup.notna().all()
    assert {p.name for p in (tmp_path / "local").glob("explore-*.png")} == {
        "explore-speedup.png", "explore-oracle-vs-heuristic.png", "explore-winners.png"}
    assert main(["report", str(tmp_path / "local")]) == 0  # an exploration alone makes a page
    html = (tmp_path / "local" / "report.html").read_text()
    assert "Hardware exploration" in html and html.count("data:image/png;base64") == 3


class InterruptAfterFirstTrial(Callback):
    """Stop the sweep as Ctrl+C would (Tune catches SIGUSR1 the same way) once one trial has finished."""

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not os.environ.get("MEMGYM_TEST_INTERRUPTED"):
            os.environ["MEMGYM_TEST_INTERRUPTED"] = "1"
            os.kill(os.getpid(), signal.SIGUSR1)


def _run_files(folder):
    """The trial's run (what `memgym train` writes) and the number of results it reported to Tune."""
    files = {p: p.stat().st_mtime_ns for n in experiment.RUN_FILES for p in (folder / n).rglob("*") if p.is_file()}
    files[folder / "config.yaml"] = (folder / "config.yaml").stat().st_mtime_ns
    return files, len((folder / "result.json").read_text().splitlines())


def test_sweep_matches_plain_training_and_resumes_without_losing_finished_trials(local_ray, tmp_path, monkeypatch):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    config = sweep.load(path)
    # plain training of each trial's experiment first: the trials' workers then find its compiled program in the
    # session's cache (they run JAX with this process's settings)
    plain = {seed: experiment.train(sweep.trial_experiment(config.base, {"seed": seed}, f"plain-{seed}"),
                                    run_dir=tmp_path / f"plain-{seed}", progress=False)["scalars"][0]
             for seed in (0, 1)}
    out = tmp_path / "sweep"
    monkeypatch.delenv("MEMGYM_TEST_INTERRUPTED", raising=False)  # removed again after the test
    first = sweep.run_sweep(config, out, progress=False, callbacks=[InterruptAfterFirstTrial()])
    finished = first[first.complete]
    assert len(finished) == 1 and len(first) <= 2, first  # interrupted after the first trial
    kept = _run_files(out / finished.trial.iloc[0])
    with pytest.raises(ConfigError, match="--resume"):
        sweep.run_sweep(config, out, progress=False)  # a second run into the folder is refused

    table = sweep.run_sweep(config, out, resume=True, progress=False)
    assert len(table) == 2 and table.complete.all() and (table.error == "").all()
    assert _run_files(out / finished.trial.iloc[0]) == kept  # the finished trial was not run again
    assert list(table.score) == sorted(table.score, reverse=True) and set(table.seed) == {0, 1}

    for row in table.itertuples():
        run = out / row.trial
        resolved = experiment.load(run / "config.yaml")
        assert resolved.seed == row.seed and resolved.hyperparameters["hidden"] == [8]
        assert {**resolved.to_dict(), "name": "x"} == {**experiment.load(tmp_path / f"plain-{row.seed}" / "config.yaml"
                                                                         ).to_dict(), "name": "x"}
        assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1].endswith(f"{512:012d}.npz")
        reported = sweep.trial_metrics(512, [plain[row.seed]], 1.0)
        # same config, program, keys and XLA flags (the workers get this session's): equal to float32 rounding
        for tag in ("rollout/ep_rew_mean", "train/loss", "train/value_loss", "train/approx_kl", "env/tokens_per_s"):
            assert reported[tag] == pytest.approx(_last(run, tag), rel=1e-6, abs=1e-9), (row.trial, tag)
        assert row.score == pytest.approx(plain[row.seed]["rollout/ep_rew_mean"] / row.heuristic_ep_rew_mean,
                                          rel=1e-6)

    # a trial Tune starts again after an interruption continues from its checkpoint to the same numbers
    run = tmp_path / "interrupted"
    shutil.copytree(out / table.trial.iloc[0], run, ignore=shutil.ignore_patterns(f"*{512:012d}.npz"))
    resolved = experiment.load(run / "config.yaml")
    seen = []
    again = sweep.train_trial(resolved, run, lambda step, scalars, baseline: seen.append(step))["scalars"][0]
    assert seen == [384, 512] and again["rollout/ep_rew_mean"] == pytest.approx(_last(out / table.trial.iloc[0],
                                                                                      "rollout/ep_rew_mean"), rel=1e-6)

    best = yaml.safe_load((out / "best.yaml").read_text())
    assert experiment.validate(best).to_dict() == best  # `memgym train --config best.yaml` runs it as is
    assert best["name"].endswith(table.trial.iloc[0][len("trial_"):])


def _last(run, tag):
    """The trial's last reported value of `tag` (Tune's result.json, one JSON object per report)."""
    import json

    lines = (run / "result.json").read_text().splitlines()
    return json.loads(lines[-1])[tag]


def test_shipped_sweep_and_explore_configs_validate():
    assert {"kernel-mapping-generalist", "cache-ratio-generalist", "secure-disagg-generalist"} <= set(
        presets("sweeps"))
    for name in presets("sweeps"):
        s = sweep.load(name)
        assert s.base["algorithm"] == "ppo_jax" and s.space
    assert {"kernel-mapping", "cache-ratio", "secure-disagg"} <= set(presets("explore"))
    for name in presets("explore"):
        g = explore.load(name)
        assert len(g.points()) >= 4 and 2 <= len(g.axes) <= 3 and g.env_id.endswith("-v0")


@pytest.mark.parametrize("change, key", [
    ({"space": {"hyperparameters.learnig_rate": {"choice": [1.0e-3]}}}, "space.hyperparameters.learnig_rate"),
    ({"space": {"seed": {"grid": [0, -1]}}}, "space.seed"),
    ({"space": {"seed": {"between": [0, 1]}}}, "space.seed"),
    ({"space": {"hyperparameters.learning_rate": {"loguniform": [0.0, 1.0]}}},
     "space.hyperparameters.learning_rate.loguniform"),
    ({"scheduler": {"hyperband": {}}}, "scheduler"),
    ({"trials": 3}, "trials"),
    ({"space": {"distribution.size": {"grid": [8]}}}, "space.distribution.size"),
])
def test_bad_sweep_config_names_file_and_key(tmp_path, change, key):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**SWEEP, **change}))
    with pytest.raises(ConfigError) as e:
        sweep.load(path)
    assert e.value.key == key and str(path) in str(e.value)


@pytest.mark.parametrize("change, key", [
    ({"axes": {"host_memory_gigs": [96.0]}}, "axes.host_memory_gigs"),
    ({"axes": {"x": {"path": "hw.no_such_leaf", "values": [1.0]}}}, "axes.x.path"),
    ({"axes": {"x": {"path": "hw.link_bw_bytes_per_s", "scale": "1.0e9", "values": [1.0]}}}, "axes.x.scale"),
    ({"policies": ["h2m2"]}, "policies"),
    ({"env": "KernelMapping-v0"}, "env"),
    ({"chunk": 0}, "chunk"),
])
def test_bad_explore_grid_names_file_and_key(tmp_path, change, key):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"scenario": TINY, "axes": {"host_memory_gb": [96.0, 160.0]}, **change}))
    with pytest.raises(ConfigError) as e:
        explore.load(path, env_id=ENV)
    assert e.value.key == key and str(path) in str(e.value)
    if key == "axes.x.scale":
        assert "decimal point" in str(e.value)  # YAML 1.1 reads 1.0e9 as text


def test_workers_get_the_cpu_and_one_thread_per_cpu(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    one, two = cluster.worker_env(1), cluster.worker_env(2)
    assert one["JAX_PLATFORMS"] == two["JAX_PLATFORMS"] == "cpu"
    assert one["XLA_FLAGS"] == "--xla_backend_optimization_level=0 --xla_cpu_multi_thread_eigen=false"
    assert two["XLA_FLAGS"] == "--xla_backend_optimization_level=0"
    assert one["JAX_COMPILATION_CACHE_DIR"] == os.environ["JAX_COMPILATION_CACHE_DIR"]
    assert math.isnan(sweep.trial_metrics(8, [{"rollout/ep_rew_mean": math.nan}], 2.0)["score"])
    assert sweep.trial_metrics(8, [{"rollout/ep_rew_mean": 1.0}, {"rollout/ep_rew_mean": 3.0}], 2.0)["score"] == 1.0
