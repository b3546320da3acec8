"""`memgym benchmark ENV`: every policy and learned runs on a benchmark's held-out split."""

from __future__ import annotations

from ..evaluation.benchmark import format_benchmark, run_benchmark
from ..files import output_folder
from ..progress import heartbeat
from . import dumps, ray_options, show_progress


def run(args) -> int:
    with heartbeat(f"benchmark {args.env} ({args.split})", enabled=show_progress(args)):
        out = None if args.out is None else output_folder(args.out, "-o")
        summary = run_benchmark(args.env, checkpoints=args.checkpoints, split=args.split, out_dir=out,
                                seeds=args.seeds, benchmark=args.benchmark, ray=ray_options(args),
                                sample=args.sample)
    print(dumps(summary) if args.json else format_benchmark(summary))
    return 0
