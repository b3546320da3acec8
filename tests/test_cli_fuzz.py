"""Table-driven CLI failure cases: each expected failure is one clear line on stderr and exit code 2 (argparse's
usage errors too), never a traceback, never a NaN/inf printed, and no file outside the run folder is touched.

`python tests/test_cli_fuzz.py` prints the tally (cases, clear errors, tracebacks, silent NaN/inf, files lost)."""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import sys

import numpy as np
import pytest
import yaml

from memgym.train import cli
from test_validate import set_dotted

TINY = {"name": "t", "env": "KernelMapping-v0", "algorithm": "ppo_jax", "total_timesteps": 256,
        "env_params": {"model": "llama2-70b", "batch": 8, "bins": 4, "max_steps": 8}}
HW = yaml.safe_load((pathlib.Path(cli.__file__).parent.parent / "configs" / "hardware" / "a100-80gb.yaml").read_text()
                    if (pathlib.Path(cli.__file__).parent.parent / "configs").is_dir() else "{}")


def _exp(d, **over):
    out = yaml.safe_load(yaml.safe_dump(TINY))
    for k, v in over.items():
        if k.startswith("env_params."):
            out["env_params"][k.split(".", 1)[1]] = v
        else:
            out[k] = v
    d.joinpath("exp.yaml").write_text(yaml.safe_dump(out))
    return "exp.yaml"


def _run_folder(d, config=True, ckpt=None, cfg_text=None, name="run"):
    run = d / name
    (run / "checkpoints").mkdir(parents=True)
    if config:
        (run / "config.yaml").write_text(cfg_text if cfg_text is not None else yaml.safe_dump(
            {**TINY, "seed": 0, "num_envs": 16, "n_seeds": 1, "hyperparameters": {}, "checkpoint_every": 128,
             "log_every": 64, "eval": {}}))
    if ckpt is not None:
        (run / "checkpoints" / "ppo_jax_000000000256.npz").write_bytes(ckpt)
    return name


def _hw(d, key, value):
    d.joinpath("hw.yaml").write_text(yaml.safe_dump(set_dotted(HW, key, value)))
    return "hw.yaml"


def _npz_bytes():
    buf = io.BytesIO()
    np.savez(buf, meta=np.array('{"global_step": 256, "n_seeds": 1}'), x=np.zeros(1000))
    return buf.getvalue()


# (id, setup(d) -> argv, text the error must contain)
CASES = [
    ("config-is-folder", lambda d: ["train", "--config", str(d)], "folder"),
    ("config-missing", lambda d: ["train", "--config", "nope.yaml"], "no such file"),
    ("config-garbage", lambda d: (d.joinpath("g.yaml").write_bytes(b"\xff\x00{["), ["train", "--config", "g.yaml"])[1],
     "YAML"),
    ("name-dotdot", lambda d: ["train", "--config", _exp(d, name="..")], "'name'"),
    ("name-slash", lambda d: ["train", "--config", _exp(d, name="a/b")], "'name'"),
    ("sb3-n_steps-0", lambda d: ["train", "--config", _exp(d, algorithm="PPO", hyperparameters={"n_steps": 0})],
     "n_steps"),
    ("hbm-nan", lambda d: ["train", "--config", _exp(d, **{"env_params.hbm_capacity_gb": float("nan")})],
     "hbm_capacity_gb"),
    ("hbm-1e300", lambda d: ["train", "--config", _exp(d, **{"env_params.hbm_capacity_gb": 1e300})],
     "hbm_capacity_gb"),
    ("batch-2.5", lambda d: ["train", "--config", _exp(d, **{"env_params.batch": 2.5})], "batch"),
    ("batch-neg", lambda d: ["train", "--config", _exp(d, **{"env_params.batch": -4})], "batch"),
    ("finish-prob-5", lambda d: ["train", "--config", _exp(d, **{"env_params.finish_prob": 5.0})], "finish_prob"),
    ("resume-no-run", lambda d: ["train", "--config", _exp(d), "--resume", "--run-dir", "empty"], "config.yaml"),
    ("resume-no-checkpoints", lambda d: ["train", "--resume", "--run-dir", _run_folder(d)], "no checkpoint"),
    ("resume-and-overwrite", lambda d: ["train", "--config", _exp(d), "--resume", "--overwrite"], "--overwrite"),
    ("run-dir-holds-a-run", lambda d: ["train", "--config", _exp(d), "--run-dir", _run_folder(d)], "--overwrite"),
    ("run-dir-is-file", lambda d: (d.joinpath("f").write_text("x"), ["train", "--config", _exp(d), "--run-dir", "f"])[1],
     "not a folder"),
    ("eval-no-config-yaml", lambda d: ["evaluate", "--config", _exp(d), "--checkpoints", _run_folder(d, config=False)],
     "config.yaml"),
    ("eval-empty-ckpt", lambda d: ["evaluate", "--config", _exp(d), "--checkpoints", _run_folder(d, ckpt=b"")],
     "ppo_jax_000000000256.npz"),
    ("eval-truncated-ckpt", lambda d: ["evaluate", "--config", _exp(d), "--checkpoints",
                                       _run_folder(d, ckpt=_npz_bytes()[:300])], "ppo_jax_000000000256.npz"),
    ("eval-garbage-ckpt", lambda d: ["evaluate", "--config", _exp(d), "--checkpoints",
                                     _run_folder(d, ckpt=os.urandom(500))], "ppo_jax_000000000256.npz"),
    ("eval-bad-config-yaml", lambda d: ["evaluate", "--config", _exp(d), "--checkpoints",
                                        _run_folder(d, cfg_text="{{{:")], "config.yaml"),
    ("eval-config-not-a-run", lambda d: ["evaluate", "--config", _exp(d), "--checkpoints",
                                         _run_folder(d, cfg_text="[1, 2]")], "config.yaml"),
    ("eval-out-is-file", lambda d: (d.joinpath("o").write_text("x"), ["evaluate", "--config", _exp(d), "-o", "o"])[1],
     "not a folder"),
    ("eval-seeds-0", lambda d: ["evaluate", "--config", _exp(d), "--seeds", "0"], "--seeds"),
    ("demo-out-is-file", lambda d: (d.joinpath("o").write_text("x"), ["demo", "--out", "o"])[1], "not a folder"),
    ("report-missing-results", lambda d: ["report", "nope"], "not a folder"),
    ("report-empty-results", lambda d: (d.joinpath("r").mkdir(), ["report", "r", "-o", "/proc/x/report.html"])[1],
     "error"),
    ("estimate-tp-huge", lambda d: ["estimate", "--tp", "1000000"], "tp"),
    ("estimate-tp-not-divisor", lambda d: ["estimate", "--tp", "5"], "tp"),
    ("estimate-batch-0", lambda d: ["estimate", "--batch", "0"], "--batch"),
    ("estimate-context-text", lambda d: ["estimate", "--context", "abc"], "--context"),
    ("estimate-peak-1e-300", lambda d: ["estimate", "--json", "--hardware", _hw(d, "sites.main.peak_tflops.matrix",
                                                                                1e-300)], "peak_tflops.matrix"),
    ("estimate-hbm-bw-1e-300", lambda d: ["estimate", "--hardware", _hw(d, "tiers.hbm.bw_gbps", 1e-300)],
     "tiers.hbm.bw_gbps"),
    ("estimate-hbm-cap-1e-300", lambda d: ["estimate", "--hardware", _hw(d, "tiers.hbm.capacity_gb", 1e-300)],
     "tiers.hbm.capacity_gb"),
    ("estimate-hbm-cap-nan", lambda d: ["estimate", "--hardware", _hw(d, "tiers.hbm.capacity_gb", float("nan"))],
     "tiers.hbm.capacity_gb"),
    ("reproduce-bins-0", lambda d: ["reproduce", "h2m2", "--bins", "0"], "--bins"),
    ("benchmark-seeds-0", lambda d: ["benchmark", "KernelMapping-v0", "--seeds", "0"], "--seeds"),
    ("benchmark-unknown-env", lambda d: ["benchmark", "Nope-v0", "--seeds", "1"], "Nope-v0"),
    ("demo-timesteps-neg", lambda d: ["demo", "--timesteps", "-5"], "--timesteps"),
    ("demo-env-unknown", lambda d: ["demo", "--env", "Nope-v0"], "CacheRatio-v1"),
    ("demo-out-holds-another-env", lambda d: (d.joinpath("o/run").mkdir(parents=True),
                                              d.joinpath("o/run/config.yaml").write_text("env: memgym/KernelMapping-v0\n"),
                                              ["demo", "--env", "CacheRatio-v1", "--out", "o"])[2], "another folder"),
    ("train-total-timesteps-0", lambda d: ["train", "--config", _exp(d), "--total-timesteps", "0"], "--total-timesteps"),
]


