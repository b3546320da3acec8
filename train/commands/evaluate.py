"""`memgym evaluate`: every policy on the experiment's held-out scenarios, many seeds; `--reproduce` adds the
paper reproduction of the experiment's environment (its descriptor's)."""

from __future__ import annotations

from memgym.envs.registry import descriptor

from .. import experiment
from ..evaluation import evaluate
from ..files import output_folder
from ..progress import heartbeat
from ..reproduce import reproduce
from . import ray_options, show_progress


def run(args) -> int:
    exp = experiment.load(args.config)
    ev = exp.eval or {}
    seeds = ev.get("seeds", 10) if args.seeds is None else args.seeds
    out = output_folder(args.out, "-o")
    repro = None
    if args.reproduce:
        d = descriptor(exp.env)
        with heartbeat(f"reproduce {d.paper}", enabled=show_progress(args)):
            repro = {d.paper: reproduce(d, bins=args.reproduce_bins)}
    scenarios = ev.get("scenarios") or {"default": {}}
    with heartbeat(f"evaluate {len(scenarios)} scenarios x {seeds} seeds", enabled=show_progress(args)):
        summary = evaluate.evaluate(exp.env, exp.env_params, scenarios, seeds=seeds,
                                    learned_runs=args.checkpoints, out_dir=out, reproduce=repro,
                                    config_path=args.config, ray=ray_options(args))
    print(evaluate.headline(summary))
    print(f"results written to {args.out}/ (results.csv, summary.json); `memgym report {args.out}` makes the page")
    return 0
