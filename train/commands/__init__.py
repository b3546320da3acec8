"""The `memgym` commands' work, one module per command (`run(args)` with the arguments `memgym.train.cli`
parsed); each imports what its command needs and nothing else."""

from __future__ import annotations

import json

from memgym.sim.validate import finite_json


def show_progress(args) -> bool:
    """Progress bars unless --quiet (global) or the command's --no-progress."""
    return not (getattr(args, "quiet", False) or getattr(args, "no_progress", False))


def dumps(obj) -> str:
    """JSON for --json: non-finite floats become null (JSON has no NaN or Infinity)."""
    return json.dumps(finite_json(obj), indent=2, allow_nan=False)


def ray_options(args) -> dict | None:
    """{"address": ..., "cpus": ...} when --ray was given, else None (run here); --address alone is an error."""
    if not args.ray and (args.address is not None or args.cpus_per_task != 1):
        given = f"--address {args.address}" if args.address is not None else "--cpus-per-task"
        raise ValueError(f"{args.command}: {given} needs --ray")
    return {"address": args.address, "cpus": args.cpus_per_task} if args.ray else None
