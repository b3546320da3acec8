"""PPO in JAX, PureJaxRL style: environment steps, policy and update fused in one jitted program, seeds vmapped.

    trainer = make_trainer(hyperparameters, env, params, num_envs)
    state = jax.vmap(trainer.init)(jax.random.split(key, n_seeds))
    state, stats = jax.jit(jax.vmap(trainer.run, in_axes=(0, None, None)))(state, n_updates, horizon)

`make_train(config, env, params) -> train(key)` is the one-call form (all updates in one program).
`train_experiment(exp, run_dir, ...)` is the host loop behind `memgym train` for `algorithm: ppo_jax`: it runs
the program in chunks of updates (compiled once: the chunk length is a traced loop bound) and, between chunks,
writes TensorBoard scalars under SB3's tag names plus `env/<metric>` and `baseline/<heuristic>/ep_rew_mean`,
moves a progress bar and saves checkpoints (format in `memgym.policies.learned`); `resume=True` continues
from the latest checkpoint with the step count, optimiser state, PRNG key and environments intact.

Logged per chunk and per seed (`<run>/tb/ppo_jax/seed_<i>`, x axis: env steps of that seed):
`rollout/ep_rew_mean`, `rollout/ep_len_mean` over the episodes that ended in the chunk (SB3 uses its last 100);
`time/fps`, the chunk's env steps per second for one seed (× n_seeds for the machine's throughput); `train/*`
means over the chunk's updates; `env/<metric>` means of info["metrics"] over the chunk's steps.

Differences from PureJaxRL worth knowing:
- GAE bootstraps truncation: at a truncated step the target is r + γ V(final_observation), at a terminated
  step r; PureJaxRL masks on done and so treats time limits as terminal (`compute_gae`).
- MultiDiscrete actions with one categorical head per dimension and action masks on the logits.
- Value loss is SB3's (unclipped MSE, weighted by vf_coef); advantages normalised per minibatch.
- The learning rate decays linearly to 0 at `horizon` updates, a traced argument, so a resumed run with a
  longer target continues the decay without recompiling.
- Optional kickstarting (`teacher: <policy name>`): a registered policy labels the steps of the first
  `teacher_share` of the environments, and −teacher_coef · log π(teacher's action) joins the loss with a
  coefficient decaying linearly to 0 at `teacher_frac` of the run (logged as `train/teacher_loss`,
  `train/teacher_coef`). The generalists use the oracle as teacher: PPO alone settles next to the heuristic's
  hint, a local optimum that the oracle's joint moves (several sublayers at once) lead out of.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memgym.envs.core import rollout
from memgym.envs.distribution import Randomized, lift, make_env
from memgym.policies import get_policy, heuristic_name
from memgym.policies.learned import (
    ObsNorm, arrays_to_tree, checkpoint_paths, entropy, forward, init_network, load_newest, log_prob,
    read_checkpoint, sample_action, tree_to_arrays, value_of)

from .files import atomic_open

log = logging.getLogger(__name__)

# name -> (default, kind); kinds: "int" (> 0), "float" (>= 0), "fraction" ([0, 1]), "bool", "sizes" (list of
# positive ints), or a tuple of allowed strings. Tuned for KernelMapping-v0 on a 2-core CPU (see the
# experiment config kernel-mapping-ppo-jax.yaml for the values actually used).
HYPERPARAMETERS = {
    "num_steps": (32, "int"),  # env steps per environment per update
    "update_epochs": (2, "int"),
    "num_minibatches": (2, "int"),
    "learning_rate": (3e-4, "float"),
    "anneal_lr": (True, "bool"),  # linear decay to 0 at the run's last update
    "gamma": (0.99, "fraction"),
    "gae_lambda": (0.95, "fraction"),
    "clip_eps": (0.2, "float"),
    "ent_coef": (0.03, "float"),  # 0.01 collapses early to a worse mapping on KernelMapping-v0
    "vf_coef": (0.5, "float"),
    "max_grad_norm": (0.5, "float"),
    "hidden": ([64, 64], "sizes"),
    "activation": ("tanh", ("tanh", "relu")),
    "normalize_obs": (False, "bool"),  # running mean/var of the features (they are already O(1))
    "reward_scale": (0.1, "float"),  # rewards × this in the update only (logged returns stay unscaled)
    # Kickstarting (Schmitt et al. 2018, arXiv 1803.03835): a teacher policy of the environment (a registered
    # policy name, e.g. "oracle") adds −teacher_coef · log π(teacher's action) to the loss, the coefficient
    # decaying linearly to 0 over the first teacher_frac of the run; the rest of the run is plain PPO.
    "teacher": (None, "policy"),
    "teacher_coef": (1.0, "float"),
    "teacher_frac": (0.5, "fraction"),
    "teacher_share": (0.25, "fraction"),  # the share of environments the teacher labels (it may be costly)
}


def default_hyperparameters() -> dict:
    return {k: (list(v) if isinstance(v, list) else v) for k, (v, _) in HYPERPARAMETERS.items()}


class RunnerState(NamedTuple):
    """Everything a seed's training needs to continue (checkpointed whole)."""
    net: dict
    opt_state: Any
    obs_norm: ObsNorm
    env_state: Any
    obs: Any  # Observation, batched over environments
    key: jax.Array
    update: jax.Array  # i32, updates done
    ep_return: jax.Array  # f[num_envs], running return of the current episodes
    ep_length: jax.Array  # i32[num_envs]


