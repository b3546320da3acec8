"""memgym's memory: the peak RSS of a scan rollout at --num-envs environments, each environment in a fresh
process, against gymnax's CartPole-v1 in the same form; and the RSS of a `memgym train` run (ppo_jax,
KernelMapping-v0) sampled after every logged chunk, which should not grow once the program is compiled.

Rollout rows: a child process imports JAX and the environment, builds its params (RSS "before"; the peak
is reset there, `/proc/self/clear_refs`), then compiles and runs the `jit(vmap)` `lax.scan` rollout of random
masked actions that `bench_reference.py` times (peak RSS, VmHWM); the rollout's own cost is the difference.
Training: RSS (/proc/self/statm) after each chunk of `--train-steps` env steps logged `--chunks` times, with
the checkpoints written as a real run writes them; growth is the last sample over the second (the first
chunk includes compiling).

    .venv/bin/python bench/bench_memory.py            # ~1 minute on 2 CPU cores
    .venv/bin/python bench/bench_memory.py --json     # one JSON object instead of the table
    .venv/bin/python bench/bench_memory.py --train-steps 4000000 --chunks 40
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import warnings

from bench_reference import ENV_IDS  # this folder: the environments bench_reference measures

MB = 2.0**20


def peak_rss_mb() -> float:
    """The process's peak RSS (VmHWM), since `reset_peak` where the kernel allows it."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # Linux reports KiB


def reset_peak() -> bool:
    """Start the peak RSS afresh (Linux: 5 > /proc/self/clear_refs); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def child(name: str, n: int, steps: int) -> dict:
    """In this (fresh) process: RSS before and after one compiled rollout of `name` at n environments."""
    import jax

    import bench_reference as ref  # the same rollouts bench_reference times

    if name == "gymnax":
        import gymnax

        gymnax.make("CartPole-v1")
        fresh = reset_peak()
        before = current_rss_mb()
        ref.gymnax_rate(n, steps, 1)
    else:
        import memgym
        from memgym.envs.core import masked_random

        env, _ = memgym.make(name)  # SecureDisagg-v0's derive compiles here: not the rollout's
        fresh = reset_peak()
        before = current_rss_mb()
        ref.memgym_scan_rate(name, masked_random(env), n, steps, 1)
    jax.effects_barrier()
    return {"before_mb": before, "peak_mb": peak_rss_mb(), "peak_since_before": fresh}


def rollout_rss(name: str, n: int, steps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, "--num-envs", str(n), "--steps", str(steps)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench_memory child {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def training_rss(total_steps: int, chunks: int, num_envs: int) -> dict:
    """RSS after each logged chunk of one ppo_jax run (checkpoints on) in this process."""
    from memgym.train import experiment

    samples = []
    config = {"name": "bench-memory", "env": "KernelMapping-v0", "algorithm": "ppo_jax",
              "total_timesteps": total_steps, "num_envs": num_envs, "n_seeds": 1,
              "log_every": max(total_steps // chunks, 1), "checkpoint_every": max(total_steps // 4, 1)}
    with tempfile.TemporaryDirectory(prefix="memgym-bench-memory-") as tmp:
        exp = experiment.validate(config)
        experiment.train(exp, run_dir=os.path.join(tmp, "run"), progress=False,
                         on_log=lambda step, scalars, baseline: samples.append((step, current_rss_mb())))
    steps, rss = zip(*samples)
    base = rss[1] if len(rss) > 1 else rss[0]
    return {"steps": list(steps), "rss_mb": list(rss), "growth_mb": rss[-1] - base,
            "growth_frac": (rss[-1] - base) / base}


def measure(args) -> dict:
    out = {"num_envs": args.num_envs, "steps": args.steps, "rollouts": {}}
    for name in ("gymnax",) + ENV_IDS:
        out["rollouts"][name] = rollout_rss(name, args.num_envs, args.steps)
    if args.train_steps > 0:
        out["training"] = training_rss(args.train_steps, args.chunks, args.train_envs)
    return out


def table(m: dict) -> str:
    n = m["num_envs"]
    ref = m["rollouts"]["gymnax"]
    ref_cost = ref["peak_mb"] - ref["before_mb"]
    header = (f"{'rollout at ' + str(n) + ' envs':<28} {'before MB':>10} {'peak MB':>9} {'/ gymnax':>9} "
              f"{'rollout MB':>11} {'/ gymnax':>9}")
    lines = [f"peak RSS of a {m['steps']}-step jit(vmap) scan rollout, each in a fresh process (rollout MB: peak "
             f"minus before; memory the process already held is reused, so it understates where that was large)",
             header, "-" * len(header)]
    for name, r in m["rollouts"].items():
        cost = r["peak_mb"] - r["before_mb"]
        label = "gymnax CartPole-v1" if name == "gymnax" else name
        lines.append(f"{label:<28} {r['before_mb']:>10.0f} {r['peak_mb']:>9.0f} {r['peak_mb'] / ref['peak_mb']:>9.2f} "
                     f"{cost:>11.0f} {cost / ref_cost if ref_cost > 0 else float('nan'):>9.2f}")
    if "training" in m:
        t = m["training"]
        lines.append("")
        lines.append(f"memgym train (ppo_jax, KernelMapping-v0): RSS after each of {len(t['steps'])} logged chunks, "
                     f"MB: " + " ".join(f"{x:.0f}" for x in t["rss_mb"]))
        span = t["steps"][-1] - t["steps"][1] if len(t["steps"]) > 1 else 0
        lines.append(f"growth from the second chunk to the last: {t['growth_mb']:+.1f} MB "
                     f"({100 * t['growth_frac']:+.1f} %) over {span} env steps (goal: none)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--num-envs", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=64, help="steps of each rollout")
    ap.add_argument("--train-steps", type=int, default=1_000_000, help="env steps of the training run (0: skip it)")
    ap.add_argument("--chunks", type=int, default=20, help="logged chunks of the training run (RSS samples)")
    ap.add_argument("--train-envs", type=int, default=128)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.num_envs < 1 or args.steps < 1 or args.train_steps < 0 or args.chunks < 2 or args.train_envs < 2:
        ap.error("--num-envs and --steps must be >= 1, --train-steps >= 0, --chunks and --train-envs >= 2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.child:
            print(json.dumps(child(args.child, args.num_envs, args.steps)))
            return 0
        m = measure(args)
    print(json.dumps(m, indent=1) if args.json else table(m))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
