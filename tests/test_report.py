"""`memgym report`: one self-contained HTML page and a Markdown twin from a (fake) results folder; every
section present, images embedded and decodable, numbers matching summary.json and benchmark.json, a headline
sentence that agrees with them, labelled plots with visible CIs and legends outside the data, atomic writes,
escaping, and a headless-Chromium render (skipped where Chromium is not installed)."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from matplotlib import image as mpimg

from memgym.train import files, report
from memgym.train.report import data, plots, render, reproduction
from report_fixture import BENCH_RUNS, RUN_CONFIG, TRAIN_STEPS, build_results

SECTION_IDS = ["headline", "benchmark", "scores", "per-scenario", "learning", "decisions", "breakdown", "reproduction",
               "about"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


class Page(HTMLParser):
    """The parts of the report the tests look at: h2 ids and titles in order; per section its text, <img>
    sources and tables ({"head": [th texts], "rows": [(row class, [td texts])]}); every src/href."""

    def __init__(self, text: str):
        super().__init__()
        self.ids, self.titles, self.sections, self.urls, self.tags = [], [], {}, [], []
        self._sid, self._in_h2, self._in_head, self._row, self._cell = None, False, False, None, None
        self._in_lead = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.urls += [(tag, a[k]) for k in ("src", "href") if k in a]
        if tag == "h2":
            self._sid, self._in_h2 = a.get("id"), True
            self.ids.append(self._sid)
            self.titles.append("")
            self.sections[self._sid] = {"text": "", "imgs": [], "tables": [], "leads": []}
        elif tag == "p" and a.get("class") == "lead":
            self.sections[self._sid]["leads"].append("")
            self._in_lead = True
        elif tag == "img":
            self.sections[self._sid]["imgs"].append(a["src"])
        elif tag == "table":
            self.sections[self._sid]["tables"].append({"head": [], "rows": []})
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = (a.get("class") or "", [])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False
        elif tag == "p":
            self._in_lead = False
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th"):
            self._row[1].append(self._cell)
            self._cell = None
        elif tag == "tr":
            table = self.sections[self._sid]["tables"][-1]
            if self._in_head:
                table["head"] = self._row[1]
            else:
                table["rows"].append(self._row)

    def handle_data(self, data):
        if self._in_h2:
            self.titles[-1] += data
        if self._cell is not None:
            self._cell += data
        if self._in_lead:
            self.sections[self._sid]["leads"][-1] += data
        if self._sid:
            self.sections[self._sid]["text"] += data

    def all_imgs(self):
        return [src for s in self.sections.values() for src in s["imgs"]]


def decode_png(data: bytes) -> np.ndarray:
    assert data.startswith(PNG_SIGNATURE)
    pixels = mpimg.imread(io.BytesIO(data), format="png")
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 50
    return pixels


def number(text: str) -> float:
    return float(text.replace(",", ""))


def make_report(tmp_path, **kw):
    results = build_results(tmp_path, **kw)
    html_path, md_path = report.write_report(results, tmp_path / "out" / "report.html")
    return results, html_path, md_path, Page(html_path.read_text())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return make_report(tmp_path_factory.mktemp("report"))


def test_every_section_is_present_in_order(built):
    _, html_path, md_path, page = built
    assert page.ids == SECTION_IDS
    assert (html_path, md_path) == (html_path.with_suffix(".html"), html_path.with_suffix(".md"))
    for sid in SECTION_IDS:
        assert page.sections[sid]["text"].strip(), f"section {sid} is empty"


def test_images_are_embedded_pngs_and_nothing_is_external(built):
    _, _, _, page = built
    for sid in ("scores", "learning", "decisions", "breakdown"):
        assert page.sections[sid]["imgs"], f"no plot in {sid}"
    assert len(page.all_imgs()) == 7  # scores, profile, learning, env metrics, actions, outcomes, breakdown
    for src in page.all_imgs():
        assert src.startswith("data:image/png;base64,")
        decode_png(base64.b64decode(src.split(",", 1)[1], validate=True))
    assert "link" not in page.tags
    external = [(t, u) for t, u in page.urls if not (u.startswith("data:") or u.startswith("#"))]
    assert external == []
    assert {u[1:] for t, u in page.urls if t == "a"} == set(SECTION_IDS)  # the navigation links resolve


def test_tables_are_real_tables(built):
    _, _, _, page = built
    tables = [t for s in page.sections.values() for t in s["tables"]]
    assert len(tables) == 9  # headline, benchmark (per scenario, overall), per-scenario scores and metrics, breakdown,
    # h2m2 (comparison, config), hybridserve
    for t in tables:
        assert t["head"] and t["rows"]
        assert all(len(cells) == len(t["head"]) for _, cells in t["rows"])


def test_headline_numbers_match_summary(built):
    results, _, _, page = built
    summary = json.loads((results / "summary.json").read_text())
    (table,) = page.sections["headline"]["tables"]
    assert table["head"][:3] == ["Policy", "Kind", "IQM score"]
    close = lambda text, x: math.isclose(number(text), x, rel_tol=5.1e-3, abs_tol=1e-9)  # noqa: E731 (3 sig. digits)
    names = []
    for cls, cells in table["rows"]:
        name = cells[0].replace("★", "").replace("◆", "").strip()
        s = summary["policies"][name]
        names.append(name)
        assert cells[1] == s["kind"] == cls
        assert close(cells[2], s["iqm"]), (name, cells[2], s["iqm"])
        lo, hi = re.findall(r"[-\d.,e+]+", cells[3])
        assert close(lo, s["iqm_ci"][0]) and close(hi, s["iqm_ci"][1])
        assert close(cells[4], s["mean"])
        if name != summary["heuristic"]:
            assert close(cells[5].split()[0], s["prob_improvement"])
        assert close(cells[6], s["iqm_vs_oracle"]) and close(cells[7], s["optimality_gap"])
    assert sorted(names) == sorted(summary["policies"])
    assert [summary["policies"][n]["iqm"] for n in names] == sorted((s["iqm"] for s in summary["policies"].values()),
                                                                   reverse=True)
    marked = {cells[0] for _, cells in table["rows"]}
    assert "h2m2 ★" in marked and "oracle ◆" in marked


def test_per_scenario_table_matches_results_csv(built):
    import pandas as pd

    results, _, _, page = built
    table = pd.read_csv(results / "results.csv")
    scores = page.sections["per-scenario"]["tables"][0]
    assert scores["head"] == ["Policy", "short", "long", "all"]
    for _, (policy, short, long, overall) in scores["rows"]:
        rows = table[table.policy == policy]
        assert math.isclose(number(long), rows[rows.scenario == "long"].score_vs_heuristic.mean(), rel_tol=5.1e-3)
        assert math.isclose(number(overall), rows.score_vs_heuristic.mean(), rel_tol=5.1e-3)
    metrics = page.sections["per-scenario"]["tables"][1]
    assert metrics["head"][1:3] == ["iteration_time_s", "speedup"]


def test_markdown_twin_has_the_same_sections_and_images(built):
    _, _, md_path, page = built
    md = md_path.read_text()
    assert re.findall(r"^## (.+)$", md, re.M) == page.titles
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(refs) == len(page.all_imgs())
    for ref in refs:
        assert not ref.startswith("/") and ref.startswith(f"{md_path.stem}_files/")
        decode_png((md_path.parent / ref).read_bytes())
    assert md.count("\n|---|") == sum(len(s["tables"]) for s in page.sections.values())


def test_written_atomically(built, tmp_path, monkeypatch):
    _, html_path, md_path, _ = built
    leftovers = [p.name for p in html_path.parent.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []
    assert oct(html_path.stat().st_mode & 0o777) == oct(0o644)
    results = build_results(tmp_path, with_runs=False)
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    out.write_bytes(b"the previous report")

    def refuse(*args):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", refuse)  # the atomic writer the report uses
    with pytest.raises(OSError, match="disk full"):
        report.write_report(results, out)
    assert out.read_bytes() == b"the previous report"
    assert [p.name for p in out.parent.rglob("*") if p.suffix == ".tmp"] == []


def test_missing_optional_files_still_give_every_section(tmp_path):
    results = build_results(tmp_path, with_runs=False, with_reproduce=False, with_benchmark=False)
    (results / "decisions.json").unlink()
    (results / "breakdown.json").unlink()
    _, md_path = report.write_report(results)  # default: RESULTS_DIR/report.html
    page = Page((results / "report.html").read_text())
    assert page.ids == [sid for sid in SECTION_IDS if sid != "benchmark"]  # no benchmark.json: no section
    assert "memgym reproduce h2m2" in page.sections["reproduction"]["text"]
    assert "No training runs" in page.sections["learning"]["text"]
    for sid in ("learning", "decisions", "breakdown", "reproduction"):
        assert page.sections[sid]["imgs"] == [] and page.sections[sid]["tables"] == []
    assert re.findall(r"^## (.+)$", md_path.read_text(), re.M) == page.titles


def test_learning_curves_come_from_the_event_files(built, tmp_path):
    results, _, _, page = built
    runs = json.loads((results / "summary.json").read_text())["runs"]
    if not runs:
        pytest.skip("no TensorBoard event writer available to build the fixture's training run")
    curves, missing = data.read_learning_curves([*runs, str(tmp_path / "no-such-run")])
    assert missing == [str(tmp_path / "no-such-run")]
    assert sorted(c["part"] for c in curves) == ["tb/ppo_jax/seed_0", "tb/ppo_jax/seed_1"]
    for c in curves:
        steps, values = c["scalars"]["rollout/ep_rew_mean"]
        assert steps.tolist() == list(TRAIN_STEPS) and values[0] < values[-1]
        assert data.reference_returns(c["scalars"]) == {"h2m2": 24.0}
    assert len(page.sections["learning"]["imgs"]) == 2  # the return curve and the env/* small multiples
    assert "2 seed log folders from 1 run)" in page.sections["learning"]["text"]


def test_reproduction_tables_compare_paper_and_simulator(built):
    _, _, _, page = built
    h2m2, h2m2_config, other = page.sections["reproduction"]["tables"]
    assert h2m2["head"][:5] == ["Model", "Figure", "paper", "simulator", "error"]
    rows = [dict(zip(h2m2["head"], cells)) for _, cells in h2m2["rows"]]
    assert [r["Model"] for r in rows] == ["gpt3-175b", "chinchilla-70b", "llama2-70b", "dynamic", "dynamic"]
    llama = rows[2]
    assert (llama["paper"], llama["simulator"], llama["error"]) == ("2.94", "2.90", "-1.4%")
    assert rows[4]["Figure"] == "flexgen_static" and rows[4]["paper"] == "1.25" and rows[4]["simulator"] == "1.22"
    assert all(r["within ±15%"] == "✓" for r in rows)
    assert h2m2_config["head"] == ["Model", "configuration"]
    assert "bins" not in h2m2["head"] and "batch" not in h2m2["head"]
    assert h2m2_config["rows"][0][1] == ["gpt3-175b", "batch 8, contexts 512–1024"]
    assert [dict(zip(other["head"], c))["paper"] for _, c in other["rows"]] == ["0.900"]
    # a figure outside the tolerance is flagged and counted
    table, config = reproduction.paper_comparison({"chinchilla-70b": {"speedup_hierarchical": 1.00, "speedup_h2m2": 1.52,
                                                                "bins": 65, "paper": {"h2m2": 1.55, "hierarchical": 1.33}}})
    assert table.row_classes == ["", "flag"] and table.rows[1][5].startswith("✗")
    assert config.rows == [["chinchilla-70b", "bins 65"]]
    assert reproduction.paper_comparison({"m": {"speedup_x": 1.0}}) is None  # no paper values: the generic table
    wide = reproduction.reproduction_table({"m": {f"speedup_{i}": i / 3 for i in range(12)}})
    assert wide.header == ["Quantity", "m"] and len(wide.rows) == 12  # too wide: transposed
    flat = reproduction.reproduction_table({"speedup_hybridserve": 1.234, "layers": [1, 2]}, "hybridserve")
    assert flat == render.Table(["Model", "speedup_hybridserve"], [["hybridserve", "1.23"]])  # a flat block: one row


@pytest.mark.parametrize("value, text", [(1.23456, "1.23"), (1.0, "1.00"), (0.5, "0.500"), (123.4, "123"),
                                         (12345.6, "12,300"), (3.2e10, "3.20e+10"), (0.00042, "4.20e-04"),
                                         (0.0, "0"), (None, "–"), (float("nan"), "–"), (8, "8"),
                                         (np.float32(2.5), "2.50"), ("gpt3", "gpt3")])
def test_numbers_have_three_significant_digits(value, text):
    assert render.fmt(value) == text


def test_text_is_escaped(tmp_path):
    _, html_path, md_path, page = make_report(tmp_path, learned="ppo<b>&", with_runs=False)
    text = html_path.read_text()
    assert "ppo<b>" not in text and "ppo&lt;b&gt;&amp;" in text
    assert "ppo<b>&" in page.sections["headline"]["text"]  # the parsed page shows the name as text
    assert "ppo<b>" not in md_path.read_text()


def test_bad_input_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match="summary.json"):
        report.write_report(tmp_path, tmp_path / "r.html")
    results = build_results(tmp_path, with_runs=False)
    (results / "breakdown.json").write_text("{not json")
    with pytest.raises(ValueError, match="breakdown.json"):
        report.write_report(results, tmp_path / "r.html")
    with pytest.raises(ValueError, match=".html"):
        report.write_report(results, tmp_path / "r.md")


def run_chromium(tmp_path, name: str, *args, timeout=60) -> str:
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / ('profile-' + name)}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def body_counts(dom: str) -> tuple[int, int]:
    body = re.search(r"<body[^>]*>", dom).group(0)
    return (int(re.search(r'data-images="(\d+)"', body).group(1)),
            int(re.search(r'data-broken-images="(\d+)"', body).group(1)))


def test_renders_in_headless_chromium(built, tmp_path):
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (CI installs Debian's chromium package)")
    _, html_path, _, page = built
    dom = run_chromium(tmp_path, "dom", "--virtual-time-budget=5000", "--dump-dom", html_path.as_uri())
    n_tables = sum(len(s["tables"]) for s in page.sections.values())
    assert dom.count("<table") == n_tables and dom.count("<th") >= n_tables
    assert body_counts(dom) == (len(page.all_imgs()), 0)
    assert all(f'id="{sid}"' in dom for sid in SECTION_IDS)

    # the broken-image check itself can fail: one undecodable image is counted
    broken = tmp_path / "broken.html"
    first = page.all_imgs()[0]
    broken.write_text(html_path.read_text().replace(first, "data:image/png;base64,AAAA", 1))
    dom = run_chromium(tmp_path, "broken", "--virtual-time-budget=5000", "--dump-dom", broken.as_uri())
    assert body_counts(dom) == (len(page.all_imgs()), 1)

    shot = tmp_path / "shot.png"
    run_chromium(tmp_path, "shot", f"--screenshot={shot}", "--window-size=1280,4000", "--virtual-time-budget=5000",
                 html_path.as_uri())
    pixels = decode_png(shot.read_bytes())
    assert pixels.shape[:2] == (4000, 1280) and float(pixels[..., :3].std()) > 0.01


def test_tdmem_reproduction_is_three_small_tables():
    """`reproduce tdmem` is deeply nested; the report shows the headline, one row per mode and the sweep."""
    block = {
        "remote_4k_access_us": {"secure": 3.63, "oram": 61.3, "band_us": [3, 6]},
        "oram_blocks_per_access": {"4GiB": {"pages": 2**20, "blocks": 152.0, "expected": 152}, "z": 4.0},
        "secure_vs_software_rdma": {"ratio": 1.07, "same_block": {"ratio": 1.0},
                                    "by_remote_gb": {"16": {"ratio": 1.08, "same_block_ratio": 1.0,
                                                            "rdma_slabs_batch": 48.0, "tdmem_batch": 64.0}}},
        "capacity_utilisation": {"64GB": {"secure": 0.994, "oram": 0.497}},
        "obliviousness_cost": {"modes": {"secure": {"traffic": 1.006, "vs_plain": 1.0},
                                         "oram": {"traffic": 177.0, "vs_plain": 0.023}}},
    }
    head, per_mode, sweep = reproduction.tdmem_tables(block)
    assert [r[0] for r in per_mode.rows] == ["secure", "oram"]
    assert per_mode.rows[1][1:] == [render.fmt(61.3), render.fmt(177.0), render.fmt(0.497), render.fmt(0.023)]
    assert ["Path ORAM blocks per access, 4GiB", render.fmt(152.0), render.fmt(152)] in head.rows
    assert head.rows[0][1] == render.fmt(1.07) and sweep.rows == [["16", "48.0", "64.0", "1.08", "1.00"]]


# --- the headline sentence ----------------------------------------------------------------------------------------

HEADLINE = re.compile(r"IQM ([\d.]+) of h2m2 \(95% CI \[([\d.]+), ([\d.]+)\], (above|below|not distinguishable from) "
                      r"h2m2\); wins on (.+?); loses on (.+?)(?:; ties on .+?)?(?: \(mean score per scenario\))?\.$")


def parse_headline(sentence: str) -> dict:
    m = HEADLINE.search(sentence)
    assert m, sentence

    def items(text):
        return {} if text == "none" else {k: float(v) for k, v in (i.split() for i in text.split(", "))}

    return {"iqm": float(m[1]), "ci": (float(m[2]), float(m[3])), "verdict": m[4], "wins": items(m[5]),
            "losses": items(m[6])}


def check_headline(sentence: str, iqm: float, ci, per_scenario: dict) -> dict:
    """The sentence's IQM, CI, verdict and per-scenario wins and losses agree with the numbers given."""
    h = parse_headline(sentence)
    close = lambda a, b: math.isclose(a, b, rel_tol=5.1e-3)  # noqa: E731 (3 significant digits)
    assert close(h["iqm"], iqm) and close(h["ci"][0], ci[0]) and close(h["ci"][1], ci[1])
    assert h["verdict"] == ("above" if ci[0] > 1 else "below" if ci[1] < 1 else "not distinguishable from")
    assert set(h["wins"]) == {s for s, v in per_scenario.items() if v > 1.005}
    assert set(h["losses"]) == {s for s, v in per_scenario.items() if v < 0.995}
    for s, v in {**h["wins"], **h["losses"]}.items():
        assert close(v, per_scenario[s]), (s, v, per_scenario[s])
    return h


