"""Learned policies: the JAX actor-critic network and loaders that turn a training run folder into a policy.

- `load_jax_policy(run_dir)` -> `policy(key, obs, state, params) -> action`, jittable and vmappable, from the
  latest checkpoint of a `ppo_jax` run: deterministic (the most probable feasible bin for the categorical head,
  the feasible bin nearest the mean for the ordinal one: `deterministic_action`), or sampled with `sample=True`.
- `load_sb3_policy(run_dir)` -> `act(features np[n, D], action_mask np[n, M]) -> actions np[n, A]` around an
  SB3 model's `predict` (deterministic; masks passed to MaskablePPO; DQN's flat index unravelled).
- `is_jax_run(run_dir)`.

The network (used by `memgym.train.ppo_jax` too): separate actor and critic MLPs over the (optionally
normalised) features, parameters as a flat dict `{"actor/0/w": ..., "actor/0/b": ..., "critic/2/w": ...}`
(layer i of each; the last layer is the output), orthogonal init (gain √2 hidden, 0.01 actor output, 1 critic
output). The actor gives one categorical distribution per action dimension (MultiDiscrete), its logits
concatenated like the observation's action mask; masked bins get logit `MASKED_LOGIT`, so they are never sampled
and never chosen by argmax. Two heads (`head` hyperparameter):
- `categorical`: the actor outputs every bin's logit (sum(nvec) outputs).
- `ordinal`: for bins that are ordered values (a share from 0 to 1), the actor outputs a centre μ and a width σ
  per dimension (2 outputs each) and bin i of n gets logit −½((i/(n−1) − μ)/σ)², a discretised Gaussian. The
  distribution is unimodal and its deterministic action is the feasible bin nearest its mean, where the policy's
  mass is; a categorical head over ordered bins can put its mode at an edge bin while most of its mass lies
  elsewhere, and so can a Gaussian whose centre lies past the last bin (a CacheRatio-v1 generalist's does).

Checkpoint format (`checkpoints/ppo_jax_<step>.npz`): one array per leaf of the trainer's state, named by its
path (`net/actor/0/w`, `obs_norm/mean`, `opt_state/...`), with a leading seed axis, plus `meta` (a JSON string:
global_step, updates, n_seeds).
"""

from __future__ import annotations

import json
import logging
import pathlib
import pickle
import zipfile
import zlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from memgym.envs.core import split_mask
from memgym.envs.distribution import make_env
from memgym.envs.registry import env_class, make
from memgym.sim.config import ConfigError

log = logging.getLogger(__name__)

MASKED_LOGIT = -1e9  # finite, so p · log p of a masked bin is 0 · (−1e9) = 0, not NaN
ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}
HEADS = ("categorical", "ordinal")
ORDINAL_MIN_WIDTH = 0.02  # σ's floor, in units of the 0..1 bin range (a bin apart is 1/(n−1))
ORDINAL_INIT_WIDTH = 0.5  # σ at initialisation (the actor's outputs start near 0): broad over the bins


class ObsNorm(NamedTuple):
    """Running mean and variance of the features (identity while `count` is 0 or normalisation is off)."""
    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def identity(cls, size):
        return cls(jnp.zeros(size, jnp.float32), jnp.ones(size, jnp.float32), jnp.float32(0.0))

    def apply(self, x):
        return jnp.clip((x - self.mean) / jnp.sqrt(self.var + 1e-8), -10.0, 10.0)

    def update(self, batch):
        """Fold a batch f[N, D] in (parallel-variance formula)."""
        b_mean, b_var, b_n = batch.mean(0), batch.var(0), jnp.float32(batch.shape[0])
        n = self.count + b_n
        delta = b_mean - self.mean
        mean = self.mean + delta * b_n / n
        m2 = self.var * self.count + b_var * b_n + delta ** 2 * self.count * b_n / n
        return ObsNorm(mean, m2 / n, n)


# -- the network -------------------------------------------------------------------------------------------
def actor_outputs(nvec, head="categorical") -> int:
    if head not in HEADS:
        raise ValueError(f"head {head!r} is not one of {HEADS}")
    return int(sum(nvec)) if head == "categorical" else 2 * len(nvec)


