"""`memgym sweep --config SWEEP`: a Ray Tune sweep over an experiment config (memgym.train.scale.sweep)."""

from __future__ import annotations

import pathlib

from ..scale import sweep
from . import show_progress


def run(args) -> int:
    config = sweep.load(args.config)
    out = args.out or str(pathlib.Path("runs") / "sweeps" / pathlib.Path(args.config).stem)
    table = sweep.run_sweep(config, out, resume=args.resume, address=args.address, progress=show_progress(args))
    print(sweep.format_summary(table, out))
    return 0