class Transition(NamedTuple):
    features: jax.Array
    mask: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_value: jax.Array  # V(info["final_observation"]), the bootstrap target of a truncated step
    teacher: jax.Array  # the teacher's action (zeros without a teacher or outside the taught environments)
    taught: jax.Array  # f32: 1 where the teacher labelled the step


class Trainer(NamedTuple):
    init: Callable  # key -> RunnerState
    run: Callable  # (RunnerState, n_updates, horizon) -> (RunnerState, stats dict of sums)
    batch_size: int  # env steps per update (per seed)


def compute_gae(rewards, values, last_value, final_values, terminated, truncated, gamma, gae_lambda):
    """Advantages and value targets for a trajectory [T, ...] with same-step autoreset.

    The value after step t is V(obs[t+1]) while the episode goes on, V(final_observation[t]) when it was
    truncated (the episode did not end, the time limit cut it), and 0 when it terminated. The advantage
    recursion stops at either kind of end, because obs[t+1] belongs to the next episode."""
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    boot = jnp.where(terminated, 0.0, jnp.where(truncated, final_values, next_values))
    deltas = rewards + gamma * boot - values
    cont = 1.0 - (terminated | truncated).astype(jnp.float32)

    def back(adv_next, x):
        delta, c = x
        adv = delta + gamma * gae_lambda * c * adv_next
        return adv, adv

    _, advantages = jax.lax.scan(back, jnp.zeros_like(last_value), (deltas, cont), reverse=True)
    return advantages, advantages + values


def _explained_variance(values, targets):
    var = jnp.var(targets)
    return jnp.where(var > 0, 1.0 - jnp.var(targets - values) / var, jnp.nan)


STAT_NAMES = ("loss", "value_loss", "policy_gradient_loss", "entropy_loss", "approx_kl", "clip_fraction",
              "explained_variance", "learning_rate")
TEACHER_STATS = ("teacher_loss", "teacher_coef")


