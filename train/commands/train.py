"""`memgym train`: train an agent from an experiment config (SB3 or the JAX PPO trainer)."""

from __future__ import annotations

from .. import experiment
from . import show_progress


def run(args) -> int:
    if args.config is None:
        if not (args.resume and args.run_dir):
            raise ValueError("train: --config is required (or --resume with --run-dir to continue a run)")
        args.config = f"{args.run_dir}/config.yaml"
    if args.resume and args.overwrite:
        raise ValueError("train: --resume continues a run, --overwrite replaces it; pass one of them")
    exp = experiment.load(args.config, total_timesteps=args.total_timesteps)
    summary = experiment.train(exp, run_dir=args.run_dir, resume=args.resume, progress=show_progress(args),
                               overwrite=args.overwrite)
    print(experiment.format_summary(exp, summary))
    return 0
