"""`memgym demo`: train the generalist briefly, score it on the held-out test split, write the report."""

from __future__ import annotations

from ..demo import run_demo
from ..files import output_folder
from . import show_progress


def run(args) -> int:
    run_demo(out=output_folder(args.out, "--out"), timesteps=args.timesteps, seeds=args.seeds,
             progress=show_progress(args), with_reproduction=args.reproduce, env_id=args.env)
    return 0