def make_trainer(hp: dict, env, params, num_envs: int) -> Trainer:
    """The PPO program for `num_envs` environments of one scenario (see module docstring)."""
    hp = {**default_hyperparameters(), **hp}
    nvec = tuple(env.action_nvec(params))
    obs_size = env.observation_size(params)
    num_steps, n_mb, epochs = hp["num_steps"], hp["num_minibatches"], hp["update_epochs"]
    batch = num_envs * num_steps
    if batch % n_mb:
        raise ValueError(f"num_envs × num_steps = {batch} is not divisible by num_minibatches = {n_mb}")
    mb_size = batch // n_mb
    act = hp["activation"]
    gamma, lam, clip_eps = hp["gamma"], hp["gae_lambda"], hp["clip_eps"]
    metric_names = tuple(env.metric_names)
    tx = optax.chain(optax.clip_by_global_norm(hp["max_grad_norm"]), optax.scale_by_adam(eps=1e-5))
    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    teacher, n_taught = None, max(1, round(hp["teacher_share"] * num_envs))
    if hp["teacher"] is not None:
        teacher = get_policy(env.id, hp["teacher"])
        teacher = jax.vmap(lift(teacher) if isinstance(env, Randomized) else teacher, in_axes=(0, 0, 0, None))

    def init(key):
        k_net, k_env, k_run = jax.random.split(key, 3)
        net = init_network(k_net, obs_size, nvec, tuple(hp["hidden"]))
        obs, env_state = v_reset(jax.random.split(k_env, num_envs), params)
        return RunnerState(net=net, opt_state=tx.init(net), obs_norm=ObsNorm.identity(obs_size),
                           env_state=env_state, obs=obs, key=k_run, update=jnp.int32(0),
                           ep_return=jnp.zeros(num_envs, jnp.float32), ep_length=jnp.zeros(num_envs, jnp.int32))

    def env_step(carry, _):
        rs, stats = carry
        key, k_act, k_env = jax.random.split(rs.key, 3)
        logits, value = forward(rs.net, rs.obs_norm, rs.obs.features, act)
        action = sample_action(k_act, logits, rs.obs.action_mask, nvec)
        logp = log_prob(logits, rs.obs.action_mask, action, nvec)
        taught = jnp.zeros_like(action)
        if teacher is not None:  # the first n_taught environments
            head = jax.tree_util.tree_map(lambda x: x[:n_taught], (rs.obs, rs.env_state))
            k_teach = jax.random.split(jax.random.fold_in(k_act, 1), n_taught)  # not the agent's sampling key
            taught = taught.at[:n_taught].set(teacher(k_teach, *head, params))
        obs, env_state, reward, term, trunc, info = v_step(jax.random.split(k_env, num_envs), rs.env_state,
                                                           action, params)
        final_value = value_of(rs.net, rs.obs_norm, info["final_observation"].features, act)
        done = term | trunc
        ep_return = rs.ep_return + reward
        ep_length = rs.ep_length + 1
        stats = dict(stats)
        stats["episodes"] += done.sum()
        stats["ep_return_sum"] += jnp.where(done, ep_return, 0.0).sum()
        stats["ep_length_sum"] += jnp.where(done, ep_length, 0).sum()
        stats["steps"] += num_envs
        for m in metric_names:
            stats["env/" + m] += info["metrics"][m].sum()
        tr = Transition(rs.obs.features, rs.obs.action_mask, action, logp, value,
                        reward * hp["reward_scale"], term, trunc, final_value, taught,
                        (jnp.arange(num_envs) < n_taught).astype(jnp.float32))
        rs = rs._replace(env_state=env_state, obs=obs, key=key, ep_return=jnp.where(done, 0.0, ep_return),
                         ep_length=jnp.where(done, 0, ep_length))
        return (rs, stats), tr

    def loss_fn(net, obs_norm, mb: Transition, advantages, targets, teacher_coef):
        logits, value = forward(net, obs_norm, mb.features, act)
        logp = log_prob(logits, mb.mask, mb.action, nvec)
        log_ratio = logp - mb.log_prob
        ratio = jnp.exp(log_ratio)
        adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        pg_loss = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv).mean()
        value_loss = ((targets - value) ** 2).mean()
        ent = entropy(logits, mb.mask, nvec).mean()
        loss = pg_loss + hp["vf_coef"] * value_loss - hp["ent_coef"] * ent
        aux = {}
        if teacher is not None:
            nll = -log_prob(logits, mb.mask, mb.teacher, nvec)
            teacher_loss = (nll * mb.taught).sum() / jnp.maximum(mb.taught.sum(), 1.0)
            loss = loss + teacher_coef * teacher_loss
            aux = {"teacher_loss": teacher_loss, "teacher_coef": teacher_coef}
        aux.update({"value_loss": value_loss, "policy_gradient_loss": pg_loss, "entropy_loss": -ent,
               "approx_kl": ((ratio - 1) - log_ratio).mean(),
               "clip_fraction": (jnp.abs(ratio - 1) > clip_eps).mean()})
        return loss, aux

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def update(rs: RunnerState, stats, horizon):
        (rs, stats), traj = jax.lax.scan(env_step, (rs, stats), None, num_steps)
        last_value = value_of(rs.net, rs.obs_norm, rs.obs.features, act)
        advantages, targets = compute_gae(traj.reward, traj.value, last_value, traj.final_value,
                                          traj.terminated, traj.truncated, gamma, lam)
        frac = jnp.clip(1.0 - rs.update.astype(jnp.float32) / horizon, 0.0, 1.0)
        lr = hp["learning_rate"] * (frac if hp["anneal_lr"] else 1.0)
        progress = rs.update.astype(jnp.float32) / jnp.maximum(hp["teacher_frac"] * horizon, 1e-9)
        teacher_coef = hp["teacher_coef"] * jnp.clip(1.0 - progress, 0.0, 1.0)
        flat = jax.tree_util.tree_map(lambda x: x.reshape((batch,) + x.shape[2:]), (traj, advantages, targets))

        def minibatch(carry, idx):
            net, opt_state = carry
            mb, adv, tgt = jax.tree_util.tree_map(lambda x: x[idx], flat)
            (loss, aux), grads = grad_fn(net, rs.obs_norm, mb, adv, tgt, teacher_coef)
            updates, opt_state = tx.update(grads, opt_state, net)
            net = optax.apply_updates(net, jax.tree_util.tree_map(lambda u: -lr * u, updates))
            return (net, opt_state), dict(aux, loss=loss)

        def epoch(carry, key):
            order = jax.random.permutation(key, batch).reshape(n_mb, mb_size)
            return jax.lax.scan(minibatch, carry, order)

        key, k_perm = jax.random.split(rs.key)
        (net, opt_state), losses = jax.lax.scan(epoch, (rs.net, rs.opt_state), jax.random.split(k_perm, epochs))
        obs_norm = rs.obs_norm.update(flat[0].features) if hp["normalize_obs"] else rs.obs_norm
        rs = rs._replace(net=net, opt_state=opt_state, obs_norm=obs_norm, key=key, update=rs.update + 1)
        stats = dict(stats)
        for k, v in losses.items():
            stats[k] += v.mean()
        stats["explained_variance"] += _explained_variance(traj.value.reshape(-1), targets.reshape(-1))
        stats["learning_rate"] += lr
        stats["updates"] += 1
        return rs, stats

    def zero_stats():
        names = (*STAT_NAMES, *(TEACHER_STATS if teacher is not None else ()), "updates", "episodes",
                 "ep_return_sum", "ep_length_sum", "steps",
                 *("env/" + m for m in metric_names))
        return {n: jnp.float32(0.0) for n in names}

    def run(rs: RunnerState, n_updates, horizon):
        """`n_updates` PPO updates (a traced bound: one compilation serves every chunk length); returns the
        state and sums over the chunk (divide by `updates`, `episodes` or `steps`; see `chunk_means`)."""
        horizon = jnp.asarray(horizon, jnp.float32)
        return jax.lax.fori_loop(0, n_updates, lambda _, c: update(*c, horizon), (rs, zero_stats()))

    return Trainer(init=init, run=run, batch_size=batch)


