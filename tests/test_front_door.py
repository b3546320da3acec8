"""What RL users reach first: render modes on the gymnasium Env, registered episode lengths, SB3's
`make_vec_env`, masks through gymnasium's wrappers. One small KernelMapping scenario (shared compilation)."""

import subprocess
import sys

import gymnasium
import numpy as np
import pytest

import memgym
from memgym.envs import registry, render
from memgym.envs.gym_adapter import MemgymEnv, scenario

ID = "memgym/KernelMapping-v0"
SMALL = {"model": "llama2-70b", "batch": 8, "bins": 4, "max_steps": 8, "context_start": (1024, 4096),
         "hbm_capacity_gb": 24}


def test_render_modes_are_declared():
    assert MemgymEnv.metadata["render_modes"] == ["ansi", "rgb_array"]
    assert MemgymEnv.metadata["render_fps"] > 0
    with pytest.raises(ValueError, match="render_mode"):
        MemgymEnv(render_mode="human", **SMALL)


def test_ansi_shows_the_last_step():
    env = gymnasium.make(ID, render_mode="ansi", **SMALL)
    env.reset(seed=0)
    text = env.render()
    assert isinstance(text, str) and "KernelMapping-v0" in text and "step 0 of 8" in text
    assert "n/a" in text and "footprint_attention" in text  # no metrics yet; the observation's features
    _, reward, *_, info = env.step(np.array([3, 3, 0]))
    text = env.render()
    assert "step 1 of 8" in text and f"{reward:+.4g}" in text
    for name in ("memory use", "shares", "times", "hbm_used_frac", "hbm_share_fc", "iteration_time_s"):
        assert name in text
    assert render.fmt_seconds(info["metrics"]["iteration_time_s"]) in text
    assert "nan" not in text.lower()


def test_rgb_array_is_a_fixed_size_image():
    env = gymnasium.make(ID, render_mode="rgb_array", **SMALL)
    env.reset(seed=0)
    first = env.render()
    env.step(np.array([3, 3, 0]))
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape == first.shape and frame.shape[:2] == (256, 512)
    assert frame.std() > 10 and not np.array_equal(frame, first)  # something drawn; the step shows
    collected = gymnasium.wrappers.RenderCollection(gymnasium.make(ID, render_mode="rgb_array", **SMALL))
    collected.reset(seed=0)
    collected.step(np.array([0, 0, 0]))
    assert [f.shape for f in collected.render()] == [frame.shape] * 2


def test_render_without_mode_warns_and_returns_none():
    env = MemgymEnv(**SMALL)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_labels_and_groups():
    assert render.group_of("hbm_used_frac") == "memory use" and render.short_label("hbm_used_frac") == "hbm"
    assert render.group_of("remote_share") == "shares" and render.short_label("hbm_share_fc") == "hbm fc"
    assert render.group_of("time_qkv_s") == "times" and render.short_label("iteration_time_s") == "iteration"
    assert render.group_of("tokens_per_s") == "other"
    assert render.fmt_seconds(0.0123) == "12.3 ms" and render.fmt_seconds(float("nan")) == "n/a"


@pytest.mark.parametrize("gid", memgym.registered())
def test_registered_episode_length_is_the_default_one(gid):
    spec = gymnasium.spec(gid)
    params = scenario(gid, {}).params
    assert spec.max_episode_steps == params.max_steps == registry.default_max_steps(gid)


def test_make_vec_rejects_a_time_limit_it_cannot_apply():
    venv = gymnasium.make_vec(ID, num_envs=2, vectorization_mode="vector_entry_point", **SMALL)
    assert venv.num_envs == 2
    with pytest.raises(ValueError, match="max_steps=5"):
        gymnasium.make_vec(ID, num_envs=2, vectorization_mode="vector_entry_point", max_episode_steps=5, **SMALL)


def test_masks_through_gymnasium_wrappers():
    env = gymnasium.make(ID, **SMALL)
    assert isinstance(env, gymnasium.Wrapper)  # TimeLimit, OrderEnforcing...
    _, info = env.reset(seed=0)
    mask = env.get_wrapper_attr("action_masks")()
    np.testing.assert_array_equal(mask, info["action_mask"])
    assert mask.dtype == bool and not mask.all()


def test_module_prefixed_id():
    env = gymnasium.make("memgym:" + ID, **SMALL)
    assert isinstance(env.unwrapped, MemgymEnv) and env.spec.max_episode_steps == 96


def test_sb3_make_vec_env_and_ppo():
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(ID, n_envs=2, seed=0, env_kwargs=SMALL)
    assert venv.get_attr("render_mode") == ["rgb_array", "rgb_array"]  # SB3's default
    venv.reset()
    assert get_action_masks(venv).shape == (2, 12)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=16)
    assert model.num_timesteps >= 16
    frames = venv.get_images()
    assert len(frames) == 2 and frames[0].dtype == np.uint8 and frames[0].shape[2] == 3


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_importing_the_simulator_leaves_gymnasium_and_the_environments_out():
    """`import memgym.sim` runs memgym/__init__.py, which imports neither gymnasium nor the environments;
    `import memgym` registers the ids with gymnasium whether gymnasium is imported after it or before it."""
    loaded = _python("import sys, memgym.sim; "
                     "print(sorted(m for m in ('gymnasium', 'memgym.envs') if m in sys.modules))")
    assert loaded.strip() == "[]"
    ids = "print(sorted(i for i in gymnasium.registry if i.startswith('memgym/')))"
    expected = str(sorted(memgym.registered()))
    assert _python(f"import memgym, gymnasium; {ids}").strip() == expected
    assert _python(f"import gymnasium, memgym; {ids}").strip() == expected
