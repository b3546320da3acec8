"""Training: experiment configs, the JAX PPO trainer (GAE with truncation, masks, TensorBoard, checkpoints,
resume), SB3 training through the VecEnv adapter, and the learned-policy loaders. Tiny scenarios only."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from memgym.policies.learned import (
    checkpoint_paths, entropy, flat_to_multi, greedy_action, latest_checkpoint, load_jax_policy, log_prob, multi_to_flat,
    mean_action, ordinal_logits, read_checkpoint, sample_action)
from memgym.sim.config import ConfigError
from memgym.train import experiment
from memgym.train.ppo_jax import compute_gae
from memgym.train.tblog import read_scalars

TINY_ENV = {"model": "llama2-70b", "batch": 8, "bins": 4, "max_steps": 8}
SB3_TAGS = ("rollout/ep_rew_mean", "rollout/ep_len_mean", "time/fps", "train/loss", "train/value_loss",
            "train/policy_gradient_loss", "train/entropy_loss", "train/approx_kl", "train/clip_fraction",
            "train/explained_variance", "train/learning_rate")


def tiny(algorithm="ppo_jax", **over):
    d = {"name": f"tiny-{algorithm.lower()}", "env": "memgym/KernelMapping-v0", "env_params": dict(TINY_ENV),
         "algorithm": algorithm, "total_timesteps": 2048, "seed": 0, "checkpoint_every": 1024, "log_every": 256}
    if algorithm == "ppo_jax":
        d.update(num_envs=16, n_seeds=2, hyperparameters={"num_steps": 8})
    else:
        d.update(num_envs=4, hyperparameters={"n_steps": 64, "batch_size": 64, "n_epochs": 2})
    d.update(over)
    return d


def write(tmp_path, d, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(d))
    return path


# -- GAE and masks -------------------------------------------------------------------------------------------
def test_gae_bootstraps_truncation_from_final_observation_and_not_termination():
    gamma, lam = 0.9, 0.8
    rewards = jnp.ones(4)
    values = jnp.full(4, 0.5)
    terminated = jnp.array([False, True, False, False])
    truncated = jnp.array([False, False, False, True])
    final_values = jnp.array([100.0, 100.0, 100.0, 3.0])  # only the truncated step's may matter
    last_value = jnp.float32(2.0)  # V(obs after the last step): belongs to the next episode here
    adv, targets = compute_gae(rewards, values, last_value, final_values, terminated, truncated, gamma, lam)
    a3 = 1 + gamma * 3.0 - 0.5  # truncated: bootstrap from V(final_observation) = 3, not from last_value
    a2 = (1 + gamma * 0.5 - 0.5) + gamma * lam * a3
    a1 = 1 + 0.0 - 0.5  # terminated: no bootstrap at all, although final_values[1] = 100
    a0 = (1 + gamma * 0.5 - 0.5) + gamma * lam * a1
    np.testing.assert_allclose(adv, [a0, a1, a2, a3], rtol=1e-6)
    np.testing.assert_allclose(targets, np.array([a0, a1, a2, a3]) + 0.5, rtol=1e-6)
    # PureJaxRL's done-masking would give 1 - 0.5 at the truncated step
    assert abs(float(adv[3]) - 0.5) > 1.0


def test_gae_without_episode_end_bootstraps_from_last_value():
    adv, _ = compute_gae(jnp.zeros(2), jnp.zeros(2), jnp.float32(1.0), jnp.full(2, 50.0),
                         jnp.zeros(2, bool), jnp.zeros(2, bool), 1.0, 1.0)
    np.testing.assert_allclose(adv, [1.0, 1.0])


def test_masked_bins_are_never_sampled_nor_chosen():
    nvec = (4, 4, 4)
    key = jax.random.PRNGKey(0)
    mask = jax.random.bernoulli(key, 0.5, (512, 12))
    mask = mask.at[:, jnp.array([1, 6, 11])].set(True)  # every dimension keeps at least one bin
    logits = jnp.where(mask, 0.0, 50.0)  # the network strongly prefers the masked bins
    actions = jax.vmap(lambda k, lg, m: sample_action(k, lg, m, nvec))(jax.random.split(key, 512), logits, mask)
    chosen = mask.reshape(512, 3, 4)[jnp.arange(512)[:, None], jnp.arange(3)[None, :], actions]
    assert bool(chosen.all())
    greedy = greedy_action(logits, mask, nvec)
    assert bool(mask.reshape(512, 3, 4)[jnp.arange(512)[:, None], jnp.arange(3)[None, :], greedy].all())
    assert bool(jnp.isfinite(log_prob(logits, mask, actions, nvec)).all())
    assert bool(jnp.isfinite(entropy(logits, mask, nvec)).all())


def test_ordinal_head_is_unimodal_and_its_greedy_bin_is_the_feasible_one_nearest_its_centre():
    nvec = (11, 4)
    out = jax.random.normal(jax.random.PRNGKey(3), (256, 4)) * 2.0  # centres from about -3.5 to 4.5
    logits = ordinal_logits(out, nvec)
    for lg, n, mu in ((logits[:, :11], 11, 0.5 + out[:, 0]), (logits[:, 11:], 4, 0.5 + out[:, 2])):
        p = np.asarray(jax.nn.softmax(lg))
        step = np.diff(np.asarray(lg), axis=1)
        # unimodal: once the log-probabilities fall they never rise again
        assert not (np.cumsum(step < 0, axis=1).astype(bool)[:, :-1] & (step[:, 1:] > 0)).any()
        nearest = np.clip(np.rint(np.asarray(mu) * (n - 1)), 0, n - 1)
        np.testing.assert_array_equal(p.argmax(1), nearest)
    mask = jnp.ones((256, 15), bool).at[:, 0:6].set(False)  # the first dimension's bins 0..5 infeasible
    greedy = greedy_action(logits, mask, nvec)
    nearest = np.clip(np.rint(np.asarray(0.5 + out[:, 0]) * 10), 6, 10)
    np.testing.assert_array_equal(np.asarray(greedy[:, 0]), nearest)
    assert bool(jnp.isfinite(entropy(logits, mask, nvec)).all())


def test_ordinal_deterministic_action_is_the_feasible_bin_nearest_the_mean():
    """A centre past the last bin with a wide σ: the mode is the edge bin, the mean lies inside; the ordinal
    head's deterministic action follows the mean, within the mask."""
    nvec = (11,)
    out = jnp.array([[0.8, 0.0], [0.8, -20.0], [-0.2, 0.0]])  # centres 1.3, 1.3, 0.3; widths 0.5, 0.02, 0.5
    logits = ordinal_logits(out, nvec)
    mask = jnp.ones((3, 11), bool)
    p = np.asarray(jax.nn.softmax(logits))
    means = (p * np.arange(11)).sum(1)
    assert 5 < means[0] < 8 and means[1] > 9.99  # the truncated wide one's mean is well inside
    np.testing.assert_array_equal(greedy_action(logits, mask, nvec)[:, 0], [10, 10, 3])
    np.testing.assert_array_equal(mean_action(logits, mask, nvec)[:, 0], np.rint(means))
    masked = mask.at[:, 5:9].set(False)
    chosen = np.asarray(mean_action(logits, masked, nvec)[:, 0])
    assert np.asarray(masked)[np.arange(3), chosen].all() and chosen[0] in (4, 9)


