"""`memgym demo`: the README's main command. Train a small JAX PPO agent on KernelMapping-v0 (GPT3-175B on
H2M2's HBM + LPDDR system) for a couple of minutes, evaluate it against the H2M2 heuristic, the baselines and
the oracle on held-out scenarios, reproduce the paper's table, write the report and print the headline."""

from __future__ import annotations

import logging
import pathlib
import time

log = logging.getLogger(__name__)
DEMO_CONFIG = "kernel-mapping-ppo-jax"


def run_demo(out="memgym-demo", timesteps: int = 3_000_000, seeds: int = 10, progress: bool = True,
             reproduce_bins: int | None = None, say=print) -> dict:
    from . import evaluate, experiment, report, reproduce
    from memgym.policies import learned

    out = pathlib.Path(out)
    t0 = time.perf_counter()
    exp = experiment.load(DEMO_CONFIG, total_timesteps=timesteps)
    run_dir = out / "run"
    done = 0
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        done = learned.read_checkpoint(learned.latest_checkpoint(run_dir))[1].get("global_step", 0)
    if done >= timesteps:
        say(f"[1/4] reusing the trained agent in {run_dir} ({done:,} steps)")
    else:
        say(f"[1/4] training JAX PPO on {exp.env} ({exp.env_params or 'default scenario'}) for {timesteps:,} "
            f"env steps -> {run_dir}")
        resume = done > 0
        if resume:
            exp = experiment.load(run_dir / "config.yaml", total_timesteps=timesteps - done)
        summary = experiment.train(exp, run_dir=run_dir, resume=resume, progress=progress)
        say(experiment.format_summary(exp, summary))
    from .progress import heartbeat

    say("[2/4] reproducing H2M2's table (speedups over LPDDR-only)")
    with heartbeat("reproduce h2m2", enabled=progress):
        repro = reproduce.reproduce_h2m2(bins=reproduce_bins)  # what `memgym reproduce h2m2` prints
    say(f"[3/4] evaluating every policy on {len(exp.eval.get('scenarios', {}))} held-out scenarios x {seeds} seeds")
    with heartbeat("evaluate", enabled=progress):
        summary = evaluate.evaluate(exp.env, exp.env_params, exp.eval.get("scenarios") or {"default": {}},
                                    seeds=seeds, learned_runs=[run_dir], out_dir=out / "results",
                                    reproduce={"h2m2": repro}, config_path=exp.source)
    say("[4/4] writing the report")
    html, md = report.write_report(out / "results", out / "report.html")
    say("")
    say(reproduce.format_h2m2(repro))
    say("")
    say(evaluate.headline(summary))
    say("")
    say(f"report: {html.resolve()} (Markdown twin: {md.resolve()}); done in {time.perf_counter() - t0:.0f} s")
    return summary