def init_network(key, obs_size: int, nvec, hidden=(64, 64), head="categorical") -> dict:
    ortho = jax.nn.initializers.orthogonal
    net = {}
    for part, out, gain in (("actor", actor_outputs(nvec, head), 0.01), ("critic", 1, 1.0)):
        sizes = [obs_size, *hidden, out]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            key, k = jax.random.split(key)
            last = i == len(sizes) - 2
            net[f"{part}/{i}/w"] = ortho(gain if last else np.sqrt(2.0))(k, (n_in, n_out), jnp.float32)
            net[f"{part}/{i}/b"] = jnp.zeros(n_out, jnp.float32)
    return net


def mlp(net: dict, head: str, x, activation="tanh"):
    n_layers = sum(1 for k in net if k.startswith(head + "/") and k.endswith("/w"))
    act = ACTIVATIONS[activation]
    for i in range(n_layers):
        x = x @ net[f"{head}/{i}/w"] + net[f"{head}/{i}/b"]
        if i < n_layers - 1:
            x = act(x)
    return x


def ordinal_logits(out, nvec):
    """The ordinal head's logits f[..., sum(nvec)] from its outputs f[..., 2·len(nvec)] (centre, width)."""
    logits = []
    for i, n in enumerate(nvec):
        mu = 0.5 + out[..., 2 * i]
        width = ORDINAL_MIN_WIDTH + jax.nn.softplus(
            out[..., 2 * i + 1] + np.log(np.expm1(ORDINAL_INIT_WIDTH - ORDINAL_MIN_WIDTH)))
        x = jnp.linspace(0.0, 1.0, n) if n > 1 else jnp.zeros(1)
        logits.append(-0.5 * ((x - mu[..., None]) / width[..., None]) ** 2)
    return jnp.concatenate(logits, axis=-1)


def forward(net, obs_norm: ObsNorm, features, activation="tanh", nvec=None, head="categorical"):
    """-> (logits f[..., sum(nvec)], value f[...]); `nvec` is needed by the ordinal head."""
    x = obs_norm.apply(features)
    out = mlp(net, "actor", x, activation)
    return (out if head == "categorical" else ordinal_logits(out, nvec)), mlp(net, "critic", x, activation)[..., 0]


def value_of(net, obs_norm: ObsNorm, features, activation="tanh"):
    return mlp(net, "critic", obs_norm.apply(features), activation)[..., 0]


def _heads(logits, mask, nvec):
    """Per-dimension masked log-probabilities."""
    return [jax.nn.log_softmax(jnp.where(m, lg, MASKED_LOGIT), axis=-1)
            for lg, m in zip(split_mask(logits, nvec), split_mask(mask, nvec))]


def sample_action(key, logits, mask, nvec):
    keys = jax.random.split(key, len(nvec))
    return jnp.stack([jax.random.categorical(k, lp, axis=-1) for k, lp in zip(keys, _heads(logits, mask, nvec))],
                     axis=-1).astype(jnp.int32)


def greedy_action(logits, mask, nvec):
    return jnp.stack([jnp.argmax(lp, axis=-1) for lp in _heads(logits, mask, nvec)], axis=-1).astype(jnp.int32)


def mean_action(logits, mask, nvec):
    """Per dimension, the feasible bin nearest the distribution's mean bin: the ordinal head's deterministic
    action. For a Gaussian the mean is the mode; truncated by the bins' range and the mask they part (a centre
    past the last bin puts the mode at the edge while the mass, and the mean, lie inside)."""
    out = []
    for lp, m in zip(_heads(logits, mask, nvec), split_mask(mask, nvec)):
        i = jnp.arange(lp.shape[-1], dtype=jnp.float32)
        mean = (jnp.exp(lp) * i).sum(-1, keepdims=True)
        out.append(jnp.argmin(jnp.where(m, jnp.abs(i - mean), jnp.inf), axis=-1))
    return jnp.stack(out, axis=-1).astype(jnp.int32)


def deterministic_action(logits, mask, nvec, head="categorical"):
    """The learned policy's deterministic action: the most probable bin (categorical head), the bin nearest
    the mean (ordinal head)."""
    return greedy_action(logits, mask, nvec) if head == "categorical" else mean_action(logits, mask, nvec)


