"""Sub-commands beyond `estimate` (each imports its heavy dependencies lazily)."""

import pathlib

from .cli import integer
from .files import output_folder


H2M2_BINS = None  # `reproduce h2m2`, `evaluate --reproduce` and the demo: heads + 1 per model (the paper's)


def add_commands(sub) -> None:
    """Register the sub-commands that exist so far."""
    add_reproduce(sub)
    add_train(sub)
    add_evaluate(sub)
    add_benchmark(sub)
    add_demo_and_report(sub)
    add_presets(sub)


def _presets(args) -> int:
    from . import presets
    from .cli import dumps

    kinds = presets.KINDS if args.kind is None else (args.kind,)
    tables = {k: presets.rows(k) for k in kinds}
    if args.json:
        print(dumps(tables))
    else:
        print("\n\n".join(presets.format_rows(k, r) for k, r in tables.items()))
    return 0


def add_presets(sub) -> None:
    p = sub.add_parser("presets", help="the shipped model and hardware presets: key numbers and sources")
    p.add_argument("kind", nargs="?", choices=("models", "hardware"), default=None, help="default: both")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_presets)


def show_progress(args) -> bool:
    """Progress bars unless --quiet (global) or the command's --no-progress."""
    return not (getattr(args, "quiet", False) or getattr(args, "no_progress", False))


def _reproduce(args) -> int:
    from . import reproduce
    from .cli import dumps
    from .progress import heartbeat

    if args.paper not in ("h2m2", "hybridserve", "tdmem"):
        raise ValueError(f"reproduce: '{args.paper}' is not available yet; available: h2m2, hybridserve, tdmem")
    run, fmt = {"h2m2": (lambda: reproduce.reproduce_h2m2(bins=args.bins), reproduce.format_h2m2),
                "hybridserve": (reproduce.reproduce_hybridserve, reproduce.format_hybridserve),
                "tdmem": (reproduce.reproduce_tdmem, reproduce.format_tdmem)}[args.paper]
    with heartbeat(f"reproduce {args.paper}", enabled=show_progress(args)):
        result = run()
    print(dumps(result) if args.json else fmt(result))
    return 0


def add_reproduce(sub) -> None:
    r = sub.add_parser("reproduce", help="the papers' tables beside the simulator's numbers")
    r.add_argument("paper", choices=("h2m2", "hybridserve", "tdmem"))
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--bins", type=integer(2), default=H2M2_BINS,
                   help="H2M2's mapping granularity, bins per sublayer (default: heads + 1, the paper's)")
    r.set_defaults(func=_reproduce)


def _train(args) -> int:
    from . import experiment

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
    t.set_defaults(func=_train)


def _evaluate(args) -> int:
    from . import evaluate, experiment
    from .progress import heartbeat

    exp = experiment.load(args.config)
    ev = exp.eval or {}
    seeds = ev.get("seeds", 10) if args.seeds is None else args.seeds
    out = output_folder(args.out, "-o")
    repro = None
    if args.reproduce:
        from memgym.envs.registry import canonical_id

        from . import reproduce

        paper = {"KernelMapping-v0": "h2m2", "CacheRatio-v0": "hybridserve",
                 "SecureDisagg-v0": "tdmem"}.get(canonical_id(exp.env))
        with heartbeat(f"reproduce {paper}", enabled=show_progress(args)):
            if paper == "h2m2":
                repro = {"h2m2": reproduce.reproduce_h2m2(bins=args.reproduce_bins)}
            elif paper == "hybridserve":
                repro = {"hybridserve": reproduce.reproduce_hybridserve()}
            elif paper == "tdmem":
                repro = {"tdmem": reproduce.reproduce_tdmem()}
    scenarios = ev.get("scenarios") or {"default": {}}
    with heartbeat(f"evaluate {len(scenarios)} scenarios x {seeds} seeds", enabled=show_progress(args)):
        summary = evaluate.evaluate(exp.env, exp.env_params, scenarios, seeds=seeds,
                                    learned_runs=args.checkpoints, out_dir=out, reproduce=repro,
                                    config_path=args.config)
    print(evaluate.headline(summary))
    print(f"results written to {args.out}/ (results.csv, summary.json); `memgym report {args.out}` makes the page")
    return 0


def add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="every policy on the experiment's held-out scenarios, many seeds")
    e.add_argument("--config", required=True, help="experiment config (its eval: block names the scenarios)")
    e.add_argument("--checkpoints", nargs="*", default=[], metavar="RUN", help="training run folders to include")
    e.add_argument("-o", "--out", default="results", help="output folder (default results/)")
    e.add_argument("--seeds", type=integer(1), default=None, help="seeds per scenario (default: the config's, or 10)")
    e.add_argument("--reproduce", action="store_true", help="also compute the paper reproduction tables")
    e.add_argument("--reproduce-bins", type=integer(2), default=H2M2_BINS,
                   help="H2M2's mapping granularity for --reproduce (default: heads + 1, as `memgym reproduce h2m2`)")
    e.add_argument("--no-progress", action="store_true", help="no progress lines")
    e.set_defaults(func=_evaluate)


def _benchmark(args) -> int:
    from .benchmark import format_benchmark, run_benchmark
    from .cli import dumps
    from .progress import heartbeat

    with heartbeat(f"benchmark {args.env} ({args.split})", enabled=show_progress(args)):
        out = None if args.out is None else output_folder(args.out, "-o")
        summary = run_benchmark(args.env, checkpoints=args.checkpoints, split=args.split, out_dir=out,
                                seeds=args.seeds, benchmark=args.benchmark)
    print(dumps(summary) if args.json else format_benchmark(summary))
    return 0


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
    b.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    b.set_defaults(func=_benchmark)


def _demo(args) -> int:
    from .demo import run_demo

    run_demo(out=output_folder(args.out, "--out"), timesteps=args.timesteps, seeds=args.seeds,
             progress=show_progress(args),
             with_reproduction=args.reproduce)
    return 0


def _report(args) -> int:
    from .report import write_report

    if not pathlib.Path(args.results).is_dir():
        raise FileNotFoundError(f"report: {args.results} is not a folder (expected what `memgym evaluate -o` wrote)")
    html, md = write_report(args.results, args.output)
    print(f"report: {html} (Markdown twin: {md})")
    return 0


def add_demo_and_report(sub) -> None:
    d = sub.add_parser("demo", help="train the KernelMapping generalist briefly, score it on the held-out test "
                                    "split against the paper heuristic, write the report")
    d.add_argument("--out", default="memgym-demo", help="output folder (default memgym-demo/)")
    d.add_argument("--timesteps", type=integer(1), default=1_500_000,
                   help="PPO env steps per training seed (default 1.5M)")
    d.add_argument("--seeds", type=integer(1), default=None,
                   help="evaluation episodes per test scenario (default: the benchmark's)")
    d.add_argument("--reproduce", action="store_true", help="also reproduce H2M2's paper table (~100 s more)")
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=_demo)
    r = sub.add_parser("report", help="one self-contained HTML page (and Markdown) from evaluation results")
    r.add_argument("results", help="the folder `memgym evaluate -o` wrote")
    r.add_argument("-o", "--output", default=None, help="report.html path (default RESULTS/report.html)")
    r.set_defaults(func=_report)
