"""`memgym explore` throughput: grid points per second in this process and as Ray tasks on 1 and 2 workers
(Ray started on this machine with that many CPUs), Ray's start-up, the time of a chunk (its first one in a
worker traces and compiles the program; the later ones only run it), and what a run on many nodes would take.

    .venv/bin/python bench/bench_explore.py                       # the largest shipped grid, ~4-6 min on 2 cores
    .venv/bin/python bench/bench_explore.py --grid kernel-mapping --dense 8   # 8 values per axis: 512 points
    .venv/bin/python bench/bench_explore.py --json

The projection for N nodes (default 64, 2 cores each, one worker per core) from the measured figures:
Ray start-up + a worker's first chunk (every worker traces and compiles once, all at the same time) + the
remaining chunks shared among the workers at the measured run-only chunk time (the median of the chunks that
compiled nothing). It assumes the nodes are like this machine and ignores the cluster's scheduling overhead
per task (Ray's is about a millisecond) and the time to ship each chunk's results (kilobytes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time

import numpy as np

from memgym.sim.config import presets
from memgym.train.scale import explore


def largest_grid() -> str:
    return max(presets("explore"), key=lambda n: len(explore.load(n).points()))


def densify(grid, k: int):
    """Each numeric axis with k evenly spaced values over its range (others unchanged)."""
    for a in grid.axes:
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in a.values) and len(a.values) > 1:
            lo, hi = min(a.values), max(a.values)
            integer = all(isinstance(v, int) for v in a.values)
            vals = np.linspace(lo, hi, k)
            a.values = sorted({int(round(v)) for v in vals}) if integer else [float(v) for v in vals]
    return grid


def measure(grid, workers: int | None) -> dict:
    """One explore run: here (workers None) or as Ray tasks with Ray started on `workers` CPUs."""
    import contextlib

    from memgym.train.scale.cluster import session

    ray = None if workers is None else {"address": None, "cpus": 1}
    with (contextlib.nullcontext((None, 0.0)) if workers is None else session(num_cpus=workers)) as (_, startup):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            explore.explore(grid, out, ray=ray)
            wall = time.perf_counter() - t0
            meta = json.load(open(os.path.join(out, "explore.json")))
    chunk_s = meta["chunk_s"]
    steady = [s for s, c in zip(chunk_s, meta["chunk_compiled"]) if not c]
    first = [s for s, c in zip(chunk_s, meta["chunk_compiled"]) if c]
    run_s = statistics.median(steady) if steady else float("nan")
    points = meta["points"]
    return {"where": "this process" if workers is None else f"Ray, {workers} worker{'s' * (workers > 1)}",
            "workers": workers or 1, "startup_s": startup, "wall_s": wall, "points": points,
            "chunks": meta["chunks"], "chunk": grid.chunk, "first_chunk_s": max(first) if first else float("nan"),
            "chunk_run_s": run_s, "points_per_s": points / wall,
            "points_per_s_running": (workers or 1) * grid.chunk / run_s if steady else float("nan")}


def project(row: dict, points: int, chunk: int, nodes: int, cores: int) -> dict:
    workers = nodes * cores
    chunks = math.ceil(points / chunk)
    rounds = math.ceil(chunks / workers)
    total = row["startup_s"] + row["first_chunk_s"] + ((rounds - 1) * row["chunk_run_s"] if rounds > 1 else 0.0)
    return {"points": points, "chunks": chunks, "nodes": nodes, "workers": workers, "seconds": total,
            "points_per_s": points / total}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=None, help="explore grid name or path (default: the largest shipped one)")
    ap.add_argument("--dense", type=int, default=0, help="k values per numeric axis over its range (0: as shipped)")
    ap.add_argument("--chunk", type=int, default=None, help="points per chunk (default: the grid's)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray workers (CPUs) to measure with")
    ap.add_argument("--no-local", action="store_true", help="skip the run in this process")
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--cores-per-node", type=int, default=2)
    ap.add_argument("--project-points", type=int, nargs="*", default=[1_000_000],
                    help="grid sizes to project besides the measured one")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    name = args.grid or largest_grid()
    grid = explore.load(name)
    if args.dense:
        grid = densify(grid, args.dense)
    if args.chunk:
        grid.chunk = args.chunk
    import jax

    rows = [] if args.no_local else [measure(grid, None)]
    rows += [measure(grid, w) for w in args.workers]
    ray_rows = [r for r in rows if r["workers"] and r["startup_s"] > 0]
    best = max(ray_rows, key=lambda r: r["workers"]) if ray_rows else rows[-1]
    sizes = [len(grid.points()), *args.project_points]
    projections = [project(best, p, grid.chunk, args.nodes, args.cores_per_node) for p in sizes]
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    header = (f"memgym explore benchmark: grid {name}{f' densified to {args.dense} values per axis' if args.dense else ''}"
              f" ({grid.env_id}, {len(grid.points())} points, chunks of {grid.chunk}, {grid.seeds} seeds), jax "
              f"{jax.__version__} on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
              f"average {load} after the run")
    if args.json:
        print(json.dumps({"header": header, "runs": rows, "projections": projections, "from": best["where"]},
                         indent=1))
        return 0
    print(header)
    print(f"{'where':18}{'start-up s':>11}{'wall s':>9}{'points/s':>10}{'1st chunk s':>13}{'chunk s':>9}"
          f"{'points/s running':>18}")
    for r in rows:
        print(f"{r['where']:18}{r['startup_s']:>11.1f}{r['wall_s']:>9.1f}{r['points_per_s']:>10.2f}"
              f"{r['first_chunk_s']:>13.1f}{r['chunk_run_s']:>9.3f}{r['points_per_s_running']:>18.1f}")
    print(f"projection from '{best['where']}' to {args.nodes} nodes × {args.cores_per_node} workers:")
    for p in projections:
        print(f"  {p['points']:>9,} points ({p['chunks']:,} chunks): {p['seconds']:.1f} s, "
              f"{p['points_per_s']:.1f} points/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
