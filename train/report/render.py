"""The report's blocks and how they are written: a section is a list of blocks (a paragraph string, Lead, Table,
Image or Subheading); the page is rendered by the Jinja2 template `templates/report.html.j2` (autoescaped, CSS
inline, images as base64 PNGs), the Markdown twin by `render_markdown` (images as files beside it)."""

from __future__ import annotations

import base64
import math
import re
import urllib.parse
from collections import namedtuple
from importlib import resources

import jinja2
import numpy as np
from markupsafe import Markup, escape

SECTIONS = {"headline": "Headline", "benchmark": "Benchmark", "scores": "Normalised scores",
            "per-scenario": "Per scenario",
            "learning": "Learning curves", "decisions": "Decisions over one episode",
            "breakdown": "Time breakdown", "reproduction": "Paper reproduction",
            "explore": "Hardware exploration",  # memgym explore's explore.csv, when the folder has one
            "about": "About this report"}

NUMERIC = re.compile(r"^([-+\[–]|\d)")  # table cells right-aligned as numbers


Table = namedtuple("Table", "header rows row_classes", defaults=(None,))
Image = namedtuple("Image", "name png alt")
Subheading = namedtuple("Subheading", "text")
Lead = namedtuple("Lead", "text")  # the headline sentence, set apart at the top


def fmt(x) -> str:
    """A number to 3 significant digits ('–' when missing); thousands separated, huge or tiny ones in
    scientific notation; a pair [lo, hi] as an interval; anything else as text."""
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(map(fmt, x)) + "]"
    if x is None or isinstance(x, (bool, str)):
        return "–" if x is None else str(x)
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}" if abs(x) >= 10_000 else str(int(x))
    a = abs(x := float(x))
    if not math.isfinite(x) or a == 0:
        return "0" if a == 0 else "–"
    if a >= 1e6 or a < 1e-3:
        return f"{x:.2e}"
    return f"{float(f'{x:.3g}'):,.0f}" if a >= 1e3 else f"{x:#.3g}".rstrip(".")


TEMPLATE = "report.html.j2"  # under train/report/templates/, shipped as package data


def inline_html(text: str):
    """Escape text; `backticked` parts become <code>."""
    return Markup("".join(f"<code>{escape(p)}</code>" if i % 2 else str(escape(p))
                          for i, p in enumerate(str(text).split("`"))))


def html_template():
    """The page template (Jinja2, autoescaped) with the report's filters and block tests."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update(inline=inline_html, b64=lambda png: base64.b64encode(png).decode(),
                       wbr=lambda h: Markup(re.sub(r"([_.])", r"\1<wbr>", str(escape(str(h))))))  # long names break
    env.tests.update(numeric=lambda v: bool(NUMERIC.match(v)), lead=lambda b: isinstance(b, Lead),
                     subheading=lambda b: isinstance(b, Subheading), image=lambda b: isinstance(b, Image))
    return env.from_string((resources.files("memgym.train.report") / "templates" / TEMPLATE).read_text("utf-8"))


def render_html(title: str, subtitle: str, sections: list) -> str:
    return html_template().render(title=title, subtitle=subtitle, sections=[
        {"id": sid, "title": SECTIONS[sid], "blocks": blocks} for sid, blocks in sections])


def md_text(text: str) -> str:
    """Markdown-safe text: `<` outside code spans is escaped so that names like <name> are not read as HTML."""
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(str(text).split("`")))


def render_markdown(title: str, subtitle: str, sections: list, files_dir: str) -> tuple[str, dict]:
    """The Markdown text and {file name: PNG bytes} of its images (to be saved in `files_dir`)."""
    lines, files = [f"# {md_text(title)}", "", md_text(subtitle), ""], {}
    cells = lambda row: "| " + " | ".join(md_text(v).replace("|", r"\|").replace("\n", " ") for v in row) + " |"  # noqa
    for sid, blocks in sections:
        lines += [f"## {SECTIONS[sid]}", ""]
        for b in blocks:
            if isinstance(b, str):
                lines += [md_text(b), ""]
            elif isinstance(b, Subheading):
                lines += [f"### {md_text(b.text)}", ""]
            elif isinstance(b, Lead):
                lines += [f"> **{md_text(b.text)}**", ""]
            elif isinstance(b, Image):
                files[name := f"{sid}-{b.name}.png"] = b.png
                lines += [f"![{md_text(b.alt)}]({urllib.parse.quote(f'{files_dir}/{name}')})", ""]
            else:
                lines += [cells(b.header), "|" + "|".join(["---"] + ["---:"] * (len(b.header) - 1)) + "|",
                          *(cells(row) for row in b.rows), ""]
    return "\n".join(lines), files
