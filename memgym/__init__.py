"""memgym: reinforcement-learning environments and a JAX simulator for the memory systems that serve LLMs.

    import memgym
    env, params = memgym.make("KernelMapping-v0")     # the functional JAX environment and its parameters
    gym_env = gymnasium.make("memgym/KernelMapping-v0")  # the same environment behind gymnasium's API

Importing memgym imports neither gymnasium nor the environments, so `import memgym.sim` (which runs this file
first) stays a simulator import. `make` and `registered` load the registry on first use (PEP 562), and the
gymnasium ids are registered as soon as both memgym and gymnasium are imported, in either order: at once if
gymnasium already is, else right after gymnasium's own import, by a one-shot finder on `sys.meta_path` that
runs `memgym.envs.registry.register_gymnasium` once gymnasium has loaded. (gymnasium ≥ 1.0 no longer loads
`gymnasium.envs` entry-point plugins, so an entry point cannot do it.)
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys

__version__ = "0.1.0"
__all__ = ["make", "registered", "__version__"]


def __getattr__(name: str):
    if name in ("make", "registered"):
        from memgym.envs import registry  # on first use: it imports the environments (and JAX)

        return getattr(registry, name)
    raise AttributeError(f"module 'memgym' has no attribute {name!r}")


def _register() -> None:
    try:
        from memgym.envs.registry import register_gymnasium  # imports the environments: once gymnasium is in

        register_gymnasium()
    except ImportError as e:  # a broken install must not break `import gymnasium`; memgym.make still works
        logging.getLogger(__name__).warning("memgym: gymnasium ids not registered: %s", e)


class _AfterGymnasium(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when `gymnasium` is imported, it lets the other finders find it and wraps the
    loader so that memgym's ids are registered once gymnasium's module has run; then it leaves sys.meta_path."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                _register()
            spec.loader.exec_module = exec_module  # this spec's own loader instance (a fresh one per find)
        return spec


if "gymnasium" in sys.modules:
    _register()
elif not any(isinstance(f, _AfterGymnasium) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterGymnasium())
