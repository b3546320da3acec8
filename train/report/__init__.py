"""`memgym report RESULTS_DIR -o report.html`: one self-contained HTML page (plus a Markdown twin) from the
folder that `memgym evaluate` writes, readable without TensorBoard.

The page opens with a headline sentence (what the learned policy was trained on, its IQM against the heuristic
with the CI, the scenarios it wins and loses), then a Benchmark section when `memgym benchmark` wrote
benchmark.json. It embeds every plot as a base64 PNG, carries its CSS inline and loads nothing from outside;
the Markdown twin (`report.md`) saves its plots as PNG files in `report_files/`. Both are rendered from one
list of sections, each a list of blocks (a paragraph string, Lead, Table, Image or Subheading); both are
written atomically.

Modules: `data` (reading the results folder and the runs), `plots` (matplotlib figures), `sections` and
`reproduction` (the sections' blocks), `render` (the blocks, the HTML template and the Markdown twin).
"""

from __future__ import annotations

import logging
import pathlib

from ..files import write_atomic
from .data import load_results
from .plots import policy_colors
from .render import SECTIONS, render_html, render_markdown
from .reproduction import section_reproduction
from .sections import (section_about, section_benchmark, section_breakdown, section_decisions, section_headline,
                       section_learning, section_per_scenario, section_scores)

log = logging.getLogger(__name__)
MAKERS = {"headline": section_headline, "benchmark": section_benchmark, "scores": section_scores,
          "per-scenario": section_per_scenario, "learning": section_learning, "decisions": section_decisions,
          "breakdown": section_breakdown, "reproduction": section_reproduction, "about": section_about}


def write_report(results_dir, out_html=None) -> tuple[pathlib.Path, pathlib.Path]:
    """Write the HTML report (default RESULTS_DIR/report.html) and its Markdown twin (same path with .md, images
    in `<stem>_files/`); return both paths."""
    out_html = pathlib.Path(out_html) if out_html is not None else pathlib.Path(results_dir) / "report.html"
    if out_html.suffix.lower() == ".md":
        raise ValueError(f"{out_html}: the report is HTML (its Markdown twin is written beside it); use .html")
    from ..scale import explore_report  # `memgym explore` output: its own section

    explored = explore_report.present(results_dir)
    if explored and not (pathlib.Path(results_dir) / "summary.json").is_file():  # only an exploration
        title, subtitle = explore_report.heading(results_dir)
        return write_page(title, subtitle, [(explore_report.SECTION, explore_report.section(results_dir))],
                          out_html)
    res = load_results(results_dir)
    res["colors"] = policy_colors(res)
    makers = MAKERS | {explore_report.SECTION: lambda r: explore_report.section(r["dir"])}
    shown = {"benchmark": bool(res["benchmark"]), explore_report.SECTION: explored}
    sections = [(sid, makers[sid](res)) for sid in SECTIONS if shown.get(sid, True)]
    s = res["summary"]
    title = f"memgym report: {s.get('env', '?')}"
    subtitle = (f"Results in `{res['dir']}`; scores normalised to the paper's heuristic ({s.get('heuristic', '?')} "
                f"= 1.0); {s.get('seeds', '?')} seeds × {len(s.get('scenarios') or {})} scenarios.")
    return write_page(title, subtitle, sections, out_html)


def write_page(title: str, subtitle: str, sections: list, out_html: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Write `sections` as the HTML page `out_html` and its Markdown twin (images in `<stem>_files/`)."""
    out_html.parent.mkdir(parents=True, exist_ok=True)
    files_dir = out_html.parent / f"{out_html.stem}_files"
    md, files = render_markdown(title, subtitle, sections, files_dir.name)
    files_dir.mkdir(exist_ok=True)
    for name, png in files.items():
        write_atomic(files_dir / name, png)
    md_path = out_html.with_suffix(".md")
    write_atomic(md_path, md.encode("utf-8"))
    write_atomic(out_html, render_html(title, subtitle, sections).encode("utf-8"))
    log.info("report written to %s and %s", out_html, md_path)
    return out_html, md_path
