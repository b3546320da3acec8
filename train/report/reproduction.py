"""The report's paper reproduction section (reproduce.json, as `memgym evaluate --reproduce` or the demo writes
it): figures with the paper's values become a paper | simulator | error table, others a generic table, and a
paper whose environment descriptor names `report_tables` gets those blocks instead."""

from __future__ import annotations

from memgym.envs.descriptor import load
from memgym.envs.registry import descriptor

from ..reproduce import by_paper
from .render import Subheading, Table, fmt

MAX_WIDE_COLUMNS = 10  # a reproduction table with more columns is shown transposed
DETAIL_KEYS = {"per_context"}  # per-point detail stays in reproduce.json; the page shows the averages


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dicts become dotted keys; lists and per-point detail (`DETAIL_KEYS`) are left out."""
    out = {}
    for k, v in d.items():
        if k in DETAIL_KEYS:
            continue
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif not isinstance(v, (list, tuple)):
            out[f"{prefix}{k}"] = v
    return out


def reproduction_table(block: dict, name: str = "") -> Table:
    """Rows: the block's entries (models), or the block itself when it holds no dicts; columns: speedup_*, other
    numbers, the paper's values, other nested values."""
    rows = {k: flatten(v) for k, v in block.items() if isinstance(v, dict)} or {name: flatten(block)}
    cols = sorted(dict.fromkeys(k for r in rows.values() for k in r),
                  key=lambda k: 0 if k.startswith("speedup") else 2 if k.startswith("paper") else 3 if "." in k else 1)
    if len(cols) > MAX_WIDE_COLUMNS:
        return Table(["Quantity", *rows], [[c, *(fmt(r.get(c)) for r in rows.values())] for c in cols])
    return Table(["Model", *cols], [[row, *(fmt(r.get(c)) for c in cols)] for row, r in rows.items()])


def tdmem_tables(block: dict) -> list:
    """`memgym reproduce tdmem` as three small tables (per mode, the headline ratios, the remote-size sweep);
    the rest stays in reproduce.json."""
    access, cap = block.get("remote_4k_access_us") or {}, (block.get("capacity_utilisation") or {})
    usable = next((v for k, v in cap.items() if k.endswith("GB")), {}) or {}
    modes = (block.get("obliviousness_cost") or {}).get("modes") or {}
    per_mode = Table(["Mode", "4 KB access µs", "traffic per byte", "usable remote", "throughput vs plain"],
                     [[m, fmt(access.get(m)), fmt(v.get("traffic")), fmt(usable.get(m)), fmt(v.get("vs_plain"))]
                      for m, v in modes.items()])
    svr = block.get("secure_vs_software_rdma") or {}
    oram = block.get("oram_blocks_per_access") or {}
    head = Table(["Quantity", "simulator", "reference"], [
        ["secure / software RDMA, default scenario", fmt(svr.get("ratio")), "ahead when remote memory is tight"],
        ["secure / software RDMA, same block and share", fmt((svr.get("same_block") or {}).get("ratio")),
         "comparable (±15 %)"],
        ["secure 4 KB access, µs", fmt(access.get("secure")), "3–6 (related systems)"],
        ["FlexGen's policy search on the tier, secure / RDMA slabs",
         fmt(((block.get("flexgen_on_remote") or {}).get("secure") or {}).get("vs_rdma_slab")), "–"],
        *[[f"Path ORAM blocks per access, {k}", fmt(v.get("blocks")), fmt(v.get("expected"))]
          for k, v in oram.items() if isinstance(v, dict) and "expected" in v]])
    sweep = svr.get("by_remote_gb") or {}
    by_gb = Table(["Remote GB", "RDMA block", "TDMem block", "ratio", "same-block ratio"],
                  [[gb, fmt(v.get("rdma_slabs_batch")), fmt(v.get("tdmem_batch")), fmt(v.get("ratio")),
                    fmt(v.get("same_block_ratio"))] for gb, v in sweep.items()])
    return [head, per_mode, by_gb]


