"""`memgym evaluate`: every policy on held-out scenarios, many seeds, scored against the paper's heuristic.

For each scenario of the experiment's `eval:` block (env_params overrides the learner did not train on) and
each seed, every policy plays one full episode from the same key, so every policy sees the same workload. A
policy's score on (scenario, seed) is its mean reward divided by the heuristic's (the heuristic scores exactly
1) and by the oracle's. Aggregates follow rliable's definitions (computed with scipy): interquartile mean with stratified-bootstrap
95% confidence intervals over seeds × scenarios, probability of improvement over the heuristic, performance profiles, and the
optimality gap to 1.0. Outputs (in `-o DIR`): results.csv (one row per policy × scenario × seed, every
metric), summary.json, decisions.json (one episode's decisions per policy), breakdown.json, and optionally
reproduce.json.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from memgym import policies as policy_registry
from memgym.envs.core import rollout
from memgym.envs.registry import canonical_id, descriptor, make
from memgym.policies.learned import (is_jax_run, latest_checkpoint, load_jax_policy, load_sb3_policy,
                                     read_checkpoint)

from ..files import write_atomic

log = logging.getLogger(__name__)
ORACLE = "oracle"
TAUS = np.linspace(0.5, 1.5, 41)


def part_label(metric: str) -> str:
    """A step-time part's label in breakdown.json: 'time_attention_s' -> 'attention', 'migration_s' ->
    'migration'."""
    return metric.removeprefix("time_").removesuffix("_s")


def _kind(name: str, heuristic: str) -> str:
    if name == heuristic:
        return "heuristic"
    if name in (ORACLE, "random"):
        return name
    return "baseline"


_PROGRAMS: dict = {}  # (env class, id, policies) -> jitted program; `memgym explore` runs one per chunk
MAX_PROGRAMS = 8


def _episodes_policies(env, stacked_params, policies: list, keys):
    """Every policy in `policies` on several scenarios of one structure, in ONE compiled program: the
    policy is picked by `lax.switch` on an index that `lax.map` walks (not vmapped, so only the chosen branch
    runs), and the group compiles once rather than once per policy. Outputs have leading axes [policy,
    scenario, seed]. The jitted program is kept per process, so a later call with the same environment,
    policies and shapes (explore's next chunk, a Ray worker's next task) is neither traced nor compiled again."""
    key = (type(env), env.id, tuple(policies))
    if key not in _PROGRAMS:
        def one(i, p, k):
            def policy(key, obs, state, params):
                return jax.lax.switch(i, [lambda *a, f=f: jnp.asarray(f(*a), jnp.int32) for f in policies],
                                      key, obs, state, params)
            return rollout(env, policy, p, k, p.max_steps)  # max_steps: static, shared by the group

        per_policy = jax.vmap(jax.vmap(one, (None, None, 0)), (None, 0, None))
        if len(_PROGRAMS) >= MAX_PROGRAMS:
            _PROGRAMS.clear()
        _PROGRAMS[key] = jax.jit(lambda index, p, k: jax.lax.map(lambda i: per_policy(i, p, k), index))
    run = _PROGRAMS[key]
    rewards, _, _, metrics, actions = jax.device_get(run(jnp.arange(len(policies)), stacked_params, keys))
    return rewards, metrics, actions


def play_group(env_id: str, built: dict, names: list, learned: dict, keys) -> dict:
    """{scenario: {policy: (rewards, metrics, actions)}} for the named and JAX-learned policies on the
    scenarios of one params structure (`built`: scenario -> (env, params)), in one program."""
    order = list(built)
    env, first = built[order[0]]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *[built[m][1] for m in order])
    playing = [(n, policy_registry.get_policy(env_id, n)) for n in names]
    playing += [(n, pol) for n, (how, pol) in learned.items() if how == "jax" and _compatible(env, first, pol)]
    rewards, metrics, actions = _episodes_policies(env, stacked, [p for _, p in playing], keys)
    return {m: {name: (rewards[j, i], {k: v[j, i] for k, v in metrics.items()}, actions[j, i])
                for j, (name, _) in enumerate(playing)} for i, m in enumerate(order)}


def _compatible(env, params, policy) -> bool:
    """Whether a (learned) policy produces this environment's action shape for these parameters."""
    try:
        obs, state = jax.eval_shape(env.reset, jax.random.PRNGKey(0), params)
        out = jax.eval_shape(policy, jax.random.PRNGKey(0), obs, state, params)
    except (ValueError, TypeError) as e:
        log.warning("a learned policy cannot play this scenario: %s", e)
        return False
    return out.shape == (len(env.action_nvec(params)),)