def test_flat_dqn_actions_round_trip():
    nvec = (3, 4, 5)
    idx = np.arange(60)
    multi = flat_to_multi(idx, nvec)
    assert multi.shape == (60, 3) and (multi < np.array(nvec)).all()
    np.testing.assert_array_equal(multi_to_flat(multi, nvec), idx)
    np.testing.assert_array_equal(multi[1], [0, 0, 1])  # the last dimension varies fastest


# -- configs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, key, words", [
    ({"algorithm": "SAC"}, "algorithm", "ppo_jax"),
    ({"env": "memgym/NoSuchEnv-v0"}, "env", "KernelMapping-v0"),
    ({"total_timesteps": "100k"}, "total_timesteps", "integer"),
    ({"num_envs": 2.5}, "num_envs", "integer"),
    ({"hyperparameters": {"num_steps": 8, "learning_rte": 1e-3}}, "hyperparameters.learning_rte", "learning_rate"),
    ({"hyperparameters": {"num_steps": 8, "head": "gaussian"}}, "hyperparameters.head", "ordinal"),
    ({"hyperparameters": {"learning_rate": "3e-4"}}, "hyperparameters.learning_rate", "decimal point"),
    ({"hyperparameters": {"hidden": 64}}, "hyperparameters.hidden", "list"),
    ({"hyperparameters": {"teacher": "orcale"}}, "hyperparameters.teacher", "oracle"),
    ({"env_params": {"model": "llama2-70b", "bins": 4, "max_step": 8}}, "env_params.max_step", "max_steps"),
    ({"env_params": {"model": "llama2-70b", "workload": "bursty"}}, "env_params.workload", "dynamic"),
    ({"n_seeds": 0}, "n_seeds", ">= 1"),
    ({"eval": {"seeds": "many"}}, "eval.seeds", "integer"),
    ({"eval": {"scenarios": {"small": {"hbm_capacity": 48}}}}, "eval.scenarios.small.hbm_capacity", "hbm_capacity_gb"),
    ({"learning_rate": 0.1}, "learning_rate", "valid keys"),
])
def test_bad_config_names_file_and_key(tmp_path, change, key, words):
    path = write(tmp_path, {**tiny(), **change})
    with pytest.raises(ConfigError) as e:
        experiment.load(path)
    assert e.value.key == key
    assert str(path) in str(e.value) and words in str(e.value)


