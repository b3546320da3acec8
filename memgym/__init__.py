"""memgym: reinforcement-learning environments and a JAX simulator for the memory systems that serve LLMs."""

__version__ = "0.1.0"
