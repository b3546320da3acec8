"""`memgym report RESULTS`: one self-contained HTML page (and Markdown) from evaluation results."""

from __future__ import annotations

import pathlib

from ..report import write_report


def run(args) -> int:
    if not pathlib.Path(args.results).is_dir():
        raise FileNotFoundError(f"report: {args.results} is not a folder (expected what `memgym evaluate -o` wrote)")
    html, md = write_report(args.results, args.output)
    print(f"report: {html} (Markdown twin: {md})")
    return 0