def _snapshot(root: pathlib.Path) -> dict:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run_case(tmp: pathlib.Path, setup, expect: str) -> dict:
    """One case in `tmp` (the working folder): {'rc', 'err', 'traceback', 'nonfinite', 'lost'}."""
    tmp.joinpath("config.yaml").write_text("mine: 1\n")  # a file of the user's, beside the run folders
    old = os.getcwd()
    os.chdir(tmp)
    try:
        argv = setup(tmp)
        before = _snapshot(tmp)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(["-q", *argv])
            except SystemExit as e:  # argparse's usage errors
                rc = e.code
    finally:
        os.chdir(old)
    after = _snapshot(tmp)
    text = out.getvalue() + err.getvalue()
    lost = [str(p) for p, b in before.items() if after.get(p) != b]
    return {"rc": rc, "err": err.getvalue(), "traceback": "Traceback" in text,
            "nonfinite": any(w in out.getvalue() for w in ("NaN", "Infinity", " inf", " nan")),
            "clear": rc == 2 and expect in err.getvalue() and "Traceback" not in text, "lost": lost}


@pytest.mark.parametrize("name,setup,expect", CASES, ids=[c[0] for c in CASES])
def test_cli_failure_is_one_clear_line(tmp_path, name, setup, expect):
    r = run_case(tmp_path, setup, expect)
    assert not r["traceback"], r["err"]
    assert r["rc"] == 2 and expect in r["err"], r
    assert not r["nonfinite"] and not r["lost"], r
    lines = [ln for ln in r["err"].splitlines() if ln.strip() and not ln.startswith(("usage:", " "))]
    assert len(lines) == 1, r["err"]  # one line (argparse adds its usage lines before it)


def test_verbose_shows_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["-v", "train", "--config", str(tmp_path)]) == 2
    assert "Traceback" in capsys.readouterr().err


if __name__ == "__main__":  # the tally for the closing note
    import tempfile

    tally = {"cases": 0, "clear": 0, "tracebacks": 0, "nonfinite": 0, "lost": 0}
    for name, setup, expect in CASES:
        with tempfile.TemporaryDirectory() as d:
            r = run_case(pathlib.Path(d), setup, expect)
        tally["cases"] += 1
        tally["clear"] += r["clear"]
        tally["tracebacks"] += r["traceback"]
        tally["nonfinite"] += r["nonfinite"]
        tally["lost"] += bool(r["lost"])
        if not r["clear"]:
            print(name, r, file=sys.stderr)
    print(tally)
