"""Scoring policies: `evaluate` (every policy on an experiment's held-out scenarios, many seeds, rliable's
aggregates) and `benchmark` (a benchmark's held-out split, the protocol's per-scenario statistics)."""