def _episodes_host(env, params, act, keys):
    """Episodes for a host-side (numpy) policy such as an SB3 model: same keys and key splitting as
    `rollout`, the env stepped with jit(vmap(step))."""
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    split = jax.jit(jax.vmap(jax.random.split))
    firsts = split(keys)  # rollout: key, k0 = split(key)
    keys_rest, k0 = firsts[:, 0], firsts[:, 1]
    obs, state = reset(k0, params)
    step_keys = jax.vmap(lambda k: jax.random.split(k, params.max_steps))(keys_rest)
    rewards, metrics, actions = [], [], []
    for t in range(params.max_steps):
        ks = split(step_keys[:, t])[:, 1]
        features, mask = jax.device_get((obs.features, obs.action_mask))
        a = np.asarray(act(features, mask), np.int32)
        obs, state, r, _, _, info = step(ks, state, jnp.asarray(a), params)
        r, m = jax.device_get((r, info["metrics"]))
        rewards.append(r)
        metrics.append(m)
        actions.append(a)
    metrics = {k: np.stack([m[k] for m in metrics], axis=1) for k in metrics[0]}
    return np.stack(rewards, axis=1), metrics, np.stack(actions, axis=1)


def load_learned(run_dirs, sample: bool = False) -> dict:
    """name -> (kind of call, policy) for each training run folder; a JAX run that trained several seeds gives
    one policy per seed, named `learned:<run>/seed<i>` (`learned:<run>` for a one-seed run). Policies act
    greedily, or sample from their action distribution with `sample`."""
    out = {}
    for run in run_dirs or []:
        run = pathlib.Path(run)
        if not run.is_dir():
            raise ValueError(f"--checkpoints: {run} is not a run folder (expected runs/<name>/ from memgym train)")
        name = f"learned:{run.name}"
        if is_jax_run(run):
            n_seeds = read_checkpoint(latest_checkpoint(run))[1]["n_seeds"]
            for i in range(n_seeds):
                out[name if n_seeds == 1 else f"{name}/seed{i}"] = ("jax", load_jax_policy(run, sample, seed_index=i))
        else:
            out[name] = ("host", load_sb3_policy(run, sample=sample))
    return out


def _iqm(x, axis=None):
    """Interquartile mean over `axis` (None: all values)."""
    return stats.trim_mean(np.ravel(x) if axis is None else x, 0.25, axis=axis)


def _bootstrap(statistic, samples, reps):
    """Percentile 95% CI of `statistic(*samples, axis=-1)` resampling each sample on its own (stratified: one
    sample per scenario, so every replicate keeps every scenario's seed count). The statistic is vectorised:
    scipy hands it every replicate at once along the leading axes."""
    if min(len(s) for s in samples) < 2:
        v = float(statistic(*samples, axis=-1))
        return [v, v]
    ci = stats.bootstrap(samples, statistic, n_resamples=reps, paired=False, vectorized=True,
                         method="percentile", random_state=0).confidence_interval
    return [float(ci.low), float(ci.high)]


def prob_improvement(x, y, axis=None):
    """P(X > Y) averaged over scenarios (Mann-Whitney U / mn per scenario, ties count half), as rliable.
    x, y: f[seeds, scenarios]; or, with `axis`, sequences of per-scenario samples whose seeds lie along `axis`."""
    if axis is None:
        x, y, axis = [x[:, t] for t in range(x.shape[1])], [y[:, t] for t in range(y.shape[1])], -1
    u = [stats.mannwhitneyu(a, b, axis=axis).statistic / (a.shape[axis] * b.shape[axis]) for a, b in zip(x, y)]
    return np.mean(u, axis=0) if np.ndim(u[0]) else float(np.mean(u))


