"""Progress off a terminal (periodic plain lines), --quiet, finite-or-n/a figures, and `reproduce`'s bins."""

import inspect
import io
import math
import time

import pytest
import yaml

from memgym.train import cli, experiment, progress
from memgym.train.demo import run_demo


def test_bar_off_a_terminal_writes_plain_lines():
    out = io.StringIO()  # not a TTY
    b = progress.bar(100, "job", stream=out)
    b.update(40)
    b.update(60)
    b.close()
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n") and "job" in text and "100/100" in text


def test_disabled_bar_writes_nothing():
    out = io.StringIO()
    b = progress.bar(10, "job", enabled=False, stream=out)
    b.update(10)
    b.close()
    assert out.getvalue() == ""


def test_heartbeat_ticks_off_a_terminal(monkeypatch):
    monkeypatch.setattr(progress, "NON_TTY_INTERVAL_S", 0.05)
    out = io.StringIO()
    with progress.heartbeat("reproduce x", stream=out, tick_s=0.05) as stage:
        stage("sweep")
        time.sleep(0.4)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 2 and all(line.startswith("reproduce x") for line in lines)
    quiet = io.StringIO()
    with progress.heartbeat("reproduce x", enabled=False, stream=quiet):
        time.sleep(0.1)
    assert quiet.getvalue() == ""


def test_fmt_never_prints_nan():
    assert progress.fmt(float("nan")) == "n/a" and progress.fmt(None) == "n/a" and progress.fmt(1.23456) == "1.235"


def test_summary_of_a_short_run_has_no_nan():
    exp = experiment.validate({"name": "t", "env": "memgym/KernelMapping-v0", "algorithm": "ppo_jax",
                               "total_timesteps": 128}, "<test>")
    summary = {"global_step": 128, "start_step": 0, "wall_s": 1.0, "baseline": {"h2m2": 24.0},
               "scalars": [{"rollout/ep_rew_mean": math.nan}, {"rollout/ep_rew_mean": 12.0}]}
    text = experiment.format_summary(exp, summary)
    assert "nan" not in text.lower()
    assert "n/a" in text.splitlines()[1] and "0.500 × h2m2" in text.splitlines()[2]


def test_quiet_flag_and_no_progress():
    from memgym.train.commands import show_progress

    p = cli.build_parser()
    assert not show_progress(p.parse_args(["-q", "train", "--config", "x"]))
    assert not show_progress(p.parse_args(["train", "--config", "x", "--no-progress"]))
    assert show_progress(p.parse_args(["reproduce", "h2m2"]))
    assert not show_progress(p.parse_args(["--quiet", "evaluate", "--config", "x"]))


def test_demo_and_cli_reproduce_use_the_same_bins():
    p = cli.build_parser()
    cli_bins = p.parse_args(["reproduce", "h2m2"]).bins
    eval_bins = p.parse_args(["evaluate", "--config", "x", "--reproduce"]).reproduce_bins
    demo_bins = inspect.signature(run_demo).parameters["reproduce_bins"].default
    assert cli_bins == eval_bins == demo_bins


def test_format_h2m2_states_its_bins():
    from memgym.train.reproduce import h2m2 as reproduce

    cols = ["h2m2", "oracle", "hierarchical", "a_major", "q_major", "f_major", "flexgen_static", "whole_sublayer"]
    result = {m: {**{f"speedup_{c}": 1.0 for c in cols}, "paper_h2m2": 1.5, "h2m2_over_oracle": 1.0, "batch": 8,
                  "bins": 97 if m == "gpt3-175b" else 65} for m in reproduce.PAPER_CONTEXTS}
    result["dynamic"] = {"speedup_h2m2": 1.4, "speedup_flexgen_static": 1.2, "speedup_oracle": 1.5,
                         "scenario": {"bins": 33}}
    text = reproduce.format_h2m2(result)
    assert "bins per sublayer): gpt3-175b 97" in text and "33 bins" in text


def test_cli_training_shows_progress_lines_off_a_terminal(tmp_path, capsys):
    cfg = {"name": "tiny-progress", "env": "memgym/KernelMapping-v0", "algorithm": "ppo_jax",
           "env_params": {"model": "llama2-70b", "batch": 8, "bins": 4, "max_steps": 8}, "num_envs": 16,
           "n_seeds": 2, "hyperparameters": {"num_steps": 8}, "total_timesteps": 256, "seed": 0,
           "checkpoint_every": 1024, "log_every": 128}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli.main(["train", "--config", str(path), "--run-dir", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    assert "tiny-progress" in err and "\r" not in err and "256/256" in err  # a plain line, the final count
    assert "nan" not in out.lower() and "seed 1" in out
    assert cli.main(["-q", "train", "--config", str(path), "--run-dir", str(tmp_path / "run2")]) == 0
    assert "tiny-progress:" not in capsys.readouterr().err