def test_headline_sentence_from_benchmark_json(built):
    results, _, _, page = built
    bench = json.loads((results / "benchmark.json").read_text())
    (group, overall), = bench["learned"].items()
    (lead,) = page.sections["headline"]["leads"]
    assert lead.startswith(f"{group} (3 training runs, greedy), trained on ")
    if json.loads((results / "summary.json").read_text())["runs"]:  # the run's config.yaml is reachable
        params = ", ".join(f"{k}={v}" for k, v in RUN_CONFIG["env_params"].items())
        assert f"trained on one scenario ({params})" in lead
    per = {s: float(np.mean(v)) for s, v in BENCH_RUNS.items()}
    h = check_headline(lead, overall["iqm"], overall["iqm_ci"], per)
    assert h["wins"] == {"short": 1.06} and h["losses"] == {"long": 0.97}  # the fixture wins one, loses one
    text = page.sections["headline"]["text"]
    assert "better than" not in text and "worse than" not in text  # the old one-line verdict is gone
    assert page.sections["headline"]["text"].index(lead) < text.index("IQM score")  # above the table


def test_headline_sentence_derived_from_summary(tmp_path):
    """Without benchmark.json: one sentence per learned policy, best first, its figures those of summary.json
    and of the per-scenario table on the same page."""
    import pandas as pd

    results = build_results(tmp_path, with_runs=False, with_benchmark=False)
    table = pd.read_csv(results / "results.csv")
    table.loc[(table.policy == "ppo") & (table.scenario == "long"), "score_vs_heuristic"] *= 0.8  # a loss
    second = table[table.policy == "ppo"].assign(policy="ppo-b", score_vs_heuristic=1.0)  # ties everywhere
    pd.concat([table, second]).to_csv(results / "results.csv", index=False)
    summary = json.loads((results / "summary.json").read_text())
    summary["policies"]["ppo-b"] = {**summary["policies"]["ppo"], "iqm": 0.99, "iqm_ci": [0.98, 0.999]}
    (results / "summary.json").write_text(json.dumps(summary))
    report.write_report(results)
    page = Page((results / "report.html").read_text())
    first, second_lead = page.sections["headline"]["leads"]
    assert first.startswith("Best of 2 learned policies, ppo, trained on its training scenario:")
    shown = {cells[0]: dict(zip(page.sections["per-scenario"]["tables"][0]["head"], cells))
             for _, cells in page.sections["per-scenario"]["tables"][0]["rows"]}
    per = {s: number(shown["ppo"][s]) for s in ("short", "long")}
    s = summary["policies"]["ppo"]
    h = check_headline(first, s["iqm"], s["iqm_ci"], per)
    assert set(h["losses"]) == {"long"}
    h = check_headline(second_lead, 0.99, [0.98, 0.999], {"short": 1.0, "long": 1.0})
    assert h["verdict"] == "below" and "ties on short, long" in second_lead