def aggregate_scores(scores: dict, heuristic: str, reps: int = 2000) -> dict:
    """rliable's aggregates of scores {policy: f[seeds, scenarios]} (normalised to the heuristic), computed with
    scipy (rliable's `arch` dependency does not import under pandas 3): IQM and mean with stratified-bootstrap
    95% CIs, the optimality gap to 1.0, probability of improvement over the heuristic with its CI, and
    performance profiles (fraction of runs scoring above tau)."""
    out = {}
    for p, s in scores.items():
        cols = [s[:, t] for t in range(s.shape[1])]
        pooled = lambda stat: lambda *c, axis: stat(np.concatenate(c, axis), axis)  # noqa: E731
        entry = {
            "iqm": float(_iqm(s)), "iqm_ci": _bootstrap(pooled(_iqm), cols, reps),
            "mean": float(s.mean()), "mean_ci": _bootstrap(pooled(lambda x, axis: x.mean(axis)), cols, reps),
            "optimality_gap": float(np.maximum(1.0 - s, 0.0).mean()),
        }
        if p == heuristic:
            entry.update(prob_improvement=0.5, prob_improvement_ci=[0.5, 0.5])
        else:
            h = scores[heuristic]
            n = s.shape[1]
            both = cols + [h[:, t] for t in range(n)]
            entry["prob_improvement"] = prob_improvement(s, h)
            entry["prob_improvement_ci"] = _bootstrap(
                lambda *c, axis: prob_improvement(c[:n], c[n:], axis), both, max(200, reps // 10))
        out[p] = entry
    curves = {p: [float((s > t).mean()) for t in TAUS] for p, s in scores.items()}
    return {"policies": out, "performance_profile": {"taus": TAUS.tolist(), "curves": curves}}


def evaluate(env_id: str, base_params: dict, scenarios: dict, seeds: int = 10, learned_runs=(),
             out_dir="results", reference: str | None = None, reproduce: dict | None = None,
             config_path=None, seed: int = 0, ray: dict | None = None, sample: bool = False) -> dict:
    """Run every policy on every scenario and seed; write the results files; return the summary dict.
    `ray` ({"address": ..., "cpus": ...}): play each scenario group as a Ray task (memgym.train.scale).
    `sample`: learned policies sample their actions (default: greedy)."""
    env_id = canonical_id(env_id)
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if not scenarios:
        scenarios = {"default": {}}
    heuristic = policy_registry.heuristic_name(env_id)
    names = policy_registry.policy_names(env_id)
    learned = load_learned(learned_runs, sample)
    keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
    built = {scen: make(env_id, **{**base_params, **(overrides or {})}) for scen, overrides in scenarios.items()}
    # scenarios whose parameters share one structure (same static fields and shapes) run as one vmapped batch
    groups = {}
    for scen, (env, params) in built.items():
        sig = (jax.tree_util.tree_structure(params), tuple(np.shape(x) for x in jax.tree_util.tree_leaves(params)))
        groups.setdefault(sig, []).append(scen)
    results = {scen: {} for scen in scenarios}
    if ray is not None:  # the groups as Ray tasks, the same program and keys: the same numbers
        from ..scale.remote_eval import play_groups

        results.update(play_groups(ray, env_id, base_params, scenarios, list(groups.values()), names,
                                   learned_runs, seeds, seed, sample))
        groups = {}
    for members in groups.values():
        results.update(play_group(env_id, {m: built[m] for m in members}, names, learned, keys))
    for scen in scenarios:
        env, params = built[scen]
        for name, (how, pol) in learned.items():
            if how == "host":
                results[scen][name] = _episodes_host(env, params, pol, keys)
    rows, episodes = [], {}
    for scen in scenarios:
        env, params = built[scen]
        res = results[scen]
        base = res[heuristic][0].mean(axis=1)
        best = res[ORACLE][0].mean(axis=1) if ORACLE in res else base
        for name, (rewards, metrics, actions) in res.items():
            mean_r = rewards.mean(axis=1)
            for s in range(seeds):
                row = {"policy": name, "kind": "learned" if name in learned else _kind(name, heuristic),
                       "scenario": scen, "seed": s, "episode_return": float(rewards[s].sum()),
                       "mean_reward": float(mean_r[s]), "score_vs_heuristic": float(mean_r[s] / base[s]),
                       "score_vs_oracle": float(mean_r[s] / best[s])}
                row.update({f"metric_{k}": float(np.mean(v[s])) for k, v in metrics.items()})
                rows.append(row)
        episodes[scen] = (env, params, res)
    table = pd.DataFrame(rows)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "results.csv", table.to_csv(index=False))

    scen_names = list(scenarios)
    pols = [p for p in table.policy.unique()]
    complete = [p for p in pols if (table.policy == p).sum() == seeds * len(scen_names)]

    def matrix(p, col):
        t = table[table.policy == p].pivot(index="seed", columns="scenario", values=col)
        return t[scen_names].to_numpy()

    agg = aggregate_scores({p: matrix(p, "score_vs_heuristic") for p in complete}, heuristic)
    vs_oracle = aggregate_scores({p: matrix(p, "score_vs_oracle") for p in complete}, heuristic, reps=500)
    for p, s in agg["policies"].items():
        s["kind"] = table[table.policy == p].kind.iloc[0]
        s["iqm_vs_oracle"] = vs_oracle["policies"][p]["iqm"]
        s["iqm_vs_oracle_ci"] = vs_oracle["policies"][p]["iqm_ci"]
        s["optimality_gap"] = vs_oracle["policies"][p]["optimality_gap"]  # shortfall below the oracle (= 1)
    summary = {
        "env": env_id, "heuristic": heuristic, "oracle": ORACLE, "seeds": seeds,
        "scenarios": {k: dict(v or {}) for k, v in scenarios.items()}, "base_params": dict(base_params),
        "policies": agg["policies"], "performance_profile": agg["performance_profile"],
        "runs": [str(pathlib.Path(r).resolve()) for r in learned_runs or []],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": str(config_path) if config_path else None,
    }
    desc = descriptor(env_id)
    ref = reference or scen_names[0]
    env, params, results = episodes[ref]
    decisions = {"scenario": ref, "seed": 0, "policies": {}}
    breakdown = {"scenario": ref, "policies": {}}
    shown = [heuristic, ORACLE, *learned] + [p for p in names if p not in (heuristic, ORACLE, "random")][:2]
    for name in shown:
        if name not in results:
            continue
        rewards, metrics, actions = results[name]
        action_keys = [k for k in metrics if k in desc.action_metrics]
        decisions["policies"][name] = {
            "step": list(range(rewards.shape[1])),
            "actions": {k: np.asarray(metrics[k][0]).tolist() for k in action_keys},
            "metrics": {k: np.asarray(metrics[k][0]).tolist() for k in metrics if k not in action_keys},
        }
        parts = {part_label(k): float(np.mean(metrics[k])) for k in metrics if k in desc.time_parts}
        if parts:
            breakdown["policies"][name] = {"parts": parts}
    write_atomic(out / "decisions.json", json.dumps(decisions))
    write_atomic(out / "breakdown.json", json.dumps(breakdown, indent=1))
    if reproduce is not None:
        write_atomic(out / "reproduce.json", json.dumps(reproduce, indent=1))
    write_atomic(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def headline(summary: dict) -> str:
    """The headline table as text: policy, IQM score vs the heuristic with its 95% CI, P(improvement)."""
    pols = sorted(summary["policies"].items(), key=lambda kv: -kv[1]["iqm"])
    lines = [f"{summary['env']}: scores normalised to the paper heuristic '{summary['heuristic']}' (= 1.0); "
             f"{summary['seeds']} seeds x {len(summary['scenarios'])} scenarios",
             f"{'policy':28}{'kind':>10}{'IQM':>8}{'95% CI':>18}{'vs oracle':>11}{'P(>heur)':>10}"]
    for p, s in pols:
        ci = f"[{s['iqm_ci'][0]:.3f}, {s['iqm_ci'][1]:.3f}]"
        lines.append(f"{p:28}{s['kind']:>10}{s['iqm']:>8.3f}{ci:>18}{s['iqm_vs_oracle']:>11.3f}"
                     f"{s['prob_improvement']:>10.2f}")
    return "\n".join(lines)
