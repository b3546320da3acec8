"""memgym: reinforcement-learning environments and a JAX simulator for the memory systems that serve LLMs.

    import memgym
    env, params = memgym.make("KernelMapping-v0")     # the functional JAX environment and its parameters
    gym_env = gymnasium.make("memgym/KernelMapping-v0")  # the same environment behind gymnasium's API
"""

from memgym.envs.registry import make, registered

__version__ = "0.1.0"
__all__ = ["make", "registered", "__version__"]


def _register() -> None:
    try:
        from memgym.envs.registry import register_gymnasium

        register_gymnasium()
    except ImportError:  # gymnasium is a dependency; tolerate a broken install of it at import time
        pass


_register()
