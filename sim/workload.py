"""Request-slot workloads: fixed-size arrays of per-slot context lengths, advanced inside `lax.scan`.

A slot holds one running sequence. Contexts start uniform in [start_min, start_max]; each decode iteration
adds one token to every slot. With early termination (H2M2's dynamic experiment) a slot finishes with
probability `finish_prob` per iteration, or when it reaches `context_max`, and a new request with a fresh
start context takes its place (replacement keeps the batch full).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def start_contexts(key, n_slots: int, start_min, start_max):
    """Integer-valued start contexts, uniform in [start_min, start_max], as float32."""
    u = jax.random.uniform(key, (n_slots,))
    return jnp.floor(start_min + u * (start_max - start_min + 1.0)).clip(start_min, start_max)


def advance(key, contexts, iterations, finish_prob, start_min, start_max, context_max):
    """Contexts after `iterations` decode iterations. A slot that finishes during them (probability
    1 − (1 − finish_prob)^iterations, or at `context_max`) restarts from a fresh start context.
    Returns (contexts, finished mask)."""
    k_fin, k_new = jax.random.split(key)
    p = 1.0 - (1.0 - finish_prob) ** iterations
    grown = contexts + iterations
    finished = (jax.random.uniform(k_fin, contexts.shape) < p) | (grown > context_max)
    fresh = start_contexts(k_new, contexts.shape[0], start_min, start_max)
    return jnp.where(finished, fresh, grown), finished
