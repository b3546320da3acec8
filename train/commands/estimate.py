"""`memgym estimate`: per-kernel cost of one iteration of a model on a hardware preset."""

from __future__ import annotations

import sys

from memgym.sim.estimate import estimate, format_table

from . import dumps


def run(args) -> int:
    result = estimate(args.model, args.hardware, args.batch, args.context, phase=args.phase,
                      ideal=args.ideal, tp=args.tp, dtype=args.dtype, decode_attention=args.decode_attention,
                      launch=args.launch)
    if args.json and result.get("warning"):
        print(result["warning"], file=sys.stderr)  # the table shows it on its first line
    print(dumps(result) if args.json else format_table(result))
    return 0
