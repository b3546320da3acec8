"""Test-session settings: compile XLA programs with backend optimisation off. Tests compile many small
programs and run each briefly, so compile time dominates (an environment step: ~6 s optimised, ~2 s not);
results are the same programs, checked with tolerances where floats are compared."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