REPRO_TOLERANCE = 0.15  # a simulator figure within ±15 % of the paper's is a match
CONFIG_KEYS = ("batch", "bins", "contexts", "scenario")


def paper_comparison(block: dict) -> tuple[Table, Table] | None:
    """Blocks whose entries carry a `paper` dict (H2M2's): one row per (model, policy) with the paper's value,
    the simulator's (`speedup_<policy>`) and the relative error, grouped by model, rows outside
    `REPRO_TOLERANCE` flagged; the entries' configuration (batch, bins, contexts, scenario) in a table of its
    own. None for other blocks."""
    entries = {k: v for k, v in block.items() if isinstance(v, dict) and isinstance(v.get("paper"), dict)}
    if not entries:
        return None
    rows, classes, config_rows = [], [], []
    for model, entry in entries.items():
        for policy, paper in entry["paper"].items():
            given = entry.get(policy)  # reproduce h2m2's {paper, simulator, ...} entries come first
            sim = given["simulator"] if isinstance(given, dict) else entry.get(f"speedup_{policy}", given)
            err = (sim / paper - 1.0) if isinstance(sim, (int, float)) and paper else None
            out = err is not None and abs(err) > REPRO_TOLERANCE
            rows.append([model, policy, fmt(paper), fmt(sim), "–" if err is None else f"{err:+.1%}",
                         f"✗ outside ±{REPRO_TOLERANCE:.0%}" if out else "✓"])
            classes.append("flag" if out else "")
        cfg = {k: entry[k] for k in CONFIG_KEYS if k in entry}
        cfg.update(cfg.pop("scenario", {}) or {})
        if cfg:
            config_rows.append([model, ", ".join(f"{k} {v if not isinstance(v, list) else '–'.join(map(str, v))}"
                                                 for k, v in cfg.items())])
    table = Table(["Model", "Figure", "paper", "simulator", "error", f"within ±{REPRO_TOLERANCE:.0%}"], rows, classes)
    return table, (Table(["Model", "configuration"], config_rows) if config_rows else None)


def paper_of(env_id) -> str | None:
    """The paper an environment reproduces (its descriptor's `paper`); None for an id not registered here."""
    try:
        return descriptor(env_id).paper if isinstance(env_id, str) else None
    except ValueError:
        return None


def report_tables(paper: str):
    """The function that turns a paper's reproduce.json block into report blocks, when its environment's
    descriptor names one (`report_tables`); None for the generic tables."""
    d = by_paper(paper)
    return load(d.report_tables) if d is not None and d.report_tables else None


def section_reproduction(res: dict) -> list:
    repro = res["reproduce"]
    if not repro:
        return ["No reproduce.json in the results folder. `memgym evaluate --reproduce ...` writes it; "
                f"`memgym reproduce {paper_of(res['summary'].get('env')) or 'PAPER'}` prints the same tables (the "
                f"paper's numbers beside the simulator's)."]
    blocks = []
    for paper, block in repro.items():
        compared = paper_comparison(block) if isinstance(block, dict) else None
        tables = report_tables(paper)
        if tables is not None and isinstance(block, dict):
            blocks += [Subheading(paper), *tables(block)]
        elif compared is not None:
            n_out = sum(c == "flag" for c in compared[0].row_classes)
            blocks += [Subheading(paper), compared[0],
                       f"{n_out} of {len(compared[0].rows)} figures lie outside ±{REPRO_TOLERANCE:.0%} of the "
                       f"paper's (flagged ✗). Figure: a policy's speedup (`speedup_<policy>`) or a named quantity."]
            if compared[1] is not None:
                blocks += [Subheading(f"{paper}: configuration"), compared[1]]
        elif isinstance(block, dict):
            blocks += [Subheading(paper), reproduction_table(block, paper)]
    return blocks + ["Tables without the paper's values list the simulator's figures: speedup_*: speedups; "
                     "nested values have dotted names; lists are left out."]