def test_stored_headline_is_shown_as_written(tmp_path):
    """The demo stores `benchmark.headline(...)` in summary.json; the report shows it, not a sentence of its own."""
    from memgym.train.evaluation import benchmark

    results = build_results(tmp_path, with_runs=False)
    bench = json.loads((results / "benchmark.json").read_text())
    sentence = benchmark.headline(bench, "512 scenarios drawn over model in {a, b}")
    summary = json.loads((results / "summary.json").read_text())
    (results / "summary.json").write_text(json.dumps({**summary, "headline": sentence}))
    _, md_path = report.write_report(results)
    page = Page((results / "report.html").read_text())
    assert page.sections["headline"]["leads"] == [sentence]
    assert f"> **{sentence}**" in md_path.read_text()
    assert "unit: training run × scenario" in page.sections["headline"]["text"]


def test_benchmark_section_matches_benchmark_json(built):
    results, _, _, page = built
    bench = json.loads((results / "benchmark.json").read_text())
    (group, overall), = bench["learned"].items()
    per_scen, agg = page.sections["benchmark"]["tables"]
    assert per_scen["head"] == ["Scenario", "oracle", "headroom", "best baseline", f"{group} mean",
                                "[min, max] over runs", "gap closed"]
    assert [cells[0] for _, cells in per_scen["rows"]] == list(bench["per_scenario"])
    for _, cells in per_scen["rows"]:
        r = bench["per_scenario"][cells[0]]
        x = r["learned"][group]
        assert cells[1:5] == [render.fmt(r["oracle"]), render.fmt(r["headroom"]),
                              f"a_major {render.fmt(r['best_baseline_score'])}", render.fmt(x["mean"])]
        assert cells[5] == render.fmt([x["min_run"], x["max_run"]]) and cells[6] == f"{x['gap_closed']:+.0%}"
    assert per_scen["rows"][1][1][6] == "-30%"  # long: 0.97 against a headroom of 0.10
    ((cls, cells),) = agg["rows"]
    assert cls == "learned" and cells[:4] == [group, "3", render.fmt(overall["iqm"]), render.fmt(overall["iqm_ci"])]
    text = page.sections["benchmark"]["text"]
    assert "greedily" in text and "training run × scenario" in text and "test split" in text


