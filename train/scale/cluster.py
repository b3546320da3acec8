"""Ray start-up and the settings Ray's workers run JAX with.

Ray's workers are separate processes, started with the environment variables of the job's or the task's
`runtime_env` (JAX reads them when it starts its backend, so they cannot be changed later):

- JAX_PLATFORMS=cpu unless the driver sets JAX_PLATFORMS itself: trials and tasks ask Ray for CPUs only.
- XLA_FLAGS: the driver's, plus `--xla_cpu_multi_thread_eigen=false` for a worker given one CPU, so that N
  one-CPU workers on N cores run N threads of matrix work rather than N × N (XLA's CPU backend has this
  switch, no thread count). A worker given several CPUs keeps XLA's own threads.
- every other JAX_* variable of the driver (JAX_COMPILATION_CACHE_DIR: workers on the driver's machine share
  its persistent compile cache, as the test session's processes do).

`session(address)` starts Ray embedded on this machine (address None) or joins a running cluster
('auto' or 'HOST:PORT', what `ray start --head` prints), and shuts down only a Ray it started itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings

log = logging.getLogger(__name__)
EIGEN_FLAG = "--xla_cpu_multi_thread_eigen"


def require_ray():
    """The ray module, or an error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError("this needs Ray: pip install 'memgym[ray]' (or -e '.[ray]' in a checkout)") from None
    return ray


def worker_env(cpus: int = 1) -> dict:
    """Environment variables for a worker given `cpus` CPUs (see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("JAX_")}
    env.setdefault("JAX_PLATFORMS", "cpu")
    flags = os.environ.get("XLA_FLAGS", "").split()
    if cpus <= 1 and not any(f.startswith(EIGEN_FLAG) for f in flags):
        flags.append(f"{EIGEN_FLAG}=false")
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    return env


def runtime_env(cpus: int = 1) -> dict:
    return {"env_vars": worker_env(cpus)}


def task_options(cpus: int = 1) -> dict:
    """`.options(...)` of a Ray task that runs JAX on `cpus` CPUs."""
    return {"num_cpus": cpus, "runtime_env": runtime_env(cpus)}


@contextlib.contextmanager
def session(address: str | None = None, cpus_per_worker: int = 1, num_cpus: int | None = None):
    """Yield (ray, seconds start-up took): Ray started on this machine (`num_cpus`: Ray's default, every
    core) or joined at `address`, the job's workers set up for `cpus_per_worker` CPUs each. A Ray already
    started in this process is used as it is (its workers' settings are its own)."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray, 0.0
        return
    t0 = time.perf_counter()
    kwargs = {"address": address, "runtime_env": runtime_env(cpus_per_worker), "logging_level": logging.WARNING,
              "include_dashboard": False}
    if address is None:
        kwargs["num_cpus"] = num_cpus
    try:
        with warnings.catch_warnings():  # Ray starts its processes with fork+exec, which JAX warns about
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            ray.init(**kwargs)
    except ConnectionError as e:
        raise ValueError(f"--address {address}: no Ray cluster answers there ({' '.join(str(e).split())}); "
                         f"start one with `ray start --head` and pass the address it prints") from None
    startup = time.perf_counter() - t0
    log.info("Ray %s in %.1f s: %s CPUs", "joined" if address else "started", startup,
             ray.cluster_resources().get("CPU"))
    try:
        yield ray, startup
    finally:
        ray.shutdown()
