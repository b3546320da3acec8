"""`memgym explore --env ID --grid GRID -o DIR`: every policy over a hardware/scenario grid
(memgym.train.scale.explore), chunks as Ray tasks with --ray."""

from __future__ import annotations

from ..scale import explore
from ..scale.explore_report import load
from . import ray_options, show_progress


def run(args) -> int:
    grid = explore.load(args.grid, env_id=args.env)
    if args.chunk is not None:
        grid.chunk = args.chunk
    result = explore.explore(grid, args.out, learned_runs=args.checkpoints, ray=ray_options(args),
                             progress=show_progress(args))
    print(explore.format_explore(result, load(args.out)[1]))
    print(f"results written to {args.out}/ (explore.csv, explore.json, explore-*.png); `memgym report {args.out}` "
          f"makes the page")
    return 0