# --- the plots ----------------------------------------------------------------------------------------------------

def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def legends_outside(fig) -> list:
    """Every legend of the figure, each checked to lie clear of every visible axes' data area."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    for legend in legends:
        box = legend.get_window_extent()
        for ax in fig.axes:
            if ax.get_visible():
                assert not overlaps(box, ax.get_window_extent()), (legend, ax.get_title())
    return legends


@pytest.fixture(scope="module")
def res(built):
    results = built[0]
    out = data.load_results(results)
    out["colors"] = plots.policy_colors(out)
    return out


def test_score_plot_has_labelled_axes_and_visible_cis(res):
    summary = res["summary"]
    fig = plots.plot_scores(summary, res["colors"])
    assert [ax.get_xlabel() for ax in fig.axes] == ["IQM score (1 = h2m2)", "IQM score (1 = oracle)"]
    assert fig.axes[0].get_ylabel() == "policy"
    ax = fig.axes[0]
    n = len(summary["policies"])
    bands = [c for c in ax.collections if max(c.get_linewidths()) >= 5]  # the thick CI bands
    segments = [tuple(np.round(seg[:, 0], 9)) for c in bands for seg in c.get_segments()]
    for p, s in summary["policies"].items():
        assert tuple(np.round(s["iqm_ci"], 9)) in segments, p
    caps = [line for line in ax.lines if line.get_marker() == "|"]
    assert len(caps) == 2 * n and all(line.get_markersize() >= 6 for line in caps)  # even a zero-width CI shows


def test_performance_profile_spans_every_score(res):
    scores = res["table"].score_vs_heuristic
    prof = data.score_profile(res)
    assert prof["taus"][0] < scores.min() and prof["taus"][-1] > scores.max()
    for p, curve in prof["curves"].items():
        assert curve[0] == 1.0 and curve[-1] == 0.0, p  # every curve falls all the way
    fig = plots.plot_performance_profile(prof, res["summary"], res["colors"])
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("normalised score τ") and ax.get_ylabel().startswith("fraction of runs")
    lo, hi = ax.get_xlim()
    assert lo <= scores.min() and hi >= scores.max()
    assert legends_outside(fig)


def test_legends_sit_outside_the_data(res):
    dec = res["decisions"]["policies"]
    lines = [(p, res["colors"].get(p), {k: (d["step"], y) for k, y in d["actions"].items()}) for p, d in dec.items()]
    keys = list(next(iter(dec.values()))["actions"])
    many = plots.plot_panels(lines, keys, "step", steps=True)
    assert len(legends_outside(many)) == 1 and all(ax.get_legend() is None for ax in many.axes)
    assert all(ax.get_xlabel() == "step" for ax in many.axes if ax.get_visible())
    one = plots.plot_panels(lines, keys[:1], "step", steps=True)
    assert legends_outside(one) and one.axes[0].get_ylabel() == keys[0]


def test_a_tiny_breakdown_part_stays_visible(res):
    parts_by_policy = {p: d["parts"] for p, d in res["breakdown"]["policies"].items()}
    parts = list(next(iter(parts_by_policy.values())))
    fig = plots.plot_breakdown(parts_by_policy, parts)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "seconds per iteration" and ax.get_ylabel() == "policy"
    longest = max(sum(d.values()) for d in parts_by_policy.values())
    (migration,) = [c for c in ax.containers if c.get_label() == "migration"]
    for bar in migration:
        assert bar.get_width() >= plots.MIN_VISIBLE * longest * 0.999 and bar.get_hatch()
    assert all(not bar.get_hatch() for c in ax.containers if c.get_label() != "migration" for bar in c)
    notes = [t.get_text() for t in ax.texts]
    assert len(notes) == len(parts_by_policy) and all("migration 2.00e-05 s" in t for t in notes)
    assert legends_outside(fig)


def test_learning_curves_average_seeds_and_shade_their_spread():
    import numpy as np

    from memgym.train.report.data import mean_over_seeds
    from memgym.train.report.plots import plot_panels

    a = {"r": (np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0]))}
    b = {"r": (np.array([1, 2]), np.array([3.0, 4.0]))}
    steps, mean, lo, hi = mean_over_seeds([a, b])["r"]
    assert list(steps) == [1, 2] and list(mean) == [2.0, 3.0] and list(lo) == [1.0, 2.0] and list(hi) == [3.0, 4.0]
    assert mean_over_seeds([a]) is a
    fig = plot_panels([("run", "#123456", mean_over_seeds([a, b]))], ["r"], "environment steps")
    assert len(fig.axes[0].collections) == 1  # the shaded band
