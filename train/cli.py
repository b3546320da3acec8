"""The `memgym` command line: every command's arguments. A command's work is `run(args)` in its module
`memgym.train.commands.<command>`, imported when that command runs, so that `memgym --help`, `estimate` and
`presets` start without the evaluation, report and training stacks."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from .reproduce import papers

# `reproduce --bins`, `evaluate --reproduce-bins` and the demo's reproduction: None = the paper's own mapping
# granularity (H2M2: heads + 1 bins per sublayer)
BINS = None


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


def add_estimate(sub) -> None:
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


def add_reproduce(sub) -> None:
    r = sub.add_parser("reproduce", help="the papers' tables beside the simulator's numbers")
    r.add_argument("paper", choices=tuple(papers()))
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--bins", type=integer(2), default=BINS,
                   help="H2M2's mapping granularity, bins per sublayer (default: heads + 1, the paper's)")


def add_train(sub) -> None:
    t = sub.add_parser("train", help="train an agent from an experiment config (SB3 or the JAX PPO trainer)")
    t.add_argument("--config", help="configs/experiments/NAME.yaml, a preset name, or any YAML path")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the run already in the run folder (its config.yaml, tb/ and checkpoints/)")
    t.add_argument("--run-dir", default=None, help="run folder (default runs/<name>)")
    t.add_argument("--total-timesteps", type=integer(1), default=None,
                   help="override total_timesteps (with --resume: steps added to the checkpoint's count)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="every policy on the experiment's held-out scenarios, many seeds")
    e.add_argument("--config", required=True, help="experiment config (its eval: block names the scenarios)")
    e.add_argument("--checkpoints", nargs="*", default=[], metavar="RUN", help="training run folders to include")
    e.add_argument("-o", "--out", default="results", help="output folder (default results/)")
    e.add_argument("--seeds", type=integer(1), default=None, help="seeds per scenario (default: the config's, or 10)")
    e.add_argument("--reproduce", action="store_true", help="also compute the paper reproduction tables")
    e.add_argument("--reproduce-bins", type=integer(2), default=BINS,
                   help="H2M2's mapping granularity for --reproduce (default: heads + 1, as `memgym reproduce h2m2`)")
    e.add_argument("--no-progress", action="store_true", help="no progress lines")
    add_ray_arguments(e)


def add_ray_arguments(parser) -> None:
    """--ray, --address, --cpus-per-task (`memgym evaluate`, `benchmark`, `explore`; the [ray] extra)."""
    parser.add_argument("--ray", action="store_true",
                        help="run the work as Ray tasks: Ray embedded on this machine, or the cluster at --address "
                             "(needs the [ray] extra)")
    parser.add_argument("--address", default=None,
                        help="a running Ray cluster to use with --ray ('auto', or the HOST:PORT `ray start --head` "
                             "prints); default: start Ray on this machine")
    parser.add_argument("--cpus-per-task", type=integer(1), default=1,
                        help="Ray CPUs per task with --ray (default 1: XLA's matrix kernels single-threaded; more: "
                             "XLA's own threads)")


def add_benchmark(sub) -> None:
    b = sub.add_parser("benchmark", help="every policy and learned runs on a benchmark's held-out test split")
    b.add_argument("env", help="environment id, e.g. KernelMapping-v0")
    b.add_argument("--checkpoints", nargs="*", default=[], metavar="RUN", help="training run folders to score")
    b.add_argument("--split", choices=("test", "validation"), default="test",
                   help="test (the headline) or validation (for tuning)")
    b.add_argument("--benchmark", default=None,
                   help="benchmark name or YAML path (default: the environment's, configs/benchmarks/)")
    b.add_argument("-o", "--out", default=None, help="output folder (default results/benchmark-NAME-SPLIT)")
    b.add_argument("--seeds", type=integer(1), default=None, help="evaluation episodes per scenario (default: the "
                                                            "benchmark's)")
    b.add_argument("--sample", action="store_true",
                   help="learned policies sample their actions from their distribution (default: greedy, the "
                        "headline)")
    b.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_ray_arguments(b)


def add_demo(sub) -> None:
    from memgym.envs.registry import descriptor, generalists

    envs = generalists()
    d = sub.add_parser("demo", help="train the KernelMapping generalist briefly, score it on the held-out test "
                                    "split against the paper heuristic, write the report")
    d.add_argument("--env", default="KernelMapping-v0", choices=envs,
                   help="whose generalist to train (default KernelMapping-v0)")
    d.add_argument("--out", default="memgym-demo", help="output folder (default memgym-demo/)")
    d.add_argument("--timesteps", type=integer(1), default=None,
                   help="PPO env steps per training seed (default: " + ", ".join(
                       f"{e} {descriptor(e).demo_timesteps / 1e6:g}M" for e in envs) + ")")
    d.add_argument("--seeds", type=integer(1), default=None,
                   help="evaluation episodes per test scenario (default: the benchmark's)")
    d.add_argument("--reproduce", action="store_true",
                   help="also reproduce the environment's paper table (H2M2's: ~100 s more)")
    d.add_argument("--no-progress", action="store_true")


def add_report(sub) -> None:
    r = sub.add_parser("report", help="one self-contained HTML page (and Markdown) from evaluation results")
    r.add_argument("results", help="the folder `memgym evaluate -o` wrote")
    r.add_argument("-o", "--output", default=None, help="report.html path (default RESULTS/report.html)")


def add_presets(sub) -> None:
    p = sub.add_parser("presets", help="the shipped model and hardware presets: key numbers and sources")
    p.add_argument("kind", nargs="?", choices=("models", "hardware"), default=None, help="default: both")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_sweep(sub) -> None:
    s = sub.add_parser("sweep", help="a Ray Tune sweep over an experiment config (hyperparameters, seeds, scenario "
                                     "distributions)")
    s.add_argument("--config", required=True, help="configs/sweeps/NAME.yaml, a shipped sweep's name, or a path")
    s.add_argument("-o", "--out", default=None, help="sweep folder (default runs/sweeps/<sweep file name>)")
    s.add_argument("--resume", action="store_true", help="continue the interrupted sweep in the folder")
    s.add_argument("--address", default=None, help="a running Ray cluster ('auto' or HOST:PORT); default: Ray "
                                                   "on this machine")
    s.add_argument("--no-progress", action="store_true", help="no trial status tables")


def add_explore(sub) -> None:
    e = sub.add_parser("explore", help="every policy over a hardware/scenario grid: explore.csv and heatmaps")
    e.add_argument("--env", required=True, help="environment id, e.g. KernelMapping-v0")
    e.add_argument("--grid", required=True, help="configs/explore/NAME.yaml, a shipped grid's name, or a path")
    e.add_argument("-o", "--out", required=True, help="output folder")
    e.add_argument("--checkpoints", nargs="*", default=[], metavar="RUN", help="training run folders to include")
    e.add_argument("--chunk", type=integer(1), default=None, help="grid points per compiled program / Ray task "
                                                                  "(default: the grid's)")
    add_ray_arguments(e)
    e.add_argument("--no-progress", action="store_true", help="no progress bar")


COMMANDS = (add_estimate, add_reproduce, add_train, add_evaluate, add_benchmark, add_demo, add_report, add_presets,
            add_sweep, add_explore)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memgym", description="The `memgym` command line.")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level; errors with their traceback")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or progress lines")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return importlib.import_module(f"memgym.train.commands.{args.command}").run(args)
    except (ValueError, OSError) as e:  # expected failures: bad configs and arguments (ConfigError and
        # CheckpointError are ValueErrors), missing, damaged or unwritable files, existing paths
        if args.verbose:
            traceback.print_exc()
        hint = "" if args.verbose else " (-v shows the traceback)"
        print(f"memgym {args.command}: error: {' '.join(str(e).split())}{hint}", file=sys.stderr)  # one line
        return 2


if __name__ == "__main__":
    sys.exit(main())
