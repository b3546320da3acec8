"""The `memgym` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback


def integer(lo: int):
    """An argparse type: an integer >= lo (argparse reports anything else as a usage error, exit code 2)."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {v}")
        return v
    parse.__name__ = f"integer >= {lo}"
    return parse


def dumps(obj) -> str:
    """JSON for --json: non-finite floats become null (JSON has no NaN or Infinity)."""
    import json

    from memgym.sim.validate import finite_json

    return json.dumps(finite_json(obj), indent=2, allow_nan=False)


def _estimate(args) -> int:
    from memgym.sim.estimate import estimate, format_table

    result = estimate(args.model, args.hardware, args.batch, args.context, phase=args.phase,
                      ideal=args.ideal, tp=args.tp, dtype=args.dtype, decode_attention=args.decode_attention,
                      launch=args.launch)
    if args.json and result.get("warning"):
        print(result["warning"], file=sys.stderr)  # the table shows it on its first line
    print(dumps(result) if args.json else format_table(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memgym", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level; errors with their traceback")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or progress lines")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("estimate", help="per-kernel cost of one iteration of a model on a hardware preset")
    e.add_argument("--model", default="gpt3-175b", help="model preset or YAML path (default gpt3-175b)")
    e.add_argument("--hardware", default="a100-80gb", help="hardware preset or YAML path (default a100-80gb)")
    e.add_argument("--batch", type=integer(1), default=8)
    e.add_argument("--context", type=integer(1), default=2048,
                   help="decode: context length; prefill: prompt length")
    e.add_argument("--phase", choices=("decode", "prefill"), default="decode")
    e.add_argument("--tp", type=integer(1), default=1, help="tensor-parallel degree (divides the model's heads)")
    e.add_argument("--dtype", default=None, help="override the model's element type (fp16, int8, ...)")
    e.add_argument("--ideal", action="store_true", help="pure roofline: efficiencies 1, no fixed overheads")
    e.add_argument("--decode-attention", choices=("fused", "unfused"), default=None,
                   help="decode attention as one fused kernel (scores on chip) or three kernels that write and "
                        "read the scores (default: the preset's choice, fused unless it says otherwise)")
    e.add_argument("--launch", choices=("eager", "graph"), default="eager",
                   help="launch profile: eager (every kernel launched from PyTorch, the preset's calibration."
                        "overhead_us; the default) or graph (a serving engine's CUDA-graph-captured decode with "
                        "fused residual-add + norm, calibration.overhead_us_graph)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=_estimate)

    from . import commands

    commands.add_commands(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, OSError) as e:  # expected failures: bad configs and arguments (ConfigError and
        # CheckpointError are ValueErrors), missing, damaged or unwritable files, existing paths
        if args.verbose:
            traceback.print_exc()
        hint = "" if args.verbose else " (-v shows the traceback)"
        print(f"memgym {args.command}: error: {' '.join(str(e).split())}{hint}", file=sys.stderr)  # one line
        return 2


if __name__ == "__main__":
    sys.exit(main())
