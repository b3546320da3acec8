"""Test-session settings: compile XLA programs with backend optimisation off. Tests compile many small
programs and run each briefly, so compile time dominates (an environment step: ~6 s optimised, ~2 s not);
results are the same programs, checked with tolerances where floats are compared.

Compiled programs are also kept in a persistent cache shared by this session's processes (the xdist workers and
the subprocesses tests start, which inherit the variable), so a program compiled once is not compiled again
elsewhere; the folder is removed when the session ends. SB3's default logger folder goes there too (SB3 would
otherwise leave /tmp/SB3-<date> folders behind)."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the first process of the session (xdist's controller)
    _cache = tempfile.mkdtemp(prefix="memgym-test-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(_cache, "jax")
    os.environ["SB3_LOGDIR"] = os.path.join(_cache, "sb3")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
