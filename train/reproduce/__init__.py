"""The papers' reproductions, one module per paper (`h2m2`, `hybridserve`, `tdmem`). Which paper belongs to which
environment, and the functions that reproduce and format it, are the environment descriptors' `paper`,
`reproduce` and `format` (`memgym.envs.registry`): `memgym reproduce PAPER`, `memgym evaluate --reproduce` and
the demo find them here."""

from __future__ import annotations

import inspect

from memgym.envs.descriptor import EnvDescriptor, load
from memgym.envs.registry import descriptor, registered


def papers() -> dict[str, EnvDescriptor]:
    """{paper: its environment's descriptor}, in registration order; a paper two environments share (HybridServe:
    CacheRatio-v0 and v1) belongs to the first registered, whose scenario its reproduction models."""
    out: dict[str, EnvDescriptor] = {}
    for d in map(descriptor, registered()):
        out.setdefault(d.paper, d)
    return out


def by_paper(paper: str) -> EnvDescriptor | None:
    return papers().get(paper)


def reproduce(d: EnvDescriptor, **options) -> dict:
    """Run the descriptor's reproduction with the `options` its function takes (e.g. `bins` for H2M2's); the
    others are ignored, as the CLI's `--bins` is by reproductions without a mapping granularity."""
    run = load(d.reproduce)
    accepted = inspect.signature(run).parameters
    return run(**{k: v for k, v in options.items() if k in accepted})


def format_result(d: EnvDescriptor, result: dict) -> str:
    """The reproduction's result as text (what `memgym reproduce` prints)."""
    return load(d.format)(result)


def format_rows(title: str, rows) -> str:
    """paper | simulator | error, one line per published figure."""
    lines = [title, f"| {'row':50} | {'paper':>8} | {'simulator':>9} | {'error':>7} |",
             f"|{'-' * 52}|{'-' * 10}|{'-' * 11}|{'-' * 9}|"]
    for name, paper, sim in rows:
        lines.append(f"| {name:50} | {paper:>8.3g} | {sim:>9.3g} | {sim / paper - 1:>+7.1%} |")
    return "\n".join(lines)
