"""Training (SB3 and JAX PPO), evaluation, reports and the `memgym` command line."""