def test_sb3_config_rejects_unknown_constructor_argument_and_many_seeds(tmp_path):
    with pytest.raises(ConfigError, match="hyperparameters.n_step'"):
        experiment.load(write(tmp_path, tiny("PPO", hyperparameters={"n_step": 64})))
    with pytest.raises(ConfigError, match="n_seeds"):
        experiment.load(write(tmp_path, tiny("PPO", n_seeds=4)))


def test_resolved_config_reloads_to_the_same_experiment(tmp_path):
    exp = experiment.load(write(tmp_path, tiny(hyperparameters={"num_steps": 8, "learning_rate": 1e-3})))
    assert exp.hyperparameters["gamma"] == 0.99 and exp.hyperparameters["learning_rate"] == 1e-3  # defaults in
    path = experiment.write_resolved(exp, tmp_path / "run")
    again = experiment.load(path)
    assert again == exp and again.to_dict() == yaml.safe_load(path.read_text())


def test_shipped_experiment_configs_validate():
    names = experiment.presets("experiments")
    assert {"kernel-mapping-ppo-jax", "kernel-mapping-maskable-ppo", "kernel-mapping-ppo-sb3",
            "kernel-mapping-dqn"} <= set(names)
    for name in names:
        assert experiment.load(name).name == name
    main = experiment.load("kernel-mapping-ppo-jax")
    assert main.algorithm == "ppo_jax" and main.env_params["model"] == "gpt3-175b"
    assert {"hbm-48gb", "hbm-192gb", "dynamic", "llama2-70b"} <= set(main.eval["scenarios"])
    # every environment's generalist (what `memgym demo --env` trains) is a shipped config of that environment
    from memgym.envs.registry import descriptor, generalists, registered

    assert {"KernelMapping-v0", "CacheRatio-v1", "SecureDisagg-v0"} <= set(generalists())
    for env_id in registered():
        d = descriptor(env_id)
        if d.generalist:
            exp = experiment.load(d.generalist)
            assert descriptor(exp.env).id == d.id and exp.distribution and exp.n_seeds >= 3


# -- training runs -------------------------------------------------------------------------------------------
def _check_tags(scalars, extra=()):
    missing = [t for t in (*SB3_TAGS, *extra, "baseline/h2m2/ep_rew_mean", "env/speedup", "env/tokens_per_s")
               if t not in scalars]
    assert not missing, missing
    ref = {v for _, v in scalars["baseline/h2m2/ep_rew_mean"]}
    assert len(ref) == 1 and ref.pop() > 0  # a horizontal line at the heuristic's return


