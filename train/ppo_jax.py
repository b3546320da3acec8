"""PPO in JAX, PureJaxRL style: environment steps, policy and update fused in one jitted program, seeds vmapped.

    trainer = make_trainer(hyperparameters, env, params, num_envs)
    state = jax.vmap(trainer.init)(jax.random.split(key, n_seeds))
    state, stats = jax.jit(jax.vmap(trainer.run, in_axes=(0, None, None)))(state, n_updates, horizon)

`make_train(config, env, params) -> train(key)` is the one-call form (all updates in one program);
`chunk_means` turns a chunk's sums into the scalars logged under SB3's tag names. The host loop behind
`memgym train` (chunks, TensorBoard, checkpoints, resume) is `memgym.train.jax_train`.

Differences from PureJaxRL worth knowing:
- GAE bootstraps truncation: at a truncated step the target is r + γ V(final_observation), at a terminated
  step r; PureJaxRL masks on done and so treats time limits as terminal (`compute_gae`).
- MultiDiscrete actions with one categorical distribution per dimension and action masks on the logits; with
  `head: ordinal` each is a discretised Gaussian over the ordered bins (`memgym.policies.learned`).
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

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from memgym.envs.distribution import Randomized, lift
from memgym.policies import get_policy
from memgym.policies.learned import (HEADS, ObsNorm, entropy, forward, init_network, log_prob, sample_action,
                                     value_of)

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
    "head": ("categorical", HEADS),  # "ordinal": a discretised Gaussian over ordered bins (a share 0..1)
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
    act, head = hp["activation"], hp["head"]
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
        net = init_network(k_net, obs_size, nvec, tuple(hp["hidden"]), head)
        obs, env_state = v_reset(jax.random.split(k_env, num_envs), params)
        return RunnerState(net=net, opt_state=tx.init(net), obs_norm=ObsNorm.identity(obs_size),
                           env_state=env_state, obs=obs, key=k_run, update=jnp.int32(0),
                           ep_return=jnp.zeros(num_envs, jnp.float32), ep_length=jnp.zeros(num_envs, jnp.int32))

    def env_step(carry, _):
        rs, stats = carry
        key, k_act, k_env = jax.random.split(rs.key, 3)
        logits, value = forward(rs.net, rs.obs_norm, rs.obs.features, act, nvec, head)
        action = sample_action(k_act, logits, rs.obs.action_mask, nvec)
        logp = log_prob(logits, rs.obs.action_mask, action, nvec)
        taught = jnp.zeros_like(action)
        if teacher is not None:  # the first n_taught environments
            first = jax.tree_util.tree_map(lambda x: x[:n_taught], (rs.obs, rs.env_state))
            k_teach = jax.random.split(jax.random.fold_in(k_act, 1), n_taught)  # not the agent's sampling key
            taught = taught.at[:n_taught].set(teacher(k_teach, *first, params))
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
        logits, value = forward(net, obs_norm, mb.features, act, nvec, head)
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