def make_train(config: dict, env, params) -> Callable:
    """PureJaxRL's form: `train(key) -> (RunnerState, stats)` running `config["total_timesteps"]` steps with
    `config["num_envs"]` environments and `config["hyperparameters"]`; jit it, vmap it over keys."""
    trainer = make_trainer(config.get("hyperparameters", {}), env, params, config["num_envs"])
    n_updates = max(1, math.ceil(config["total_timesteps"] / trainer.batch_size))

    def train(key):
        return trainer.run(trainer.init(key), n_updates, n_updates)

    return train


def chunk_means(stats: dict) -> dict:
    """Host side: chunk sums (numpy, one seed) -> the logged scalars under SB3's tags."""
    updates = max(float(stats["updates"]), 1.0)
    steps = max(float(stats["steps"]), 1.0)
    episodes = float(stats["episodes"])
    out = {f"train/{k}": float(stats[k]) / updates for k in (*STAT_NAMES, *TEACHER_STATS) if k in stats}
    out["rollout/ep_rew_mean"] = float(stats["ep_return_sum"]) / episodes if episodes else math.nan
    out["rollout/ep_len_mean"] = float(stats["ep_length_sum"]) / episodes if episodes else math.nan
    out.update({k: float(v) / steps for k, v in stats.items() if k.startswith("env/")})
    return out