def log_prob(logits, mask, action, nvec):
    return sum(jnp.take_along_axis(lp, action[..., i:i + 1], axis=-1)[..., 0]
               for i, lp in enumerate(_heads(logits, mask, nvec)))


def entropy(logits, mask, nvec):
    return sum(-(jnp.exp(lp) * lp).sum(-1) for lp in _heads(logits, mask, nvec))


# -- checkpoints -------------------------------------------------------------------------------------------
def _key_name(entry) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def tree_to_arrays(tree) -> dict[str, np.ndarray]:
    """Leaves of a pytree as numpy arrays named by their path ('net/actor/0/w')."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"/".join(_key_name(e) for e in path): np.asarray(leaf) for path, leaf in leaves}


def arrays_to_tree(arrays, template):
    """Inverse of `tree_to_arrays` given a template pytree of the same structure (arrays or shape structs)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for path, leaf in leaves:
        name = "/".join(_key_name(e) for e in path)
        if name not in arrays:
            raise ValueError(f"checkpoint has no array {name!r}; it was written by a different trainer config")
        a = arrays[name]
        if tuple(a.shape) != tuple(leaf.shape):
            raise ValueError(f"checkpoint array {name!r} has shape {a.shape}, expected {tuple(leaf.shape)}")
        out.append(jnp.asarray(a, dtype=leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


def checkpoint_paths(run_dir, suffix=".npz") -> list[pathlib.Path]:
    """Checkpoints of a run, oldest first (names end in the zero-padded global step)."""
    folder = pathlib.Path(run_dir) / "checkpoints"
    return sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []


def latest_checkpoint(run_dir, suffix=".npz") -> pathlib.Path:
    paths = checkpoint_paths(run_dir, suffix)
    if not paths:
        raise FileNotFoundError(f"no checkpoint (*{suffix}) in {pathlib.Path(run_dir) / 'checkpoints'}")
    return paths[-1]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (truncated, empty, not a checkpoint); the message names the file."""


# what reading a damaged file raises, in numpy's zip reader, SB3's loader, torch and pickle
READ_ERRORS = (OSError, ValueError, KeyError, EOFError, RuntimeError, zipfile.BadZipFile, zlib.error,
               pickle.UnpicklingError)


def read_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "meta"}
            meta = json.loads(str(z["meta"]))
        meta["global_step"], meta["n_seeds"]  # noqa: B018 (present in every complete checkpoint)
    except READ_ERRORS as e:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); it is truncated, "
                              f"empty or not a memgym checkpoint") from None
    return arrays, meta


def load_sb3_model(cls, path, **kwargs):
    """`cls.load(path, **kwargs)`, a damaged file raising CheckpointError naming it."""
    try:
        return cls.load(str(path), **kwargs)
    except READ_ERRORS as e:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); it is truncated, "
                              f"empty or not an SB3 model") from None


def load_newest(paths, load):
    """(path, load(path)) for the newest of `paths` (oldest first) that loads. One that raises CheckpointError
    is renamed to `<name>.corrupt` (kept, out of the way) with a warning naming it and the fallback."""
    for path in reversed(paths):
        try:
            return path, load(path)
        except CheckpointError as e:
            bad = path.with_name(path.name + ".corrupt")
            path.rename(bad)
            log.warning("%s; renamed it to %s, falling back to the previous checkpoint", e, bad.name)
    folder = pathlib.Path(paths[0]).parent if paths else "checkpoints/"
    raise CheckpointError(f"--resume: no checkpoint in {folder} can be read (damaged ones were renamed *.corrupt)")


def run_config(run_dir) -> dict:
    path = pathlib.Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run folder (no config.yaml)")
    try:
        cfg = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(path, "<file>", f"not valid YAML: {e}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("env"), str):
        raise ConfigError(path, "<file>", "not a run's config.yaml (a mapping with env, algorithm, ...)")
    return cfg


def is_jax_run(run_dir) -> bool:
    return run_config(run_dir).get("algorithm") == "ppo_jax"


# -- loaders -----------------------------------------------------------------------------------------------
def load_jax_policy(run_dir, sample: bool = False, seed_index: int = 0, checkpoint=None):
    """The policy of a `ppo_jax` run's latest checkpoint (or `checkpoint`), for seed `seed_index`."""
    cfg = run_config(run_dir)
    if cfg.get("algorithm") != "ppo_jax":
        raise ValueError(f"{run_dir} is a {cfg.get('algorithm')} run; use load_sb3_policy")
    arrays, meta = read_checkpoint(checkpoint or latest_checkpoint(run_dir))
    if not 0 <= seed_index < meta["n_seeds"]:
        raise ValueError(f"seed_index {seed_index} out of range: the run trained {meta['n_seeds']} seeds")
    net = {k[len("net/"):]: jnp.asarray(v[seed_index]) for k, v in arrays.items() if k.startswith("net/")}
    norm = ObsNorm(*(jnp.asarray(arrays[f"obs_norm/{f}"][seed_index]) for f in ObsNorm._fields))
    activation = cfg["hyperparameters"]["activation"]
    head = cfg["hyperparameters"].get("head", "categorical")  # runs from before the ordinal head have none
    trained_env, trained_params = make_env(cfg["env"], cfg.get("env_params"), cfg.get("distribution"))
    nvec = tuple(trained_env.action_nvec(trained_params))  # of the scenario or distribution trained on
    env = env_class(cfg["env"])()

    n_in = net["actor/0/w"].shape[0]

    def policy(key, obs, state, params):
        if tuple(env.action_nvec(params)) != nvec:
            raise ValueError(f"policy trained for action bins {nvec}, scenario has {env.action_nvec(params)}")
        if obs.features.shape[-1] != n_in:
            raise ValueError(f"{run_dir} was trained on {n_in} observation features; {cfg['env']} observes "
                             f"{obs.features.shape[-1]} (its observation changed since): train it again")
        logits, _ = forward(net, norm, obs.features, activation, nvec, head)
        if sample:
            return sample_action(key, logits, obs.action_mask, nvec)
        return deterministic_action(logits, obs.action_mask, nvec, head)

    policy.__name__ = f"learned:{pathlib.Path(run_dir).name}"
    return policy


def flat_to_multi(index, nvec) -> np.ndarray:
    """Discrete(prod(nvec)) index -> MultiDiscrete action (C order: the last dimension varies fastest)."""
    return np.stack(np.unravel_index(np.asarray(index, np.int64), tuple(nvec)), axis=-1).astype(np.int64)


def multi_to_flat(action, nvec) -> np.ndarray:
    a = np.asarray(action, np.int64)
    return np.ravel_multi_index(tuple(a[..., i] for i in range(a.shape[-1])), tuple(nvec))


def load_sb3_policy(run_dir, checkpoint=None, sample: bool = False):
    """`act(features np[n, D], action_mask np[n, M]) -> actions np[n, A]` from an SB3 run's latest .zip
    (deterministic, or sampled from the policy's distribution with `sample=True`)."""
    cfg = run_config(run_dir)
    algorithm = cfg.get("algorithm")
    if algorithm == "ppo_jax":
        raise ValueError(f"{run_dir} is a ppo_jax run; use load_jax_policy")
    if algorithm == "MaskablePPO":
        from sb3_contrib import MaskablePPO as cls
    else:
        import stable_baselines3

        cls = getattr(stable_baselines3, algorithm)
    model = load_sb3_model(cls, checkpoint or latest_checkpoint(run_dir, ".zip"), device="cpu")
    env, env_params = make(cfg["env"], **cfg.get("env_params", {}))
    nvec = tuple(env.action_nvec(env_params))

    def act(features, action_mask):
        features = np.asarray(features, np.float32)
        if algorithm == "MaskablePPO":
            actions, _ = model.predict(features, action_masks=np.asarray(action_mask, bool),
                                       deterministic=not sample)
        else:
            actions, _ = model.predict(features, deterministic=not sample)
        if algorithm == "DQN":  # trained on the flattened Discrete(prod(nvec)) space
            actions = flat_to_multi(actions, nvec)
        return np.asarray(actions, np.int64).reshape(features.shape[0], len(nvec))

    act.__name__ = f"learned:{pathlib.Path(run_dir).name}"
    return act
