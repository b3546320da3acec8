"""What every environment's Scenario shares: a frozen dataclass of the fields `env.default_params(**fields)`
takes (model, hardware, batch, workload, capacities...), checked when constructed and built into the params
pytree by `build()`.

    scenario = KernelMappingScenario(model="llama2-70b", batch=8)   # checked here: clear errors, nothing built
    params = scenario.build()                                       # the params pytree, built once per scenario

Construction runs the numeric checks of `memgym.sim.validate` (numbers come out as int or float, pairs as
tuples, so equal scenarios are equal and hashable) and the environment's own checks, which read presets
(`memgym.sim.config` parses each file once). `build()` derives the parameters; a scenario equal to one built
before (its preset files unchanged) returns the same params, so a run that asks for its scenario many times
builds it once. Configs (experiments, evaluation scenarios, benchmarks) are checked by constructing scenarios.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from typing import Any, ClassVar

from memgym.sim import config, validate


class Scenario:
    """Base of each environment's frozen dataclass of scenario fields; subclasses define `env_id`, `presets`
    (the fields naming preset files, with their kind), `__post_init__` (calling `_normalise()` and their own
    checks) and `derive()`."""

    env_id: ClassVar[str] = ""
    presets: ClassVar[tuple[tuple[str, str], ...]] = ()  # (field, preset kind): files a build depends on

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each field's default (the values `default_params()` uses)."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def of(cls, **fields: Any) -> Scenario:
        """The scenario with these fields (the rest at their defaults); an unknown field is a TypeError naming
        it and the valid ones."""
        names = cls.field_names()
        for key in fields:
            if key not in names:
                raise TypeError(f"{cls.env_id}: unknown scenario field {key!r}; valid: {', '.join(names)}")
        return cls(**fields)

    def _normalise(self) -> None:
        """The numeric fields checked by `memgym.sim.validate.scenario` and stored as it returns them."""
        checked = validate.scenario(self.env_id, {name: getattr(self, name) for name in self.field_names()})
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def derive(self):
        """The params pytree (uncached; `build()` caches it)."""
        raise NotImplementedError

    def build(self):
        """The params pytree of this scenario, built once per scenario and version of its preset files."""
        stamps = tuple(config.preset_stamp(kind, getattr(self, name)) for name, kind in self.presets)
        with _BUILDING:  # threads asking for one scenario at once (a trainer and its reference run) build it once
            return _build(self, stamps)


_BUILDING = threading.RLock()


@functools.lru_cache(maxsize=256)
def _build(scenario: Scenario, _stamps: tuple):
    return scenario.derive()