_REFERENCES: dict = {}


def heuristic_reference(env_id: str, env_params: dict, seed: int = 0, dist=None) -> float:
    """The heuristic's mean episode return on a scenario or over a distribution (`episode_returns`), cached
    per process."""
    cache_key = (env_id, json.dumps(env_params, sort_keys=True), json.dumps(dist, sort_keys=True), seed)
    if cache_key not in _REFERENCES:
        env, params = make_env(env_id, env_params, dist)
        name = heuristic_name(env_id)
        policy = get_policy(env_id, name)
        if dist is not None:
            policy = lift(policy)
        t0 = time.perf_counter()
        _REFERENCES[cache_key] = episode_returns(env, policy, params, jax.random.PRNGKey(seed),
                                                 n_envs=16 if dist is None else 64)
        log.info("%s: mean episode return %.4f (%.1f s)", name, _REFERENCES[cache_key], time.perf_counter() - t0)
    return _REFERENCES[cache_key]


def episode_returns(env, policy, params, key, n_envs: int = 16, n_episodes_per_env: int = 1):
    """Mean return of the episodes `policy` completes in `n_envs` vmapped scan rollouts of
    n_episodes_per_env × max_steps steps (the reference a learned policy is measured against)."""
    n_steps = int(getattr(params, "max_steps")) * n_episodes_per_env

    def one(k):
        rewards, term, trunc, _, _ = rollout(env, policy, params, k, n_steps)

        def acc(running, x):
            r, done = x
            running = running + r
            return jnp.where(done, 0.0, running), jnp.where(done, running, 0.0)

        _, finished = jax.lax.scan(acc, jnp.float32(0.0), (rewards, term | trunc))
        return finished.sum(), (term | trunc).sum()

    total, count = jax.jit(jax.vmap(one))(jax.random.split(key, n_envs))
    return float(total.sum() / jnp.maximum(count.sum(), 1))


# -- checkpoints -------------------------------------------------------------------------------------------
def checkpoint_name(global_step: int) -> str:
    return f"ppo_jax_{global_step:012d}.npz"