def test_ppo_jax_trains_logs_checkpoints_and_resumes(tmp_path):
    exp = experiment.load(write(tmp_path, tiny()))
    run = tmp_path / "run"
    first = experiment.train(exp, run_dir=run, progress=False)
    assert first["global_step"] == 2048
    scalars = read_scalars(run / "tb")
    _check_tags(scalars)
    steps = [s for s, _ in scalars["rollout/ep_rew_mean"]]
    assert steps[-1] == 2048 and len(set(steps)) == len(steps) // 2  # two seeds, one curve each
    assert experiment.load(run / "config.yaml") == exp

    with pytest.raises(ConfigError, match="--resume"):
        experiment.train(exp, run_dir=run, progress=False)  # refuses to overwrite a run
    more = experiment.load(run / "config.yaml", total_timesteps=1024)
    second = experiment.train(more, run_dir=run, resume=True, progress=False)
    assert second["start_step"] == 2048 and second["global_step"] == 2048 + 1024
    _, meta = read_checkpoint(latest_checkpoint(run))
    assert meta["global_step"] == 3072 and meta["updates"] == 3072 // (16 * 8)
    steps = sorted({s for s, _ in read_scalars(run / "tb")["rollout/ep_rew_mean"]})
    assert steps[-1] == 3072 and 2048 in steps and all(b > a for a, b in zip(steps, steps[1:]))
    assert len([s for s in steps if s > 2048]) == 1024 // 256

    # the learned policy: jittable, vmappable, greedy within the mask
    from memgym.envs.registry import make

    env, params = make(exp.env, **exp.env_params)
    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    obs = obs._replace(action_mask=obs.action_mask.at[:, 0:3].set(False))  # only bin 3 left for attention
    actions = jax.jit(jax.vmap(load_jax_policy(run), in_axes=(0, 0, 0, None)))(keys, obs, state, params)
    assert actions.shape == (6, 3) and bool((actions[:, 0] == 3).all())
    sampled = jax.jit(jax.vmap(load_jax_policy(run, sample=True), in_axes=(0, 0, 0, None)))(keys, obs, state, params)
    assert bool((sampled[:, 0] == 3).all()) and bool((sampled < 4).all())


@pytest.mark.parametrize("head", ["categorical", "ordinal"])
def test_kickstarting_imitates_the_teacher_then_hands_over_to_ppo(head):
    """The teacher's log-loss falls while its coefficient decays linearly to 0 at teacher_frac of the run; with
    either actor head."""
    from memgym.envs.registry import make
    from memgym.train.ppo_jax import make_trainer

    env, params = make("KernelMapping-v0", **TINY_ENV)
    hp = {"num_steps": 8, "teacher": "oracle", "head": head, "teacher_coef": 2.0, "teacher_frac": 0.5, "teacher_share": 0.5,
          "ent_coef": 0.0, "learning_rate": 3e-3, "anneal_lr": False}
    trainer = make_trainer(hp, env, params, num_envs=16)
    run = jax.jit(trainer.run)
    rs = trainer.init(jax.random.PRNGKey(0))
    rs, first = run(rs, 1, 40)
    rs, _ = run(rs, 18, 40)
    rs, mid = run(rs, 1, 40)  # update 19 of the 20 taught ones
    rs, after = run(rs, 1, 40)  # update 20: plain PPO
    assert float(first["teacher_coef"]) == pytest.approx(2.0)
    assert float(mid["teacher_coef"]) == pytest.approx(2.0 / 20, rel=1e-4)
    assert float(after["teacher_coef"]) == 0.0
    assert float(mid["teacher_loss"]) < 0.6 * float(first["teacher_loss"])


