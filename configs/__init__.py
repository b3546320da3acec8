"""YAML presets shipped with memgym: models/, hardware/, workloads/, experiments/ (data, read by memgym.sim)."""