def save_checkpoint(run_dir, state: RunnerState, global_step: int, n_seeds: int) -> pathlib.Path:
    """Write the whole (seed-batched) runner state atomically (`files.atomic_open`)."""
    folder = pathlib.Path(run_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint_name(global_step)
    arrays = tree_to_arrays(jax.device_get(state))
    meta = {"global_step": int(global_step), "updates": int(np.asarray(state.update).reshape(-1)[0]),
            "n_seeds": int(n_seeds), "format": "memgym.ppo_jax/1"}
    with atomic_open(path) as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    return path


def load_checkpoint(path, template: RunnerState) -> tuple[RunnerState, dict]:
    arrays, meta = read_checkpoint(path)
    return arrays_to_tree(arrays, template), meta


# -- the host loop behind `memgym train` -------------------------------------------------------------------
_PROGRAMS: dict = {}


def _program(exp):
    """(trainer, jitted init over seeds, compiled run over seeds) for an experiment, cached per process so
    that a resumed run or a sweep in one process compiles once. The chunk length and the LR horizon are
    traced arguments: one executable serves every call."""
    cache_key = (exp.env, json.dumps(exp.env_params, sort_keys=True), json.dumps(exp.distribution, sort_keys=True),
                 json.dumps(exp.hyperparameters, sort_keys=True), exp.num_envs, exp.n_seeds)
    if cache_key not in _PROGRAMS:
        env, params = make_env(exp.env, exp.env_params, exp.distribution)
        trainer = make_trainer(exp.hyperparameters, env, params, exp.num_envs)
        init = jax.jit(jax.vmap(trainer.init))
        template = jax.eval_shape(init, jax.random.split(jax.random.PRNGKey(0), exp.n_seeds))
        run = jax.jit(jax.vmap(trainer.run, in_axes=(0, None, None)), donate_argnums=0).lower(
            template, 1, 1).compile()
        _PROGRAMS[cache_key] = (trainer, init, run)
    return _PROGRAMS[cache_key]


def train_experiment(exp, run_dir, resume: bool = False, progress: bool = True) -> dict:
    """Train `exp` (a validated `memgym.train.experiment.Experiment`) into `run_dir`; returns a summary
    (global_step, last logged scalars per seed, heuristic reference, wall time, compile time)."""
    from .tblog import ScalarWriter, drop_after

    t_start = time.perf_counter()
    run_dir = pathlib.Path(run_dir)
    ckpts = checkpoint_paths(run_dir)
    if resume and not ckpts:  # before compiling anything
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")
    keys = jax.random.split(jax.random.PRNGKey(exp.seed), exp.n_seeds)
    heuristic = heuristic_name(exp.env)
    with ThreadPoolExecutor(1) as pool:  # XLA compiles outside the GIL: the reference overlaps the compile
        reference = pool.submit(heuristic_reference, exp.env, exp.env_params, exp.seed, exp.distribution)
        t0 = time.perf_counter()
        trainer, init, run = _program(exp)
        compile_s = time.perf_counter() - t0
        log.info("compiled the training program in %.1f s", compile_s)
        start_step = 0
        if resume:
            template = jax.eval_shape(init, keys)
            path, (state, meta) = load_newest(ckpts, lambda p: load_checkpoint(p, template))
            start_step = meta["global_step"]
            drop_after(run_dir / "tb", start_step)  # the steps after it are logged again
            log.info("resumed from %s at step %d", path, start_step)
        else:
            state = init(keys)
        baseline = reference.result()

    batch = trainer.batch_size
    start_updates = start_step // batch
    target_updates = start_updates + max(1, math.ceil(exp.total_timesteps / batch))
    chunk = max(1, exp.log_every // batch)
    baseline_tag = f"baseline/{heuristic}/ep_rew_mean"
    writers = [ScalarWriter(run_dir / "tb" / "ppo_jax" / f"seed_{i}") for i in range(exp.n_seeds)]
    from .progress import bar as progress_bar, fmt

    bar = progress_bar(target_updates * batch, exp.name, enabled=progress, initial=start_updates * batch)
    ckpt_every = exp.checkpoint_every
    next_ckpt = (start_step // ckpt_every + 1) * ckpt_every
    updates = start_updates
    last = [{} for _ in range(exp.n_seeds)]
    try:
        while updates < target_updates:
            n = min(chunk, target_updates - updates)
            t0 = time.perf_counter()
            state, stats = run(state, n, target_updates)
            stats = jax.device_get(stats)
            dt = time.perf_counter() - t0
            updates += n
            step = updates * batch
            for i, w in enumerate(writers):
                scalars = chunk_means({k: v[i] for k, v in stats.items()})
                scalars["time/fps"] = n * batch / dt
                scalars[baseline_tag] = baseline
                w.add_scalars(scalars, step)
                w.flush()
                last[i] = scalars
            log.info("step %d  ep_rew_mean %.3f  (%s %.3f)  %.0f steps/s", step,
                     last[0].get("rollout/ep_rew_mean", math.nan), heuristic, baseline, n * batch / dt)
            bar.update(n * batch)
            bar.set_postfix(ep_rew=fmt(last[0].get("rollout/ep_rew_mean")), ref=fmt(baseline))
            if step >= next_ckpt or updates >= target_updates:
                save_checkpoint(run_dir, state, step, exp.n_seeds)
                next_ckpt = (step // ckpt_every + 1) * ckpt_every
    finally:
        for w in writers:
            w.close()
        bar.close()
    return {"global_step": updates * batch, "start_step": start_step, "scalars": last,
            "baseline": {heuristic: baseline}, "wall_s": time.perf_counter() - t_start, "compile_s": compile_s}