def test_an_ordinal_run_loads_with_its_head_and_its_summary_keeps_the_last_episodes(tmp_path):
    """A `head: ordinal` run's checkpoint holds 2 actor outputs per dimension, and the loaded deterministic
    policy is the feasible bin nearest the mean of the distribution the network outputs. The run's last chunk (one update, 8 steps of 16-step
    episodes) ends no episode: the summary keeps the chunk before's episode return rather than n/a."""
    from memgym.envs.registry import make
    from memgym.policies.learned import ObsNorm, mlp

    d = tiny(total_timesteps=384, checkpoint_every=384, n_seeds=1, env_params={**TINY_ENV, "max_steps": 16})
    d["hyperparameters"]["head"] = "ordinal"
    exp = experiment.load(write(tmp_path, d))
    run = tmp_path / "run"
    summary = experiment.train(exp, run_dir=run, progress=False)
    scalars = read_scalars(run / "tb")
    logged = dict(scalars["rollout/ep_rew_mean"])
    assert [s for s, _ in scalars["train/loss"]] == [256, 384] and list(logged) == [256]  # no episode at 384
    assert summary["scalars"][0]["rollout/ep_rew_mean"] == pytest.approx(logged[256])
    assert "n/a" not in experiment.format_summary(exp, summary)
    arrays, _ = read_checkpoint(latest_checkpoint(run))
    assert arrays["net/actor/2/w"].shape[-1] == 2 * 3
    env, params = make(exp.env, **exp.env_params)
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    actions = jax.jit(jax.vmap(load_jax_policy(run), in_axes=(0, 0, 0, None)))(keys, obs, state, params)
    net = {k[4:]: jnp.asarray(v[0]) for k, v in arrays.items() if k.startswith("net/")}
    logits = ordinal_logits(mlp(net, "actor", ObsNorm.identity(obs.features.shape[-1]).apply(obs.features)), (4,) * 3)
    p = jax.nn.softmax(jnp.where(obs.action_mask, logits, -1e9).reshape(8, 3, 4), axis=-1)
    mean = (p * jnp.arange(4)).sum(-1)
    feasible = obs.action_mask.reshape(8, 3, 4)[jnp.arange(8)[:, None], jnp.arange(3)[None, :], actions]
    assert bool(feasible.all())
    full = obs.action_mask.reshape(8, 3, 4).all(-1)  # where every bin is allowed: the nearest bin to the mean
    assert bool(((actions == jnp.rint(mean)) | ~full).all())
    # a run from before an observation change is refused with a clear message, not a shape error
    short = obs._replace(features=obs.features[:, :-1])
    with pytest.raises(ValueError, match=r"trained on \d+ observation features; .* observes \d+"):
        jax.vmap(load_jax_policy(run), in_axes=(0, 0, 0, None))(keys, short, state, params)


def test_ppo_jax_resume_mismatch_is_refused(tmp_path):
    run = tmp_path / "run"
    exp = experiment.load(write(tmp_path, tiny()))
    experiment.write_resolved(exp, run)
    other = experiment.load(write(tmp_path, tiny(seed=3), "other.yaml"))
    with pytest.raises(ConfigError, match="seed"):
        experiment.train(other, run_dir=run, resume=True, progress=False)


@pytest.mark.parametrize("algorithm", ["PPO", "MaskablePPO"])
def test_sb3_trains_logs_checkpoints(tmp_path, algorithm):
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("sb3_contrib")
    from memgym.policies.learned import load_sb3_policy

    exp = experiment.load(write(tmp_path, tiny(algorithm, total_timesteps=512, checkpoint_every=256,
                                               log_every=256)))
    run = tmp_path / "run"
    summary = experiment.train(exp, run_dir=run, progress=False)
    assert summary["global_step"] == 512
    scalars = read_scalars(run / "tb")
    _check_tags(scalars)
    assert (run / "tb" / f"{algorithm}_1").is_dir()
    assert latest_checkpoint(run, ".zip").name == f"{algorithm}_{512:012d}.zip"
    act = load_sb3_policy(run)
    mask = np.ones((5, 12), bool)
    mask[:, 3] = False
    from memgym.envs.registry import make

    env, params = make(exp.env, **exp.env_params)
    actions = act(np.zeros((5, env.observation_size(params)), np.float32), mask)
    assert actions.shape == (5, 3) and (actions >= 0).all() and (actions < 4).all()
    if algorithm == "MaskablePPO":
        assert (actions[:, 0] != 3).all()
        more = experiment.load(run / "config.yaml", total_timesteps=256)
        second = experiment.train(more, run_dir=run, resume=True, progress=False)
        assert second["global_step"] == 768
        steps = sorted({s for s, _ in read_scalars(run / "tb")["rollout/ep_rew_mean"]})
        assert steps[-1] == 768 and 512 in steps
        assert latest_checkpoint(run, ".zip").name == f"MaskablePPO_{768:012d}.zip"


