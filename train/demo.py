"""`memgym demo`: the README's main command. Train an environment's generalist (by default KernelMapping-v0's: JAX
PPO over the kernel-mapping benchmark's train distribution, three training seeds in one program; the descriptor's
`generalist`) for its `demo_timesteps` steps per seed, score it with every policy on the benchmark's held-out
test split, write the report and print the headline: what the agent was trained on, and where it wins and loses
against the paper's heuristic.
`env_id` picks another environment's generalist (`memgym demo --env CacheRatio-v1`). `with_reproduction=True`
adds the environment's paper reproduction (its descriptor's `reproduce`: H2M2's table, about 100 s more on 2
cores)."""

from __future__ import annotations

import json
import logging
import pathlib
import time

from memgym.envs import distribution
from memgym.envs.registry import descriptor, generalists
from memgym.policies import learned

from . import experiment, reproduce
from .evaluation import benchmark
from .files import write_atomic
from .progress import heartbeat
from .report import write_report

log = logging.getLogger(__name__)
DEMO_ENV = "KernelMapping-v0"


def run_demo(out="memgym-demo", timesteps: int | None = None, seeds: int | None = None, progress: bool = True,
             with_reproduction: bool = False, reproduce_bins: int | None = None, env_id: str = DEMO_ENV,
             say=print) -> dict:
    d = descriptor(env_id)
    if not d.generalist:
        raise ValueError(f"env {env_id!r} has no generalist to demo; valid: {', '.join(generalists())}")
    out = pathlib.Path(out)
    t0 = time.perf_counter()
    timesteps = timesteps or d.demo_timesteps
    exp = experiment.load(d.generalist, total_timesteps=timesteps)
    run_dir = out / "run"
    held = learned.run_config(run_dir)["env"] if (run_dir / "config.yaml").is_file() else exp.env
    if held != exp.env:
        raise ValueError(f"{run_dir} holds a {held} run; give {env_id}'s demo another folder (--out)")
    done = 0
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        done = learned.read_checkpoint(learned.latest_checkpoint(run_dir))[1].get("global_step", 0)
    dist = distribution.resolve(exp.env, exp.distribution)
    trained_on = benchmark.describe_distribution(dist)
    if done >= timesteps:
        say(f"[1/4] reusing the trained agent in {run_dir} ({done:,} steps per seed)")
    else:
        say(f"[1/4] training JAX PPO on {exp.env}, {exp.n_seeds} seeds x {timesteps:,} env steps, on "
            f"{trained_on} -> {run_dir}")
        resume = done > 0
        if resume:
            exp = experiment.load(run_dir / "config.yaml", total_timesteps=timesteps - done)
        summary = experiment.train(exp, run_dir=run_dir, resume=resume, progress=progress)
        say(experiment.format_summary(exp, summary))
    repro, env = None, descriptor(exp.env)
    if with_reproduction:
        say(f"[2/4] reproducing the {env.paper} paper's table")
        with heartbeat(f"reproduce {env.paper}", enabled=progress):  # what `memgym reproduce PAPER` prints
            repro = reproduce.reproduce(env, bins=reproduce_bins)
    else:
        say(f"[2/4] skipping the {env.paper} paper's table (`memgym demo --reproduce` adds it; "
            f"`memgym reproduce {env.paper}` prints it)")
    say("[3/4] scoring every policy and the agent on the benchmark's held-out test split")
    results = out / "results"
    with heartbeat("benchmark", enabled=progress):
        summary = benchmark.run_benchmark(exp.env, checkpoints=[run_dir], split="test", out_dir=results,
                                          seeds=seeds)
    sentence = benchmark.headline(summary, trained_on)
    _add_to_summary(results / "summary.json", headline=sentence)
    if repro is not None:
        write_atomic(results / "reproduce.json", json.dumps({env.paper: repro}, indent=1))
    say("[4/4] writing the report")
    html, md = write_report(results, out / "report.html")
    say("")
    if repro is not None:
        say(reproduce.format_result(env, repro))
        say("")
    say(benchmark.format_benchmark(summary))
    say("")
    say(sentence)
    say(f"report: {html.resolve()} (Markdown twin: {md.resolve()}); done in {time.perf_counter() - t0:.0f} s")
    return summary


def _add_to_summary(path: pathlib.Path, **fields) -> None:
    data = json.loads(path.read_text())
    data.update(fields)
    write_atomic(path, json.dumps(data, indent=1))
