"""Scale-out on Ray (the `[ray]` extra): `memgym sweep` (Ray Tune over experiment configs), `memgym explore`
(hardware and scenario grids, chunks as Ray tasks) and `--ray` for `memgym evaluate` and `memgym benchmark`
(scenario groups as Ray tasks); the commands themselves are in `memgym.train.commands`. Ray runs embedded on
one machine unless `--address` names a cluster (`ray start --head`); nothing here schedules, retries or stores
results on its own.

    cluster.py       Ray start-up and the workers' JAX settings (CPU, intra-op threads, compile cache)
    sweep.py         sweep configs (configs/sweeps/), the Tune run, its summary table and best config
    explore.py       grid configs (configs/explore/), chunked vmapped evaluation, explore.csv
    explore_report.py  the heatmaps and the report section
    remote_eval.py   `evaluate --ray`: one Ray task per scenario group
"""