# -- kill and resume (both trainers) -------------------------------------------------------------------------
# Tiny configs equal to tiny()'s, so the resumed runs reuse this module's compiled programs; the killed children
# run together.
KILL = {"ppo_jax": tiny(total_timesteps=512, checkpoint_every=128, log_every=128),
        "PPO": tiny("PPO", total_timesteps=768, checkpoint_every=256, log_every=256)}
# the child is SIGKILLed (no cleanup runs) in its second checkpoint write, the temporary file half written
CHILD = textwrap.dedent("""
    import os, signal, sys
    from memgym.train import experiment
    real, seen = os.replace, []

    def replace(src, dst):
        if "checkpoints" in str(dst):
            seen.append(dst)
            if len(seen) == 2:
                with open(src, "r+b") as f:
                    f.truncate(os.path.getsize(src) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)

    os.replace = replace
    experiment.train(experiment.load(sys.argv[1]), run_dir=sys.argv[2], progress=False)
""")


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """{algorithm: run folder} after each run was SIGKILLed during its second checkpoint write."""
    pytest.importorskip("stable_baselines3")
    root = tmp_path_factory.mktemp("kill")
    procs = {}
    for algo, cfg in KILL.items():
        path = write(root, cfg, f"{algo}.yaml")
        procs[algo] = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(root / algo)],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for p in procs.values():
        out = p.communicate(timeout=300)[0].decode()
        assert p.returncode == -signal.SIGKILL, out[-2000:]
    return {algo: root / algo for algo in KILL}


@pytest.mark.parametrize("algo", list(KILL))
def test_kill_during_checkpoint_write_then_resume(killed, algo, caplog):
    """The resumed run removes the partial file, skips a damaged newer checkpoint (naming it), continues from
    the newest complete one and logs no TensorBoard step twice."""
    run = killed[algo]
    suffix = ".npz" if algo == "ppo_jax" else ".zip"
    folder = run / "checkpoints"
    partial = [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert len(partial) == 1 and partial[0].name.startswith(".")  # the write the kill interrupted
    (complete,) = checkpoint_paths(run, suffix)  # the first checkpoint is whole
    first_step = int(complete.stem.rsplit("_", 1)[1])
    damaged = folder / complete.name.replace(f"{first_step:012d}", f"{first_step + 1:012d}")
    damaged.write_bytes(complete.read_bytes()[:200])  # a newer checkpoint that does not load
    if algo == "ppo_jax":  # it logged past its last complete checkpoint before the kill
        assert max(s for s, _ in read_scalars(run / "tb")["rollout/ep_rew_mean"]) > first_step

    total = KILL[algo]["total_timesteps"]
    more = experiment.load(run / "config.yaml", total_timesteps=total - first_step)
    with caplog.at_level(logging.WARNING):
        summary = experiment.train(more, run_dir=run, resume=True, progress=False)
    assert summary["start_step"] == first_step and summary["global_step"] == total
    assert not any(p.name.endswith(".tmp") for p in folder.iterdir())  # the partial file is gone
    assert damaged.name in caplog.text and "falling back" in caplog.text  # named, and the fallback said
    assert (folder / (damaged.name + ".corrupt")).exists() and not damaged.exists()
    for logdir in {p.parent for p in (run / "tb").rglob("events.out.tfevents.*")}:
        steps = [s for s, _ in read_scalars(logdir)["rollout/ep_rew_mean"]]
        assert len(steps) == len(set(steps)), steps  # no step logged twice after the resume
        assert max(steps) == total


def test_overwrite_replaces_only_the_run_files(tmp_path):
    exp = experiment.validate(tiny(), "<test>")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ppo_jax_000000000128.npz").write_bytes(b"old")
    (run / "notes.txt").write_text("mine")
    (run / ".config.yaml.abcd1234.tmp").write_text("partial")
    with pytest.raises(ConfigError, match="--overwrite"):
        experiment.prepare_run_dir(exp, run)
    assert not (run / ".config.yaml.abcd1234.tmp").exists()  # stale temp files go at the next start
    experiment.prepare_run_dir(exp, run, overwrite=True)
    assert not (run / "checkpoints").exists() and (run / "notes.txt").read_text() == "mine"
    assert experiment.load(run / "config.yaml") == exp
    assert os.listdir(tmp_path) == ["run"]  # nothing written outside the run folder
